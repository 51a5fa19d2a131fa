"""The background writer: one thread per process batches every run's rows to disk.

``Run.log`` only appends ``(step, ts, cell, data)`` to its sink's deque.  Every
``flush_interval`` the writer drains each sink, encodes the rows and writes them with
the run's summary (and any config, tag or field change) in one transaction.  A write
that fails keeps the encoded rows for the next attempt and warns once; nothing is
raised into the training loop.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import threading
import time
import warnings
from typing import Any, Callable

from .local import LocalStore
from .packing import encode_json

MAX_RETAINED_ROWS = 1_000_000



def _json_row(data: dict) -> tuple[None, str]:
    return None, encode_json(data)


class NbtrackWarning(UserWarning):
    """A problem nbtrack worked around (a failed write, an ignored argument)."""


class RunSink:
    """What the writer holds for one run: its queue of rows and what changed."""

    def __init__(
        self,
        store: LocalStore | None,
        pk: int | None,
        *,
        t0: float,
        runtime_offset: float,
        summary: Callable[[], dict],
        heartbeat_interval: float,
        label: str,
    ) -> None:
        self.store = store
        self.pk = pk
        self.rows: collections.deque = collections.deque()
        self.system: collections.deque = collections.deque()  # (ts, {system/...: value})
        self.t0 = t0
        self.runtime_offset = runtime_offset
        self._summary = summary
        self.summary_dirty = False
        self.config: dict | None = None
        self.tags: tuple[str, ...] | None = None
        self.fields: dict[str, Any] = {}
        self.heartbeat_interval = heartbeat_interval
        self.label = label
        self.lock = threading.Lock()
        self.rows_written = 0
        self.last_step: int | None = None
        self._retry: list[tuple] = []
        self._retry_system: list[tuple] = []
        self._last_beat = time.time()
        self._warned = False
        self._dropped = 0

    # called on the caller's thread, never on the hot path of log()
    def set_config(self, config: dict) -> None:
        self.config = config

    def set_tags(self, tags: tuple[str, ...]) -> None:
        self.tags = tags

    def set_field(self, name: str, value: Any) -> None:
        self.fields[name] = value

    @property
    def pending(self) -> int:
        return len(self.rows) + len(self._retry)

    def runtime(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.t0 + self.runtime_offset

    def flush(self, timeout: float | None = None) -> bool:
        """Write what is queued; return False if the lock was not had in ``timeout``."""
        if not self.lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            self._flush_locked()
        finally:
            self.lock.release()
        return True

    def _flush_locked(self) -> None:
        rows = self._retry
        n = len(self.rows)
        if n:
            popleft = self.rows.popleft
            pk, t0, offset = self.pk, self.t0, self.runtime_offset
            encode = self.store.packer.encode if self.store is not None else _json_row
            fresh = []
            append = fresh.append
            for _ in range(n):
                step, ts, cell, data = popleft()
                append((pk, step, ts, ts - t0 + offset, cell, *encode(data)))
            rows = rows + fresh if rows else fresh
            self.last_step = fresh[-1][1]
            self.summary_dirty = True
        system = []
        for _ in range(len(self.system)):
            ts, values = self.system.popleft()
            system.append((self.pk, ts, ts - self.t0 + self.runtime_offset, encode_json(values)))
        system = self._retry_system + system
        now = time.time()
        beat = now - self._last_beat >= self.heartbeat_interval
        config, tags, fields = self.config, self.tags, dict(self.fields)
        if not (rows or system or self.summary_dirty or config is not None or tags is not None or fields or beat):
            return
        if self.store is None or self.pk is None:
            self._retain(rows)
            self._retry_system = system[-1000:]
            return
        summary = dict(self._summary()) if self.summary_dirty else None
        try:
            self.store.write_batch(
                self.pk,
                rows,
                summary=summary,
                config=config,
                tags=tags,
                fields=fields or None,
                heartbeat=now,
                last_step=self.last_step,
                runtime=self.runtime(now),
                system=system,
            )
        except (sqlite3.Error, OSError, ValueError) as exc:
            self._retain(rows)
            self._retry_system = system[-1000:]
            self._warn(f"nbtrack: could not write run {self.label} to {self.store.root}: {exc}. "
                       "Logging goes on in memory and the write is retried.")
            return
        self.rows_written += len(rows)
        self._retry = []
        self._retry_system = []
        self._last_beat = now
        self.summary_dirty = False
        if config is self.config:
            self.config = None
        if tags is self.tags:
            self.tags = None
        for key in list(fields):
            if self.fields.get(key) is fields.get(key):
                self.fields.pop(key, None)

    def _retain(self, rows: list[tuple]) -> None:
        over = len(rows) - MAX_RETAINED_ROWS
        if over > 0:
            self._dropped += over
            rows = rows[over:]
            self._warn(
                f"nbtrack: run {self.label} holds more than {MAX_RETAINED_ROWS} unwritten rows; "
                "the oldest are dropped", force=True)
        self._retry = rows

    def _warn(self, message: str, force: bool = False) -> None:
        if self._warned and not force:
            return
        self._warned = True
        warnings.warn(message, NbtrackWarning, stacklevel=2)


class BatchWriter:
    """The process's one writer thread; ``BatchWriter.get()`` returns it."""

    _instance: "BatchWriter | None" = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._sinks: dict[int, RunSink] = {}
        self._intervals: dict[int, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = 0.25

    @classmethod
    def get(cls) -> "BatchWriter":
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def _after_fork(cls) -> None:
        # A forked child has no writer thread; it starts its own if it logs.
        cls._instance = None
        cls._instance_lock = threading.Lock()
        LocalStore.forget_all()

    def add(self, sink: RunSink, interval: float) -> None:
        with self._lock:
            self._sinks[id(sink)] = sink
            self._intervals[id(sink)] = interval
            self.interval = max(0.01, min(self._intervals.values()))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nbtrack-writer", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, sink: RunSink) -> None:
        with self._lock:
            self._sinks.pop(id(sink), None)
            self._intervals.pop(id(sink), None)
            if self._intervals:
                self.interval = max(0.01, min(self._intervals.values()))

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                sinks = list(self._sinks.values())
            for sink in sinks:
                try:
                    sink.flush()
                except Exception as exc:  # the writer must outlive any one run's problem
                    sink._warn(f"nbtrack: writer error for run {sink.label}: {exc!r}")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=BatchWriter._after_fork)
