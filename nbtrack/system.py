"""System metrics: a sampler thread per run, recording the machine under ``system/...``.

Every ``interval`` seconds (``Settings.system_interval``, default 10, ``0`` = off) the
sampler reads CPU, memory, disk, network and, when ``nvidia-ml-py`` is importable and
sees GPUs, each GPU.  Samples form their own time-keyed stream in the store: they never
touch the user's step, summary or history.  Names follow MLflow's system metrics
(``system/cpu_utilization_percentage``, ``system/gpu_0_utilization_percentage``, ...), so
they land where MLflow's UI shows system metrics when a run is synced.

The sampler starts with the run, samples between cells as well as during them (it is a
thread, not a hook), and stops when the run finishes, taking one last sample first so a
short run still has one.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from . import diagnostics, workers

MB = 1e6


def _warn_once(key: str, message: str) -> None:
    diagnostics.warn_once(f"system:{key}", message, stacklevel=3)


class _Gpus:
    """Per-GPU readings through NVML; every call guarded, as GPUs differ in what they report."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        nvml.nvmlInit()
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    def read(self, out: dict[str, float]) -> None:
        nvml = self.nvml
        for i, handle in enumerate(self.handles):
            prefix = f"system/gpu_{i}_"
            try:
                out[prefix + "utilization_percentage"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                pass
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                out[prefix + "memory_usage_megabytes"] = memory.used / MB
                out[prefix + "memory_usage_percentage"] = 100.0 * memory.used / memory.total if memory.total else 0.0
            except Exception:
                pass
            try:
                out[prefix + "temperature_celsius"] = float(
                    nvml.nvmlDeviceGetTemperature(handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
                )
            except Exception:
                pass
            try:
                watts = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                out[prefix + "power_usage_watts"] = watts
                limit = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
                if limit:
                    out[prefix + "power_usage_percentage"] = 100.0 * watts / limit
            except Exception:
                pass

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


def _open_gpus() -> _Gpus | None:
    try:
        nvml = importlib.import_module("pynvml")  # the module nvidia-ml-py installs
    except ImportError:
        return None
    try:
        gpus = _Gpus(nvml)
    except Exception:  # no driver, no device: the common case on a laptop or CI machine
        return None
    if not gpus.handles:
        gpus.close()
        return None
    return gpus


class SystemSampler(workers.Worker):
    """Samples the machine every ``interval`` seconds for one run, on a worker thread.

    ``emit(timestamp, values)`` receives each sample on the sampler's thread; it must be
    cheap (the run's writer queue and panel taps are ``deque.append``).
    """

    def __init__(
        self,
        interval: float,
        emit: Callable[[float, dict[str, float]], None],
        disk_path: str | None = None,
        label: str = "",
    ) -> None:
        super().__init__(f"nbtrack-system {label}", interval)
        self.emit = emit
        self.disk_path = disk_path or os.getcwd()
        self.label = label
        self.samples = 0
        self.cpu_seconds = 0.0  # time the sampler thread itself spent sampling
        self._gpus: _Gpus | None = None
        self._last = 0.0
        self._failed = False
        self.psutil: Any = None  # set on the sampler's thread

    def _setup(self) -> None:
        """Import psutil, open NVML and take the baselines: on the sampler's thread, so
        ``init()`` does not wait for it."""
        import psutil

        self._process = psutil.Process()
        self._gpus = _open_gpus()
        # cpu_percent() measures since the previous call: prime both, and the I/O baselines
        psutil.cpu_percent(None)
        self._process.cpu_percent(None)
        self.psutil = psutil
        self._disk0 = self._disk_io()
        self._net0 = self._net_io()

    @property
    def gpus(self) -> int:
        return len(self._gpus.handles) if self._gpus else 0

    def _disk_io(self):
        try:
            return self.psutil.disk_io_counters()
        except Exception:
            return None

    def _net_io(self):
        try:
            return self.psutil.net_io_counters()
        except Exception:
            return None

    def read(self) -> dict[str, float]:
        """One sample of every metric this machine offers."""
        ps = self.psutil
        out: dict[str, float] = {"system/cpu_utilization_percentage": ps.cpu_percent(None)}
        memory = ps.virtual_memory()
        out["system/system_memory_usage_megabytes"] = (memory.total - memory.available) / MB
        out["system/system_memory_usage_percentage"] = memory.percent
        try:
            with self._process.oneshot():
                out["system/process_rss_megabytes"] = self._process.memory_info().rss / MB
                out["system/process_cpu_utilization_percentage"] = self._process.cpu_percent(None)
        except ps.Error:
            pass
        try:
            disk = ps.disk_usage(self.disk_path)
            out["system/disk_usage_percentage"] = disk.percent
            out["system/disk_usage_megabytes"] = disk.used / MB
            out["system/disk_available_megabytes"] = disk.free / MB
        except OSError:
            pass
        io = self._disk_io()
        if io is not None and self._disk0 is not None:
            out["system/disk_read_megabytes"] = (io.read_bytes - self._disk0.read_bytes) / MB
            out["system/disk_write_megabytes"] = (io.write_bytes - self._disk0.write_bytes) / MB
        net = self._net_io()
        if net is not None and self._net0 is not None:
            out["system/network_receive_megabytes"] = (net.bytes_recv - self._net0.bytes_recv) / MB
            out["system/network_transmit_megabytes"] = (net.bytes_sent - self._net0.bytes_sent) / MB
        if self._gpus is not None:
            self._gpus.read(out)
        return out

    def sample(self) -> None:
        start = time.thread_time()
        try:
            values = self.read()
        except Exception as exc:  # a sampler must never take the run down
            _warn_once(
                f"read:{type(exc).__name__}",
                f"nbtrack: could not read system metrics ({exc}); the run goes on without them",
            )
            return
        now = time.time()
        self._last = now
        self.samples += 1
        self.emit(now, values)
        self.cpu_seconds += time.thread_time() - start

    # ------------------------------------------------------------ the worker
    def wait_time(self) -> float:
        return 0.0 if self.psutil is None and not self._failed else self.interval

    def step(self) -> None:
        if self._failed:
            return
        if self.psutil is None:
            start = time.thread_time()
            try:
                self._setup()
            except Exception as exc:
                self._failed = True
                _warn_once(
                    f"setup:{type(exc).__name__}",
                    f"nbtrack: cannot read system metrics ({exc}); the run goes on without them",
                )
                self._stopping.set()
            finally:
                self.cpu_seconds += time.thread_time() - start
            return
        self.sample()

    def stop(self, timeout: float | None = 5.0, final_sample: bool = True) -> bool:
        """Stop sampling; take a last sample first when the previous one is over a second old."""
        if self._stopping.is_set() and not self.alive:
            return True
        ended = super().stop(timeout)
        if final_sample and ended and self.psutil is None and not self._failed:
            # a run shorter than the thread's start-up: its one sample is taken here
            self._guarded_step()
        if final_sample and self.psutil is not None and time.time() - self._last > 1.0:
            self.sample()
        if self._gpus is not None:
            self._gpus.close()
            self._gpus = None
        return ended

    @property
    def running(self) -> bool:
        return self.alive


_psutil_found: list[bool] = []


def _findable(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it.  A package folder in one
    of ``sys.path``'s folders answers with a few ``stat`` calls; the import system's own
    search (it lists every folder on the path, 0.1 ms for a site-packages on the first
    init()) is asked only when there is none."""
    for entry in sys.path:
        if os.path.isfile(os.path.join(entry or ".", package, "__init__.py")):
            return True
    from importlib.machinery import PathFinder  # cheaper than importing importlib.util

    return PathFinder.find_spec(package) is not None


def available(interval: float) -> bool:
    """Whether a sampler can run: ``interval`` is not 0 and psutil is importable (else a
    warning, once).  Called by ``init()`` on the caller's thread, so that the warning is
    seen there; the sampler itself starts on the writer's thread."""
    if not interval:
        return False
    if "psutil" in sys.modules:
        found = sys.modules["psutil"] is not None
    elif not _psutil_found:
        _psutil_found.append(_findable("psutil"))
        found = _psutil_found[0]
    else:
        found = _psutil_found[0]
    if not found:
        _warn_once("psutil", "nbtrack: system metrics need psutil (pip install psutil); this run records none")
    return found


def start_sampler(
    interval: float, emit: Callable[[float, dict[str, float]], None], disk_path: str | None, label: str
) -> SystemSampler | None:
    """A started sampler, or ``None`` when ``interval`` is 0 or psutil is missing (warned once)."""
    if not available(interval):
        return None
    sampler = SystemSampler(interval, emit, disk_path=disk_path, label=label)
    sampler.start()
    return sampler
