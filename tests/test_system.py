"""System metrics: the real psutil path, a stand-in NVML module for GPUs, and the
sampler's life with its run (off at interval 0, stops on finish, never moves the step)."""

from __future__ import annotations

import sys
import time
import types
import warnings

import pytest
from conftest import wait_for

import nbtrack
from nbtrack import NbtrackWarning, workers

CPU_KEYS = {
    "system/cpu_utilization_percentage",
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
    "system/process_rss_megabytes",
    "system/process_cpu_utilization_percentage",
    "system/disk_usage_percentage",
    "system/disk_usage_megabytes",
    "system/disk_available_megabytes",
    "system/network_receive_megabytes",
    "system/network_transmit_megabytes",
}


def sampler_threads():
    return [name for name in workers.running() if name.startswith("nbtrack-system")]


def test_samples_from_the_real_machine_are_stored_apart_from_the_history(store_dir):
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    for i in range(20):
        run.log({"loss": 1.0 / (i + 1)})
        time.sleep(0.02)
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 5)
    run.finish()

    record = nbtrack.Api(store_dir).run(f"sys/{run.id}")
    samples = record.system_metrics()
    assert len(samples) >= 5
    # the network and disk counters may be unavailable in a container; the rest always are
    assert CPU_KEYS - {"system/network_receive_megabytes", "system/network_transmit_megabytes"} <= set(samples[-1])
    for sample in samples:
        assert 0.0 <= sample["system/system_memory_usage_percentage"] <= 100.0
        assert 0.0 <= sample["system/cpu_utilization_percentage"] <= 100.0
        assert 0.0 < sample["system/disk_usage_megabytes"]
    rss = samples[-1]["system/process_rss_megabytes"]
    import psutil

    assert rss == pytest.approx(psutil.Process().memory_info().rss / 1e6, rel=0.5)
    times = [s["_timestamp"] for s in samples]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(0 <= s["_runtime"] < 60 for s in samples)

    # the user's stream is untouched: steps 0..19, no system keys in rows or summary
    history = record.rows()
    assert [r["_step"] for r in history] == list(range(20))
    assert not [k for r in history for k in r if k.startswith("system/")]
    assert not [k for k in record.summary if k.startswith("system/")]
    assert run.step == 20
    only = record.system_metrics(["system/process_rss_megabytes"])
    assert len(only) == len(samples) and set(only[0]) == {"_timestamp", "_runtime", "system/process_rss_megabytes"}


def test_sampling_goes_on_while_nothing_is_logged(store_dir):
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    run.log({"a": 1})
    # no log() calls from here on: the thread keeps sampling and the writer keeps writing
    assert wait_for(lambda: len(nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()) >= 4)
    run.finish()


def test_the_sampler_stops_with_the_run_and_takes_a_last_sample(store_dir):
    before = len(sampler_threads())
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 30})
    # the writer's first round starts it, just after init() returns
    assert wait_for(lambda: len(sampler_threads()) == before + 1)
    run.log({"a": 1})
    run.finish()
    assert len(sampler_threads()) == before
    assert not run._sampler.running
    # interval 30 s never fired; the run still has the sample taken at finish
    assert len(nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()) == 1


@pytest.mark.parametrize("how", ["settings", "environment"])
def test_interval_zero_turns_sampling_off(store_dir, monkeypatch, how):
    before = len(sampler_threads())
    if how == "environment":
        monkeypatch.setenv("NBTRACK_SYSTEM_INTERVAL", "0")
        run = nbtrack.init(project="sys", dir=store_dir)
    else:
        run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0})
    assert run._sampler is None and len(sampler_threads()) == before
    run.log({"a": 1})
    run.finish()
    assert nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics() == []


def test_a_bad_interval_is_a_usage_error(store_dir, monkeypatch):
    with pytest.raises(nbtrack.UsageError, match="system_interval .*must be a finite number of seconds from 0"):
        nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": -1})
    monkeypatch.setenv("NBTRACK_SYSTEM_INTERVAL", "often")
    with pytest.raises(nbtrack.UsageError, match="NBTRACK_SYSTEM_INTERVAL='often' is not valid"):
        nbtrack.init(project="sys", dir=store_dir)


def test_without_psutil_the_run_goes_on_with_one_warning(store_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.warns(NbtrackWarning, match=r"system metrics need psutil \(pip install psutil\)"):
        run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = nbtrack.init(
            project="sys", dir=store_dir, reinit="create_new", settings={"system_interval": 0.05}
        )  # warned once only
    run.log({"a": 1})
    run.finish()
    second.finish()
    assert nbtrack.Api(store_dir).run(f"sys/{run.id}").rows()[0]["a"] == 1


class FakeNVML(types.ModuleType):
    """A small stand-in for ``pynvml`` (nvidia-ml-py): two GPUs, the second one
    without a temperature sensor, as some boards are."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self):
        super().__init__("pynvml")
        self.calls = []
        self.tick = 0

    def nvmlInit(self):
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetUtilizationRates(self, handle):
        self.tick += 1
        return types.SimpleNamespace(gpu=40 + 10 * handle[1], memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(total=80_000_000_000, used=20_000_000_000 * (handle[1] + 1), free=0)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        if handle[1] == 1:
            raise self.NVMLError("Not Supported")
        return 61

    def nvmlDeviceGetPowerUsage(self, handle):
        return 250_000  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000


def test_gpu_metrics_through_nvml(store_dir, monkeypatch):
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 2)
    assert run._sampler.gpus == 2
    run.finish()
    assert fake.calls == ["init", "shutdown"]
    last = nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()[-1]
    assert last["system/gpu_0_utilization_percentage"] == 40.0
    assert last["system/gpu_1_utilization_percentage"] == 50.0
    assert last["system/gpu_0_memory_usage_megabytes"] == 20_000.0
    assert last["system/gpu_1_memory_usage_percentage"] == 50.0
    assert last["system/gpu_0_temperature_celsius"] == 61.0
    assert "system/gpu_1_temperature_celsius" not in last  # unsupported: left out, the rest kept
    assert last["system/gpu_1_power_usage_watts"] == 250.0
    assert last["system/gpu_0_power_usage_percentage"] == pytest.approx(100 * 250 / 700)
    assert CPU_KEYS - {"system/network_receive_megabytes", "system/network_transmit_megabytes"} <= set(last)


def test_no_gpu_when_nvml_cannot_start(store_dir, monkeypatch):
    fake = FakeNVML()

    def no_driver():
        raise fake.NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 1)
    run.finish()
    assert run._sampler.gpus == 0
    last = nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()[-1]
    assert not [k for k in last if k.startswith("system/gpu_")]
    assert "system/cpu_utilization_percentage" in last


def test_no_gpu_on_this_machine_with_the_real_library(store_dir):
    """The no-GPU path with what is really installed: either no nvidia-ml-py, or NVML
    failing to find a driver; either way CPU metrics and no GPU keys."""
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.05})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 1)
    run.finish()
    last = nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()[-1]
    try:
        import pynvml

        pynvml.nvmlInit()
        has_gpu = pynvml.nvmlDeviceGetCount() > 0
        pynvml.nvmlShutdown()
    except Exception:
        has_gpu = False
    assert bool([k for k in last if k.startswith("system/gpu_")]) == has_gpu
    assert "system/cpu_utilization_percentage" in last


def _visible_gpus() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


@pytest.mark.skipif(_visible_gpus() == 0, reason="needs a GPU that NVML sees (run on a GPU machine)")
def test_real_gpu_metrics_follow_real_gpu_work(store_dir):
    """On a machine with a GPU: the readings agree with NVML read directly, and GPU work
    shows up in them (memory taken by torch, utilisation while it computes)."""
    import pynvml

    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    total_mb = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 1e6  # MLflow's megabytes: 10**6 bytes
    limit_w = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
    pynvml.nvmlShutdown()
    run = nbtrack.init(project="sys", dir=store_dir, settings={"system_interval": 0.2})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 2)
    idle_mb = [s for s in nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()]
    block = torch.empty(4 * 10**9, dtype=torch.uint8, device="cuda")  # 4,000 MB held
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t0 = time.time()
    while time.time() - t0 < 3:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    samples_busy = run._sampler.samples
    run.finish()
    del block, a
    samples = nbtrack.Api(store_dir).run(f"sys/{run.id}").system_metrics()
    busy = [s for s in samples if s["_runtime"] > (t0 - run.start_time) + 0.5]
    assert samples_busy >= 10 and len(busy) >= 5
    for s in samples:
        assert 0 <= s["system/gpu_0_utilization_percentage"] <= 100
        assert s["system/gpu_0_memory_usage_megabytes"] == pytest.approx(
            s["system/gpu_0_memory_usage_percentage"] / 100 * total_mb, rel=0.01
        )
        if "system/gpu_0_temperature_celsius" in s:
            assert 5 <= s["system/gpu_0_temperature_celsius"] <= 110
        if "system/gpu_0_power_usage_watts" in s:
            assert 0 < s["system/gpu_0_power_usage_watts"] <= limit_w * 1.2
            assert s["system/gpu_0_power_usage_percentage"] == pytest.approx(
                s["system/gpu_0_power_usage_watts"] / limit_w * 100, rel=0.01
            )
    before = min(s["system/gpu_0_memory_usage_megabytes"] for s in idle_mb)
    assert max(s["system/gpu_0_memory_usage_megabytes"] for s in busy) >= before + 4000  # the block
    assert max(s["system/gpu_0_utilization_percentage"] for s in busy) >= 50  # matrix products kept it busy
    print(
        "gpu samples:", [{k.split("gpu_0_")[-1]: round(v, 1) for k, v in s.items() if "gpu_0" in k} for s in busy[:3]]
    )


def test_resumed_run_continues_the_system_stream(store_dir):
    run = nbtrack.init(project="sys", dir=store_dir, id="again", settings={"system_interval": 0.05})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 2)
    run.finish()
    first = nbtrack.Api(store_dir).run("sys/again").system_metrics()
    run = nbtrack.init(project="sys", dir=store_dir, id="again", resume="must", settings={"system_interval": 0.05})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 2)
    run.finish()
    both = nbtrack.Api(store_dir).run("sys/again").system_metrics()
    assert both[: len(first)] == first and len(both) >= len(first) + 2
    runtimes = [s["_runtime"] for s in both]
    assert runtimes == sorted(runtimes)  # the runtime goes on from where the first session ended
