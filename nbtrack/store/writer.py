"""The background writer: one thread per process writes every run's rows to its store.

``Run.log`` appends ``(step, ts, cell, data)`` to its sink's queue and returns.  The
writer (a ``Worker``) wakes every ``flush_interval``, and at once when a run has a
batch of rows queued, and writes each run's queue in transactions of at most
``BATCH_ROWS`` rows (fewer for wide rows: ``BATCH_VALUES``), with the run's summary,
config, tag and field changes and a heartbeat.  A row leaves the queue only after the transaction that holds it has
committed, so an interrupt, a failed write or an exception never takes rows with it.

When writing fails:

* The store does not take writes (another process holds its write lock, the disk is
  full or read-only): rows stay queued and are retried every interval; one warning
  says so.  The run is *held*: ``log()`` no longer waits for the writer.  Past
  ``MAX_HELD_ROWS`` queued rows the oldest half goes to a rescue file (``rescue``),
  replayed into the store once it takes writes.  If even that file cannot be written,
  rows are kept in memory up to ``MAX_MEMORY_ROWS``; only beyond that are the oldest
  dropped, counted and reported.
* SQLite refuses one row on its own (a value over its size limit, say): the batch is
  split until that row is found, the row is set aside as text in the ``set_aside``
  table with one warning, and every other row lands.
"""

from __future__ import annotations

import collections
import itertools
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import diagnostics, workers
from ..records import Record
from .columns import CHUNK_ROWS
from .local import LocalStore
from .packing import encode_json
from .rescue import RescueFile, replay
from .shapes import HistoryRow, QueuedRow, QueuedSample, SetAsideEntry, SystemRow

__all__ = ["BatchWriter", "RunSink"]

BATCH_ROWS = 8192  # rows per transaction: short enough that a kill -9 loses little, long enough to be cheap
MAX_QUEUED = 2 * BATCH_ROWS  # log() waits for the writer (while it makes progress) when a run has this many queued
# ... for rows of up to 25 values.  Wider rows make smaller batches, so that what a run
# holds in memory, and what finish() may have left to write, stays near BATCH_VALUES
# values however wide its rows (100 keys a row: batches of 2,048 rows).
BATCH_VALUES = 25 * BATCH_ROWS
MIN_BATCH_ROWS = 256
PROGRESS_WAIT = 1.0  # seconds log() or finish() waits for the writer to make any progress
MAX_HELD_ROWS = 100_000  # rows a held run keeps in memory before the oldest go to a rescue file
MAX_MEMORY_ROWS = 500_000  # rows kept in memory when not even a rescue file can be written
SET_ASIDE_INLINE = 1000  # characters of a set-aside row kept in the table; longer ones also go to a file


def classify(exc: BaseException) -> str:
    """``"data"`` when the content itself was refused (the same write would fail again),
    else ``"store"`` (busy, locked, full, read-only, gone: the store may take it later)."""
    if isinstance(
        exc,
        (
            sqlite3.DataError,
            sqlite3.IntegrityError,
            sqlite3.InterfaceError,
            OverflowError,
            ValueError,
            TypeError,
            RecursionError,
        ),
    ):
        return "data"
    if isinstance(exc, sqlite3.OperationalError) and "too big" in str(exc):
        return "data"
    return "store"


class RunSink:
    """What the writer holds for one run: its queue of rows and what changed."""

    def __init__(
        self,
        store: LocalStore,
        pk: int | None,
        *,
        t0: float,
        runtime_offset: float,
        summary: Callable[[], dict[str, Any]],
        heartbeat_interval: float,
        label: str,
        project: str,
        run_id: str,
        owner: dict[str, Any],
        claim: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        # The run's key in the store.  A run started in a new store is claimed there by
        # whoever needs the key first (the writer's first round, as a rule): ``claim``.
        self._pk = pk
        self._claim = claim
        self._claim_lock = threading.Lock()
        self.rows: collections.deque[QueuedRow] = collections.deque()  # oldest first
        self.system: collections.deque[QueuedSample] = collections.deque()
        self.t0 = t0
        self.runtime_offset = runtime_offset
        self._summary = summary
        self.summary_dirty = False
        self.config: dict[str, Any] | None = None
        self.tags: tuple[str, ...] | None = None
        self.fields: dict[str, Any] = {}
        self.metadata: dict[str, Any] | None = None  # merged into the run's metadata at the next write
        # work init() leaves to the writer's first round, so that init returns sooner: the
        # environment's metadata, the auto-resume marker, starting the system sampler
        self.startup: list[Callable[[], None]] = []
        self.heartbeat_interval = heartbeat_interval
        self.label = label
        self.project = project
        self.run_id = run_id
        self.owner = owner
        self.lock = threading.Lock()  # held by whoever is writing this sink
        self.room = threading.Condition(threading.Lock())  # notified after every write attempt
        self.rows_written = 0
        # rows per transaction, and log()'s bound (twice that) on what is queued: from the
        # width of the rows last written (BATCH_VALUES)
        self.batch_rows = BATCH_ROWS
        self.unsealed = 0  # rows written since the run's history was last sealed into chunks
        self.last_step: int | None = None
        self.last_cell: int | None = None  # of the newest row written that came from a notebook cell
        self.held: str | None = None  # why the store does not take this run's writes, while it does not
        self.set_aside = 0  # rows and changes SQLite refused on their own
        self.rescued = 0  # rows moved to a rescue file
        self.dropped = 0  # rows lost: memory full and no rescue file possible
        self._rescue: RescueFile | None = None
        self._last_beat = time.time()
        self._warned_held = False

    @property
    def pk(self) -> int:
        pk = self._pk
        if pk is None:
            with self._claim_lock:
                if self._pk is None:
                    assert self._claim is not None
                    self._pk = self._claim()
                pk = self._pk
        return pk

    @property
    def claimed(self) -> bool:
        return self._pk is not None

    # called on the caller's thread, never on the hot path of log()
    def set_config(self, config: dict[str, Any]) -> None:
        self.config = config

    def set_tags(self, tags: tuple[str, ...]) -> None:
        self.tags = tags

    def set_field(self, name: str, value: Any) -> None:
        self.fields[name] = value

    @property
    def pending(self) -> int:
        """Rows logged and not yet in the store (nor in a rescue file)."""
        return len(self.rows)

    @property
    def idle(self) -> bool:
        """Nothing left to write: no rows, samples or changes."""
        return not (
            self.rows
            or self.startup
            or self.metadata is not None
            or self.system
            or self.summary_dirty
            or self.config is not None
            or self.tags is not None
            or self.fields
        )

    def runtime(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.t0 + self.runtime_offset

    def wait_for_room(self, writer: BatchWriter) -> None:
        """Called by ``log()`` when twice ``batch_rows`` rows (at most ``MAX_QUEUED``) are
        queued: wait while the writer makes progress, until half of them are written.
        Returns at once while the store does not take writes, and after
        ``PROGRESS_WAIT`` seconds without any progress."""
        writer.ensure_running()
        writer.wake()
        with self.room:
            while len(self.rows) > self.batch_rows and self.held is None:
                before = self.rows_written
                self.room.wait(PROGRESS_WAIT)
                if self.rows_written == before:
                    return

    def rescue_file(self) -> RescueFile:
        if self._rescue is None:
            self._rescue = RescueFile(self.store.root, self.project, self.run_id, self.owner)
        return self._rescue

    def _notify(self) -> None:
        with self.room:
            self.room.notify_all()


class BatchWriter(workers.Worker):
    """The process's one writer thread; ``BatchWriter.get()`` returns it."""

    _instance: BatchWriter | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__("nbtrack-writer", 0.25)
        self._sinks: dict[int, RunSink] = {}
        self._intervals: dict[int, float] = {}
        self._sinks_lock = threading.Lock()

    @classmethod
    def get(cls) -> BatchWriter:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def after_fork(self) -> None:
        # the parent's runs are not this process's to write: the child starts empty
        self._sinks = {}
        self._intervals = {}
        self._sinks_lock = threading.Lock()
        BatchWriter._instance_lock = threading.Lock()

    # ------------------------------------------------------------- membership
    def add(self, sink: RunSink, interval: float) -> None:
        with self._sinks_lock:
            self._sinks[id(sink)] = sink
            self._intervals[id(sink)] = interval
            self.interval = max(0.01, min(self._intervals.values()))
        self.start()  # not woken here: init() wakes it as it returns, so that the first round
        # (claiming a new store's run, gathering the environment) does not take turns with it

    def remove(self, sink: RunSink) -> None:
        with self._sinks_lock:
            self._sinks.pop(id(sink), None)
            self._intervals.pop(id(sink), None)
            if self._intervals:
                self.interval = max(0.01, min(self._intervals.values()))

    def ensure_running(self) -> None:
        if not self.alive:
            self.start()

    # ---------------------------------------------------------- the thread
    def step(self) -> None:
        with self._sinks_lock:
            sinks = list(self._sinks.values())
        more = True
        while more and not self._stopping.is_set():
            more = False
            for sink in sinks:
                if not sink.lock.acquire(blocking=False):
                    continue  # finish() is writing it on its own thread
                try:
                    more = self.write_round(sink) or more
                finally:
                    sink.lock.release()

    def on_stop(self) -> None:
        with self._sinks_lock:
            sinks = list(self._sinks.values())
        for sink in sinks:
            with sink.lock:
                self.write_round(sink)

    # ------------------------------------------------------------- writing
    def drain(self, sink: RunSink, timeout: float) -> bool:
        """Write everything ``sink`` holds, on the caller's thread (``finish()``); keep
        trying while the store does not take writes, up to ``timeout`` seconds.
        Returns whether everything was written."""
        deadline = time.monotonic() + timeout
        while True:
            with sink.lock:
                self.write_round(sink, heartbeat=False)
            if sink.idle:
                return True
            if sink.held is not None:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def write_round(self, sink: RunSink, heartbeat: bool = True) -> bool:
        """Write one batch of ``sink`` (call holding ``sink.lock``); return whether a full
        batch remains queued."""
        if not sink.claimed:
            try:
                sink.pk  # noqa: B018 -- claims the run in its new store
            except Exception as exc:
                self._held(sink, exc)
                return False
        if sink.startup:
            actions, sink.startup = sink.startup, []
            for action in actions:
                try:
                    action()
                except Exception as exc:
                    diagnostics.warn_once(f"startup:{sink.label}", f"nbtrack: starting run {sink.label}: {exc!r}")
        rows, system = sink.rows, sink.system
        n = min(len(rows), sink.batch_rows)
        items = list(itertools.islice(rows, n)) if n else []
        if n >= MIN_BATCH_ROWS:  # the next batches sized to these rows' width
            width = sum(map(len, map(operator.itemgetter(3), items))) / n
            sink.batch_rows = max(MIN_BATCH_ROWS, min(BATCH_ROWS, int(BATCH_VALUES / max(1.0, width))))
        samples = list(itertools.islice(system, len(system))) if system else []
        now = time.time()
        beat = heartbeat and now - sink._last_beat >= sink.heartbeat_interval
        summary_dirty, sink.summary_dirty = sink.summary_dirty, False
        summary_dirty = summary_dirty or bool(items)  # log() keeps the summary as it queues rows
        config, tags, fields, metadata = sink.config, sink.tags, dict(sink.fields), sink.metadata
        if not (
            items or samples or summary_dirty or config is not None or tags is not None or fields or beat or metadata
        ):
            return False
        if beat and not sink.store.still_there():
            diagnostics.warn_once(
                f"removed:{sink.label}:{id(sink)}",
                f"nbtrack: the store {sink.store.path} was removed while run {sink.label} was "
                "running; what it logs now goes to the removed file. Start a new run "
                "(nbtrack.init()) to write to a new store at that place",
            )
        encoded, raw, refused = self._encode(sink, items)
        change = _Change(
            summary=dict(sink._summary()) if summary_dirty else None,
            config=config,
            tags=tags,
            fields=fields or None,
            metadata=metadata,
            system=[(ts, sink.runtime(ts), encode_json(v)) for ts, v in samples],
            heartbeat=now if (beat or items) else None,
            runtime=sink.runtime(now),
            last_step=items[-1][0] if items else None,
        )
        try:
            sink.store.write_batch(
                sink.pk,
                encoded,
                summary=change.summary,
                config=change.config,
                tags=change.tags,
                fields=change.fields,
                metadata=change.metadata,
                heartbeat=change.heartbeat,
                last_step=change.last_step,
                runtime=change.runtime,
                system=change.system,
                set_aside=refused,
            )
        except Exception as exc:
            if classify(exc) == "store":
                self._restore(sink, summary_dirty)
                self._held(sink, exc)
                return False
            try:
                self._isolate(sink, encoded, raw if raw is not None else [item[3] for item in items], change, refused)
            except _StoreError as held:
                self._restore(sink, summary_dirty)
                self._held(sink, held.error)
                return False
        self._committed(sink, n, len(samples), config, tags, fields, now if beat else None)
        if metadata is not None and sink.metadata is metadata:
            sink.metadata = None
        if items:
            sink.last_step = items[-1][0]
            if items[-1][2] is not None:
                sink.last_cell = items[-1][2]
            sink.unsealed += n
            if sink.unsealed >= CHUNK_ROWS:
                self.seal(sink)
        return len(rows) >= sink.batch_rows

    @staticmethod
    def seal(sink: RunSink, final: bool = False) -> None:
        """Seal the run's written rows into columnar chunks; with ``final`` (at finish) the
        last short chunk too.  Chunks are derived from the rows, so a failure here only
        leaves more rows for readers to decode; it is not retried before the next chunk."""
        sink.unsealed = 0
        try:
            sink.store.seal_history(sink.pk, final=final)
        except Exception:
            pass

    def _encode(
        self, sink: RunSink, items: list[QueuedRow]
    ) -> tuple[list[HistoryRow], list[dict[str, Any]] | None, list[SetAsideEntry]]:
        """The rows as the store takes them, their data as logged when some rows could not
        even be encoded (else None: it is ``items``' data), and those rows' set-aside entries."""
        t0, offset, pk = sink.t0, sink.runtime_offset, sink.pk
        encode = sink.store.packer.encode
        try:
            encoded: list[HistoryRow] = []
            append = encoded.append
            for step, ts, cell, data in items:
                keyset, blob = encode(data)
                append(
                    (
                        pk,
                        step,
                        ts,
                        ts - t0 + offset,
                        cell,
                        None if keyset is None else (keyset.id if keyset.id is not None else keyset),
                        blob,
                    )
                )
            return encoded, None, []
        except Exception:  # nothing a row can hold should fail here; if it does, it fails alone
            pass
        encoded, raw, refused = [], [], []
        for step, ts, cell, data in items:
            try:
                encoded.extend(sink.store.encode_rows(sink.pk, [(step, ts, ts - t0 + offset, cell, data)]))
                raw.append(data)
            except Exception as exc:
                refused.append(_set_aside_entry(step, ts, "row", exc, data))
        self._report_set_aside(sink, refused)
        return encoded, raw, refused

    def _isolate(
        self,
        sink: RunSink,
        encoded: list[HistoryRow],
        raw: list[dict[str, Any]],
        change: _Change,
        refused: list[SetAsideEntry],
    ) -> None:
        """SQLite refused a batch for its content: write the rows in halves until each
        refused row is alone, set those aside, then write the other changes one by one."""
        store, pk = sink.store, sink.pk
        aside: list[SetAsideEntry] = []

        def attempt(start: int, end: int) -> None:
            try:
                store.write_batch(pk, encoded[start:end])
            except Exception as exc:
                if classify(exc) == "store":
                    raise _StoreError(exc) from None
                if end - start == 1:
                    step, ts = encoded[start][1:3]
                    aside.append(_set_aside_entry(step, ts, "row", exc, raw[start]))
                    return
                middle = (start + end) // 2
                attempt(start, middle)
                attempt(middle, end)

        if encoded:
            attempt(0, len(encoded))
        for what, kwargs in change.parts():
            try:
                store.write_batch(pk, [], **kwargs)
            except Exception as exc:
                if classify(exc) == "store":
                    raise _StoreError(exc) from None
                aside.append(_set_aside_entry(None, time.time(), what, exc, next(iter(kwargs.values()))))
        entries = refused + aside
        if entries:
            self._store_set_aside(sink, entries)
        if aside:
            self._report_set_aside(sink, aside)

    def _store_set_aside(self, sink: RunSink, entries: list[SetAsideEntry]) -> None:
        """Keep refused rows (or changes) in the ``set_aside`` table; a long one's full text
        goes to a file in the run's folder (SQLite may have refused it for its size) and
        the table holds its start and the file's name."""
        for step, ts, what, reason, text in entries:
            if len(text) > SET_ASIDE_INLINE:
                name = f"set_aside/{what}-{step if step is not None else 'x'}-{sink.set_aside + 1}.json"
                try:
                    path = sink.store.run_folder(f"runs/{sink.project}/{sink.run_id}") / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8", errors="backslashreplace")
                    text = f"{text[:SET_ASIDE_INLINE]}... ({len(text):,} characters; the whole text is in {name})"
                except OSError as exc:
                    text = f"{text[:SET_ASIDE_INLINE]}... ({len(text):,} characters; the rest was lost: {exc})"
            try:
                sink.store.write_batch(sink.pk, [], set_aside=[(step, ts, what, reason, text)])
            except Exception as exc:
                if classify(exc) == "store":
                    raise _StoreError(exc) from None
                sink.dropped += 1
                continue
            sink.set_aside += 1

    @staticmethod
    def _report_set_aside(sink: RunSink, entries: list[SetAsideEntry]) -> None:
        step, _ts, what, reason, _text = entries[0]
        at = f"the row at step {step}" if what == "row" else f"its {what}"
        diagnostics.warn_once(
            f"set-aside:{sink.label}:{id(sink)}",
            f"nbtrack: SQLite refused {at} of run {sink.label} ({reason}); it was set aside as text in the "
            "store's set_aside table and every other row was written (later such rows of this run are set "
            "aside without another warning)",
        )

    def _restore(self, sink: RunSink, summary_dirty: bool) -> None:
        if summary_dirty:
            sink.summary_dirty = True

    def _committed(
        self,
        sink: RunSink,
        rows: int,
        samples: int,
        config: Any,
        tags: Any,
        fields: dict[str, Any],
        beat: float | None,
    ) -> None:
        for _ in range(rows):
            sink.rows.popleft()
        for _ in range(samples):
            sink.system.popleft()
        if config is sink.config:
            sink.config = None
        if tags is sink.tags:
            sink.tags = None
        for key in fields:
            if sink.fields.get(key) is fields[key]:
                sink.fields.pop(key, None)
        if beat is not None:
            sink._last_beat = beat
        sink.rows_written += rows
        if sink.held is not None:
            self._recovered(sink)
        sink._notify()

    def _held(self, sink: RunSink, exc: BaseException) -> None:
        sink.held = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        sink._notify()  # a log() waiting for room stops waiting
        if not sink._warned_held:
            sink._warned_held = True
            diagnostics.warn(
                f"nbtrack: could not write run {sink.label} to {sink.store.root}: {sink.held}. Its rows are kept "
                f"({len(sink.rows):,} now) and written as soon as the store takes writes again; logging goes on",
                stacklevel=3,
            )
        excess = len(sink.rows) - MAX_HELD_ROWS
        if excess > 0:
            self.rescue_rows(sink, excess + MAX_HELD_ROWS // 2)
        over = len(sink.rows) - MAX_MEMORY_ROWS
        if over > 0:
            for _ in range(over):
                sink.rows.popleft()
            sink.dropped += over
            diagnostics.warn_once(
                f"dropped:{sink.label}:{id(sink)}",
                f"nbtrack: run {sink.label} holds {MAX_MEMORY_ROWS:,} rows its store has not taken and no rescue "
                f"file could be written; the oldest rows are dropped ({sink.dropped:,} so far)",
            )

    def _recovered(self, sink: RunSink) -> None:
        sink.held = None
        if sink._warned_held:
            sink._warned_held = False
            diagnostics.warn(
                f"nbtrack: the store {sink.store.root} takes writes again; run {sink.label} is written", stacklevel=4
            )
        if sink._rescue is not None:
            rescue, sink._rescue = sink._rescue, None
            rescue.close()
            try:
                replay(sink.store, rescue.path)
            except Exception:
                pass  # it stays in its file; the next opening of the store replays it

    def rescue_rows(self, sink: RunSink, count: int) -> int:
        """Move the ``count`` oldest queued rows to the run's rescue file (call holding
        ``sink.lock``); returns how many moved, 0 when the file cannot be written."""
        count = min(count, len(sink.rows))
        if count <= 0:
            return 0
        items = list(itertools.islice(sink.rows, count))
        try:
            sink.rescue_file().add_rows((step, ts, sink.runtime(ts), cell, data) for step, ts, cell, data in items)
        except OSError as exc:
            diagnostics.warn_once(
                f"rescue:{sink.label}:{id(sink)}", f"nbtrack: cannot write a rescue file for run {sink.label} ({exc})"
            )
            return 0
        for _ in range(count):
            sink.rows.popleft()
        sink.rescued += count
        return count


class _Change(Record):
    """A run's non-row writes of one round."""

    summary: dict[str, Any] | None
    config: dict[str, Any] | None
    tags: tuple[str, ...] | None
    fields: dict[str, Any] | None
    metadata: dict[str, Any] | None
    system: list[SystemRow]
    heartbeat: float | None
    runtime: float
    last_step: int | None

    def parts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each change alone, as ``write_batch`` keyword arguments, with its name."""
        for name in ("summary", "config", "tags", "fields", "metadata", "system"):
            value = getattr(self, name)
            if value:
                yield name, {name: value}
        if self.heartbeat is not None or self.last_step is not None:
            yield "state", {"heartbeat": self.heartbeat, "last_step": self.last_step, "runtime": self.runtime}


class _StoreError(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _set_aside_entry(step: int | None, ts: float, what: str, exc: BaseException, data: Any) -> SetAsideEntry:
    try:
        text = encode_json(data)
    except Exception:
        text = ascii(data)
    return step, ts, what, f"{type(exc).__name__}: {exc}", text
