"""``Run``: one tracked run, what ``init()`` returns.

A run owns what it uses: its queue to the store (``RunSink``), its system metrics
sampler, its sync to a tracking server, the integrations' patches and the front ends'
taps.  ``finish()`` (also run at exit and at kernel shutdown) releases them once, in a
fixed order, and announces ``RUN_FINISHED`` last.

``log()`` is on every user's hot path: it validates the row, applies the step rules
under the run's lock (so threads may share a run), updates the summary and appends to
the writer's queue; no I/O.
"""

from __future__ import annotations

import numbers
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import diagnostics, events, live
from .alerts import AlertMethods
from .artifacts import ArtifactMethods
from .diagnostics import NbtrackWarning
from .errors import UsageError
from .hyperparams import Config
from .integrations.torch_watch import WatchMethods
from .media import Media, MediaStore
from .metrics import MetricMethods, MetricRules
from .metrics import load as load_metrics
from .naming import check_tags, check_text
from .rows import MAX_STEP, RESERVED_KEYS, SCALARS, Summary, check_keys, checked_keys, normalise
from .run_files import FileMethods
from .store.writer import BatchWriter, RunSink

if TYPE_CHECKING:
    from .run_record import RunRecord
    from .settings import ResolvedSettings
    from .starts import Started
    from .store import LocalStore

__all__ = ["RESERVED_KEYS", "DisabledRun", "Run", "StepWarning"]


_now = time.time


class StepWarning(NbtrackWarning):
    """A logged row was dropped because its step was lower than the run's current step."""


class Run(ArtifactMethods, MetricMethods, FileMethods, AlertMethods, WatchMethods):
    """A run being tracked.  Create it with ``nbtrack.init()``, not directly.

    Attributes
    ----------
    id, name, project, entity, notes, tags, group, job_type
        Who the run is.  ``name``, ``notes`` and ``tags`` may be changed while it runs.
    config, summary
        Hyper-parameters, and the last value of each logged key.
    dir, path, step, state, resumed, start_time
        Where its files are, ``entity/project/id``, the next step, ``running``,
        ``finished`` or ``failed``, whether it continued an earlier run, and when it
        started (seconds since the epoch).
    """

    cell: int | None = None  # execution count of the cell now running (set by the IPython layer)
    sweep_id: str | None = None  # the sweep this run is a trial of
    after_log: Callable[[int, dict[str, Any]], None] | None = None  # called after each log(), outside the lock

    def __init__(
        self,
        started: Started,
        *,
        store: LocalStore,
        project: str,
        mode: str,
        dir: Path,
        settings: ResolvedSettings,
        allow_val_change: bool,
        save_code: bool,
        start_time: float,
        owner: dict[str, Any],
        on_closed: Callable[[Run], None],
        anonymous: str = "never",
        claim: Callable[[], int] | None = None,
    ) -> None:
        self._id = started.run_id
        self._name = started.name
        self._project = project
        self._entity = started.entity
        self._notes = started.notes
        self._tags = started.tags
        self._group = started.group
        self._job_type = started.job_type
        self._mode = mode
        self._resumed = started.resumed
        self._parent = started.parent
        self._start_time = start_time
        self._settings = settings
        self._save_code = save_code
        self._anonymous = anonymous
        self._dir = dir
        self._folder = store.run_folder(started.folder)
        self._lock = threading.Lock()  # makes log() atomic: threads may share a run
        self._refusal: str | None = None  # why writes are refused: finished, or a forked child's copy
        self._owner_pid = os.getpid()
        self._summary_data = dict(started.summary)
        self._summary = Summary(self._summary_data, self)
        self._config = Config(started.config, allow_val_change=allow_val_change, on_change=self._config_changed)
        self._step = started.step
        self._pending: dict[str, Any] | None = None
        self._state = "running"
        self._exit_code: int | None = None
        self._taps: list[Callable[[tuple], None]] = []
        self._system_taps: list[Callable[[tuple], None]] = []
        self._media = MediaStore(self._folder, store.objects)
        self._writer = BatchWriter.get()
        self._sink = RunSink(
            store,
            started.pk,
            t0=start_time,
            runtime_offset=started.runtime_offset,
            summary=lambda: self._summary_data,
            heartbeat_interval=settings.heartbeat_interval,
            label=f"{project}/{started.run_id}",
            project=project,
            run_id=started.run_id,
            owner=owner,
            claim=claim,
        )
        self._rows = self._sink.rows
        self._writer.add(self._sink, settings.flush_interval)
        self._sampler: Any = None  # SystemSampler, started by start_sampler()
        self._sampler_lock = threading.Lock()
        self._sampler_closed = False
        self._sync: Any = None  # the RunSync of an online run
        self._detach: list[Callable[[], None]] = []  # integrations to undo at finish
        self._on_closed = on_closed
        self._close_lock = threading.RLock()
        self._closing: set[str] = set()  # the steps of close() already done
        self._in_close = False
        self._detached = False
        self._metrics: MetricRules | None = None  # define_metric()'s rules, applied in log()
        if started.resumed:
            self._reload_metrics(store, self._sink.pk)
        self._watched_files: list[tuple[str, str | None, str]] = []  # save(policy="live"|"end")
        self._alerted: dict[str, float] = {}  # alert title -> when it was last raised
        self._watches: list = []  # watch()'s hooks on torch models
        live.add(self)

    # ---------------------------------------------------------------- logging
    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Log one row of metrics.

        Parameters
        ----------
        data
            A dict of string keys to numbers, strings, booleans or ``None``
            (numpy and 0-d tensor values become Python scalars; nested dicts
            become ``a/b`` keys), or ``nbtrack.Image``, ``Video``, ``Histogram``
            and ``Table`` values (or lists of them): their files go into the
            run's folder and the row holds references.
        step
            The step to log at (an integer from 0 to 2**63 - 1).  Without it, the row
            goes to the current step and the step advances.  A step higher than the
            current one opens a new row; a lower one is dropped with a warning.
        commit
            ``False`` accumulates into the current row without advancing.  The
            default is ``True`` without ``step`` and ``False`` with it.

        Once ``log()`` returns, the row reaches the store (see the README's
        Guarantees); safe to call from several threads at once.
        """
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise TypeError(f"log: data must be a dict of metric names to values, got {type(data).__name__}")
            data = dict(data)
        bad = None
        # a key set seen before is known to be plain strings, none reserved
        if (tuple(data) in checked_keys or check_keys(data)) and SCALARS.issuperset(map(type, data.values())):
            row = data.copy()
        else:
            row, bad = normalise(data, self._store_media)
        if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
            step = _check_step(step)
        with self._lock:
            if self._refusal is not None:
                raise UsageError(f"log: {self._refusal}")
            if step is not None:
                cur = self._step
                if step < cur:
                    warnings.warn(
                        f"nbtrack: log(step={step}) is lower than the run's current step {cur}; "
                        "steps must not go back, so this row is dropped",
                        StepWarning,
                        stacklevel=2,
                    )
                    return
                if step > cur:
                    if self._pending is not None:
                        self._commit()
                    self._step = step
                if commit is None:
                    commit = False
            metrics = self._metrics
            if metrics is None:
                self._summary_data.update(row)
            else:
                metrics.apply(row, self._summary_data)  # define_metric(): summaries, step sync
            pending = self._pending
            if pending is not None:
                pending.update(row)
                row = pending
            if commit is False:
                self._pending = row
            else:
                # the commit, inline: the row is queued by the last statement, after the
                # run's state moved on (see _commit)
                current = self._step
                cell = self.cell
                item = (current, _now(), cell, row)
                if pending is not None:
                    self._pending = None
                self._step = current + 1
                rows = self._rows
                rows.append(item)
                if self._taps:
                    for tap in self._taps:
                        tap(item)
                if len(rows) >= self._sink.batch_rows:
                    self._backlog(len(rows))
        if self.after_log is not None:  # a sweep trial reports its metric (and may be pruned)
            self.after_log(self._step - 1 if commit is not False else self._step, row)
        if bad:
            raise TypeError(
                f"log: cannot log {', '.join(bad)}; log numbers, strings, booleans, None, "
                "nbtrack.Image, Video, Histogram or Table (the other values of this call were logged)"
            )

    def _commit(self) -> None:
        """Queue the open row (call holding ``_lock``).  The row is queued by the last
        statement, after the run's state moved on: an interrupt between statements can
        leave the row unqueued only if this call has not returned, never half-queued."""
        step = self._step
        cell = self.cell
        row = self._pending
        assert row is not None  # only called with a row open
        item = (step, _now(), cell, row)
        self._pending = None
        self._step = step + 1
        self._rows.append(item)
        if self._taps:
            for tap in self._taps:
                tap(item)

    def _backlog(self, queued: int) -> None:
        batch = self._sink.batch_rows
        if queued >= 2 * batch:
            self._sink.wait_for_room(self._writer)
        elif queued % batch == 0:
            self._writer.wake()  # a full batch is ready: no need to wait for the next interval

    def _store_media(self, key: str, value: Media) -> dict[str, Any]:
        """Write a media value's file into the run folder; the reference the row holds."""
        return value._reference(self._media)

    def tap_rows(self, tap: Callable[[tuple], None]) -> Callable[[], None]:
        """Call ``tap((step, timestamp, cell, row))`` for every committed row, on the
        logging thread.

        For front ends such as the panel: the tap must be cheap (``deque.append``)
        and must not change the row.  Returns a function that removes the tap.
        """
        self._taps = [*self._taps, tap]

        def remove() -> None:
            self._taps = [t for t in self._taps if t is not tap]

        return remove

    def tap_system(self, tap: Callable[[tuple], None]) -> Callable[[], None]:
        """Call ``tap((timestamp, runtime, values))`` for every system metric sample, on
        the sampler's thread.  Same rules as ``tap_rows``; returns the remover."""
        self._system_taps = [*self._system_taps, tap]

        def remove() -> None:
            self._system_taps = [t for t in self._system_taps if t is not tap]

        return remove

    def _system_sample(self, timestamp: float, values: dict[str, float]) -> None:
        self._sink.system.append((timestamp, values))
        if self._system_taps:
            item = (timestamp, self._sink.runtime(timestamp), values)
            for tap in self._system_taps:
                tap(item)

    # --------------------------------------------------- what the run owns
    def start_sampler(self) -> None:
        """Start the system metrics sampler (``Settings.system_interval``; 0 = none);
        not once the run is closing."""
        from . import system

        with self._sampler_lock:
            if self._sampler_closed or self._sampler is not None:
                return
            self._sampler = system.start_sampler(
                self._settings.system_interval, self._system_sample, str(self._folder), self._sink.label
            )

    def _stop_sampler(self) -> None:
        self.start_sampler()  # a run finished before the writer started its sampler still gets its last sample
        with self._sampler_lock:
            self._sampler_closed = True
            sampler = self._sampler
        if sampler is not None:
            sampler.stop()

    def start_sync(self, server: Any, sync_command: str, say: Callable[[str], None]) -> None:
        """Sync this run to ``server`` in the background (online mode)."""
        from . import sync

        self._sync = sync.SyncService.get().attach(
            self._sink.store,
            self._sink.pk,
            server,
            label=self._sink.label,
            sync_command=sync_command,
            connect_timeout=self._settings.init_timeout,
            say=say,
        )

    def attach(self, undo: Callable[[], None]) -> None:
        """Keep ``undo`` to call at finish (an integration's patch of this run)."""
        self._detach.append(undo)

    def record_code(self, saved: dict[str, Any]) -> None:
        """Record in the run's metadata what was saved of its code (session history,
        notebook, program), so ``Api`` and the sync can find it."""
        self._sink.store.update_metadata(self._sink.pk, {"code": saved})

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything logged so far into the store now, on this thread, and return
        whether it is there (False while the store does not take writes, after
        ``timeout`` seconds, default ``finish_timeout``).  A row still open
        (``commit=False``) stays open.  Never needed for safety: the writer thread does
        this every ``flush_interval``."""
        if self._detached:
            return False
        wait = self._settings.finish_timeout if timeout is None else timeout
        return self._writer.drain(self._sink, wait)

    # ------------------------------------------------------------- lifecycle
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """End the run: write what is queued and record its final state.

        Exit code ``0`` (or ``None``) means ``finished``; anything else ``failed``.
        Calling it again does nothing.  It never raises because of the store: what
        the store cannot take within ``finish_timeout`` is kept in a rescue file (see
        the README's Guarantees).  Interrupted (Ctrl-C), it can be called again and
        goes on where it stopped.
        """
        if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
            raise UsageError(f"finish: exit_code must be an integer or None, got {exit_code!r}")
        if self._detached:
            diagnostics.warn_once(
                f"detached-finish:{self._id}",
                f"nbtrack: finish() of run {self._id} in a forked child does nothing: the run "
                f"belongs to process {self._owner_pid}",
            )
            return
        with self._close_lock:
            if "finished" in self._closing or self._in_close:
                return  # done, or called again from inside finish() (by a listener)
            self._in_close = True
            try:
                self._close(exit_code, bool(quiet) if quiet is not None else bool(self._settings.quiet))
            finally:
                self._in_close = False

    def _close(self, exit_code: int | None, quiet: bool) -> None:
        # Each step runs once; an interrupted finish() goes on with the first step not done.
        self._step_once("refuse", lambda: self._refuse_writes(exit_code))
        self._step_once("integrations", self._undo_integrations)
        self._step_once("files", self._save_watched)
        self._step_once("sampler", self._stop_sampler)
        self._step_once("ending", lambda: events.bus.emit(events.RUN_ENDING, run=self))
        self._step_once("store", self._write_end)
        self._step_once("said", lambda: diagnostics.say(self._ending_line(), quiet=quiet))
        self._step_once("manager", self._leave)
        if self._sync is not None:
            self._step_once("sync", lambda: self._sync.finish(self._settings.sync_timeout))
        self._closing.add("finished")
        events.bus.emit(events.RUN_FINISHED, run=self)

    def _leave(self) -> None:
        live.remove(self)
        self._on_closed(self)

    def _step_once(self, name: str, work: Callable[[], Any]) -> None:
        if name in self._closing:
            return
        try:
            work()
        except Exception as exc:  # finish() reports and goes on: the next steps still matter
            diagnostics.warn(f"nbtrack: finishing run {self._sink.label}: {name} failed ({exc!r})")
        self._closing.add(name)

    def _refuse_writes(self, exit_code: int | None) -> None:
        with self._lock:
            if self._pending is not None:
                self._commit()
            self._exit_code = exit_code
            self._state = "finished" if not exit_code else "failed"
            self._refusal = (
                f"run {self._name} ({self._id}) is {self._state}; start a new run with "
                "nbtrack.init() (or resume this one with resume='allow')"
            )
        self._config._lock(f"run {self._name} ({self._id}) is {self._state}")

    def _undo_integrations(self) -> None:
        while self._detach:
            undo = self._detach.pop()
            try:
                undo()  # copies TensorBoard event files into the run folder, for one
            except Exception as exc:
                diagnostics.warn(f"nbtrack: finishing an integration of run {self._sink.label} failed ({exc!r})")

    def _ending_line(self) -> str:
        where = self._sink.store.root if self.storage["rescued"] else self._folder
        return f"run {self._name} ({self._id}) {self._state}: {self.rows_logged:,} rows; data in {where}"

    def _write_end(self) -> None:
        """Everything queued into the store, then the run's end; what the store does not
        take within ``finish_timeout`` goes to a rescue file, replayed later."""
        sink, writer = self._sink, self._writer
        store = sink.store
        drained = writer.drain(sink, self._settings.finish_timeout)
        runtime = sink.runtime()
        final: dict[str, Any] = {
            "state": self._state,
            "exit_code": self._exit_code,
            "runtime": runtime,
            "finished_at": time.time(),
        }
        problem = sink.held
        if drained:
            try:
                store.finish_run(
                    sink.pk,
                    self._state,
                    self._exit_code,
                    runtime,
                    busy_timeout=max(1.0, self._settings.finish_timeout),
                )
            except Exception as exc:
                drained, problem = False, f"{type(exc).__name__}: {exc}"
        if drained:
            writer.seal(sink, final=True)
        writer.remove(sink)
        if not drained:
            self._rescue(final, problem)
        elif self._state == "finished":
            store.clear_auto_marker(self._project, self._id)
        store.checkpoint()
        diagnostics.forget(f"{sink.label}:")

    def _rescue(self, final: dict[str, Any], problem: str | None) -> None:
        sink = self._sink
        with sink.lock:
            rows = len(sink.rows)
            moved = self._writer.rescue_rows(sink, rows)
            final.update(
                summary=dict(self._summary_data),
                config=self._config.as_dict(),
                tags=list(self._tags),
                fields={"name": self._name, "notes": self._notes},
            )
            try:
                rescue = sink.rescue_file()
                rescue.add_final(final)
                rescue.close()
            except OSError as exc:
                sink.dropped += rows - moved
                for _ in range(len(sink.rows)):
                    sink.rows.popleft()
                diagnostics.warn(
                    f"nbtrack: run {sink.label} could not be finished in {sink.store.root} "
                    f"({problem}) and no rescue file could be written ({exc}); "
                    f"{rows - moved:,} rows and its end state are lost"
                )
                return
        diagnostics.warn(
            f"nbtrack: the store {sink.store.root} did not take the end of run {sink.label} within "
            f"finish_timeout ({problem}); {moved:,} rows and its end state were saved to {rescue.path}, which "
            "nbtrack adds to the store the next time it opens it (any init() or Api() there)"
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=1 if exc_type is not None else 0)

    def _check_writable(self, what: str) -> None:
        if self._refusal is not None:
            raise UsageError(f"{what}: {self._refusal}")

    def _detach_after_fork(self) -> None:
        """In a forked child: this run belongs to the parent; refuse writes, touch nothing."""
        self._detached = True
        self._refusal = (
            f"run {self._id} belongs to process {self._owner_pid}, and this is a forked child "
            f"(process {os.getpid()}); call nbtrack.init() in the child to log from it"
        )
        self._lock = threading.Lock()
        self._close_lock = threading.RLock()

    def _reload_metrics(self, store: LocalStore, pk: int) -> None:
        """A resumed run keeps its define_metric() rules."""
        try:
            with store.lock:
                defined = load_metrics(store.con, pk)
        except Exception as exc:  # the run goes on with the default summaries
            diagnostics.warn(f"nbtrack: the metric definitions of run {self._id} could not be read ({exc!r})")
            return
        if defined:
            self._metrics = MetricRules()
            for metric in defined:
                self._metrics.add(metric)

    # ------------------------------------------------ what wandb code reads
    @property
    def metric_rules(self) -> MetricRules | None:
        """``define_metric``'s rules (for front ends: x axes, hidden keys), or None."""
        return self._metrics

    @property
    def offline(self) -> bool:
        """True unless the run syncs to a tracking server."""
        return self._mode != "online"

    disabled = False

    def get_url(self) -> str | None:
        """The run's page on the tracking server (online), else None (as wandb offline)."""
        return self.url

    def get_project_url(self) -> str | None:
        """The project's page on the tracking server (online), else None."""
        url = self.url
        return url.rsplit("/runs/", 1)[0] if url else None

    def get_sweep_url(self) -> str | None:
        return None

    def mark_preempting(self) -> None:
        """Record that the process is about to be stopped by its scheduler (the run reads
        as preempted until it is resumed or finished)."""
        self._sink.store.update_metadata(self._sink.pk, {"preempting": time.time()})

    def display(self, height: int = 420, hidden: bool = False) -> bool:
        """Show the run's live panel in a notebook (nothing happens elsewhere); whether
        it was shown."""
        if hidden or not events.bus.has(events.DISPLAY):
            return False
        events.bus.emit(events.DISPLAY, run=self, height=height)
        return True

    def to_html(self, height: int = 420, hidden: bool = False) -> str:
        """The run as a self-contained HTML page fragment: its charts, summary and config
        as they are now (what a finished run's notebook output holds), interactive where
        scripts run and static SVG where they do not.  ``height`` bounds the shown
        height (it scrolls); ``hidden`` hides it until shown by the page's own styles."""
        from .page import run_fragment, run_state

        return run_fragment(run_state(self.record()), height=height, hidden=hidden)

    def record(self) -> RunRecord:
        """The run as stored now (everything logged so far flushed first): what
        ``nbtrack.Api().run(path)`` returns."""
        from .artifacts import _record

        self.flush()
        found = _record(self._sink.store, self._sink.pk)
        if found is None:
            raise UsageError(f"run {self.path} is not in its store {self._sink.store.root} (was it deleted?)")
        return found

    def join(self, exit_code: int | None = None) -> None:
        """wandb's old name for ``finish``."""
        self.finish(exit_code)

    def _config_changed(self, data: dict) -> None:
        self._sink.set_config(data)
        events.bus.emit(events.CHANGED, run=self, what="config")

    def _summary_changed(self) -> None:
        self._sink.summary_dirty = True
        events.bus.emit(events.CHANGED, run=self, what="summary")

    def _set_field(self, column: str, attr: str, value: Any) -> None:
        self._check_writable(attr.lstrip("_"))
        setattr(self, attr, value)
        self._sink.set_field(column, value)
        events.bus.emit(events.CHANGED, run=self, what=attr.lstrip("_"))

    # ------------------------------------------------------------- properties
    id = property(lambda self: self._id, doc="The run's id, unique in its project.")
    project = property(lambda self: self._project)
    entity = property(lambda self: self._entity)
    mode = property(lambda self: self._mode)
    resumed = property(lambda self: self._resumed)
    start_time = property(lambda self: self._start_time)
    config = property(lambda self: self._config)
    summary = property(lambda self: self._summary)
    step = property(lambda self: self._step, doc="The step the next committed row gets.")
    state = property(lambda self: self._state)
    exit_code = property(lambda self: self._exit_code)
    finished = property(
        lambda self: self._refusal is not None and not self._detached, doc="Whether finish() has ended the run."
    )
    data_complete = property(
        lambda self: self.finished and "sampler" in self._closing,
        doc="Whether finish() has stopped everything that adds to the run's data: rows are "
        "refused and the system sampler has taken its last sample (a panel folds it in).",
    )
    detached = property(
        lambda self: self._detached, doc="True in a forked child: the run belongs to the parent process."
    )

    @property
    def rows_logged(self) -> int:
        """Rows committed by this process (written, queued, rescued, set aside or dropped)."""
        sink = self._sink
        return sink.rows_written + len(sink.rows) + sink.rescued + sink.set_aside + sink.dropped

    parent = property(lambda self: self._parent, doc="For a fork: {'id', 'step'} of its source.")
    settings = property(lambda self: self._settings, doc="The resolved nbtrack.Settings this run started with.")
    saves_code = property(lambda self: self._save_code, doc="Whether init() was asked to save_code.")
    anonymous = property(
        lambda self: self._anonymous, doc="'never', 'allow' or 'must': with 'must' nothing saved says who ran it."
    )
    store_dir = property(lambda self: str(self._dir), doc="The dir its store is under (<dir>/nbtrack).")
    url = property(
        lambda self: self._sync.url if self._sync is not None else None,
        doc="The run's page in the MLflow UI (online mode, once the server has the run).",
    )

    @property
    def last_cell(self) -> int | None:
        """Execution count of the notebook cell that committed the latest row."""
        rows = self._rows
        if rows:
            cell = rows[-1][2]
            if cell is not None:
                return cell
        return self._sink.last_cell

    @property
    def row_in_progress(self) -> dict[str, Any]:
        """The values logged with ``commit=False`` that the next commit will store."""
        with self._lock:
            return dict(self._pending or {})

    @property
    def storage(self) -> dict[str, int]:
        """Where its rows are: ``written`` (in the store), ``queued``, ``rescued`` (in a
        rescue file), ``set_aside`` (refused by SQLite, kept as text), ``dropped``."""
        sink = self._sink
        return {
            "written": sink.rows_written,
            "queued": len(sink.rows),
            "rescued": sink.rescued,
            "set_aside": sink.set_aside,
            "dropped": sink.dropped,
        }

    @property
    def sync_status(self) -> dict[str, Any] | None:
        """Online mode: ``{'server', 'state', 'sent', 'pending', 'error'}``; None offline."""
        return self._sync.status() if self._sync is not None else None

    @property
    def dir(self) -> str:
        """The folder holding the run's files (saved code, media)."""
        return str(self._folder)

    @property
    def path(self) -> str:
        parts = [self._entity, self._project, self._id] if self._entity else [self._project, self._id]
        return "/".join(parts)

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"name: expected a non-empty string, got {value!r}")
        self._set_field("name", "_name", check_text(value, "name"))

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._set_field("notes", "_notes", check_text(value, "notes", multiline=True))

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def job_type(self) -> str | None:
        return self._job_type

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Any) -> None:
        self._check_writable("tags")
        self._tags = check_tags(value)
        self._sink.set_tags(self._tags)
        events.bus.emit(events.CHANGED, run=self, what="tags")

    def __repr__(self) -> str:
        return f"<nbtrack.Run {self.path} name={self._name!r} state={self._state} step={self._step}>"


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"log: step must be an integer, got {step!r}")
    step = int(step)
    if not 0 <= step <= MAX_STEP:
        raise UsageError(
            f"log: step={step} is out of range; steps are integers from 0 to 2**63 - 1 "
            "(nothing of this call was logged)"
        )
    return step


class DisabledRun:
    """What ``init(mode="disabled")`` returns: the ``Run`` interface, doing nothing.

    It becomes ``nbtrack.run`` like any run, so module-level ``nbtrack.log``,
    ``config``, ``summary`` and ``finish`` work on it.  Config and summary keep values
    in memory so that code reading them runs; no file is written anywhere.
    """

    mode = "disabled"
    url = None
    dir = None
    resumed = False
    parent = None
    entity = None
    group = None
    job_type = None
    notes = None
    sync_status = None
    exit_code = None
    detached = False
    saves_code = False
    last_cell = None

    def __init__(
        self,
        run_id: str,
        name: str,
        project: str,
        config: dict[str, Any],
        on_closed: Callable[[DisabledRun], None] | None = None,
    ) -> None:
        self.id = run_id
        self.name = name
        self.project = project
        self.tags: tuple[str, ...] = ()
        self.config = Config(config, allow_val_change=True)
        self.summary: dict[str, Any] = {}
        self.step = 0
        self.state = "disabled"
        self.finished = False
        self.start_time = time.time()
        self.path = f"{project}/{run_id}"
        self.rows_logged = 0
        self._on_closed = on_closed

    def log(self, data: Any, step: int | None = None, commit: bool | None = None) -> None:
        return None

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        if not self.finished:
            self.finished = True
            if self._on_closed is not None:
                self._on_closed(self)

    def tap_rows(self, tap: Callable[[tuple], None]) -> Callable[[], None]:
        return lambda: None

    def tap_system(self, tap: Callable[[tuple], None]) -> Callable[[], None]:
        return lambda: None

    # The rest of Run's methods, doing nothing (wandb's disabled mode does the same):
    # artifacts are returned as they were given (a name gives an empty one), files are
    # not kept, alerts not raised.
    disabled = True
    offline = False
    sweep_id = None
    storage = property(lambda self: {"written": 0, "queued": 0, "rescued": 0, "set_aside": 0, "dropped": 0})

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        from .artifacts import Artifact

        if isinstance(artifact_or_path, Artifact):
            return artifact_or_path
        return Artifact(name or "artifact", type or "unspecified")

    def use_artifact(
        self,
        artifact_or_name: Any,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Any:
        from .artifacts import Artifact, make_name_safe

        if isinstance(artifact_or_name, Artifact):
            return artifact_or_name
        name = str(artifact_or_name).split(":")[0].rsplit("/", 1)[-1]
        return Artifact(make_name_safe(name), type or "unspecified")

    def link_artifact(self, artifact: Any, target_path: str, aliases: list[str] | None = None) -> Any:
        return artifact

    def log_model(self, path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
        return self.log_artifact(path, name=name, type="model")

    def use_model(self, name: str) -> None:
        return None

    def link_model(
        self, path: Any, registered_model_name: str, name: str | None = None, aliases: list[str] | None = None
    ) -> Any:
        return self.log_model(path, name)

    def logged_artifacts(self) -> list[Any]:
        return []

    used_artifacts = logged_artifacts

    def define_metric(
        self,
        name: str,
        step_metric: Any = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Any:
        from .metrics import parse

        return parse(name, getattr(step_metric, "name", step_metric), step_sync, hidden, summary, goal)

    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> list[str]:
        return []

    def restore(self, name: str, run_path: str | None = None, replace: bool = False, root: str | None = None) -> None:
        return None

    def log_code(
        self, root: Any = ".", name: str | None = None, include_fn: Any = None, exclude_fn: Any = None
    ) -> None:
        return None

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> bool:
        return False

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def get_url(self) -> None:
        return None

    get_project_url = get_sweep_url = get_url

    def mark_preempting(self) -> None:
        return None

    def display(self, height: int = 420, hidden: bool = False) -> bool:
        return False

    def watch(
        self,
        models: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
    ) -> None:
        return None

    def unwatch(self, models: Any = None) -> None:
        return None

    def to_html(self, height: int = 420, hidden: bool = False) -> str:
        return f"<div>nbtrack run {self.name} (disabled: nothing is stored)</div>"

    def join(self, exit_code: int | None = None) -> None:
        self.finish(exit_code)

    def __enter__(self) -> DisabledRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish()

    def __repr__(self) -> str:
        return f"<nbtrack.Run {self.path} (disabled)>"
