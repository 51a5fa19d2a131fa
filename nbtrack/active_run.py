"""``Run``: one tracked run, what ``init()`` returns.

``log()`` is on every user's hot path: it validates the row, applies the step
rules, updates the summary and appends to the writer's queue; no I/O, no locks.
"""

from __future__ import annotations

import datetime
import numbers
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from . import events
from .hyperparams import Config
from .errors import UsageError
from .media import Media, MediaStore
from .naming import check_tags, check_text
from .values import scalar

if TYPE_CHECKING:
    from .store import RunSink

_SCALARS = frozenset((float, int, str, bool, type(None)))
_STR = frozenset((str,))
RESERVED_KEYS = frozenset(("_step", "_timestamp", "_runtime", "_cell"))
# Rows a run may queue before log() writes a batch itself.  The writer thread keeps
# up with any real training loop; only a tight loop of pure logging gets this far,
# and then memory stays bounded (about 1 kB a queued row) instead of growing.
MAX_BACKLOG = 20_000


class StepWarning(UserWarning):
    """A logged row was dropped because its step was lower than the run's current step."""


def _normalise(data: Mapping[Any, Any], media: Callable[[str, Media], Any] | None = None
               ) -> tuple[dict[str, Any], list[str]]:
    """The slow path of ``log``: convert values, store media, flatten nested dicts,
    collect bad keys."""
    row: dict[str, Any] = {}
    bad: list[str] = []

    def put(key: str, value: Any) -> None:
        kind = type(value)
        if kind in _SCALARS:
            row[key] = value
            return
        if media is not None and isinstance(value, Media):
            try:
                row[key] = media(key, value)
            except OSError as exc:
                bad.append(f"{key!r} (could not store the {value.kind}: {exc})")
            return
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                if not isinstance(sub, str):
                    raise TypeError(f"log: keys must be strings, got {sub!r} under {key!r}")
                put(f"{key}/{sub}", inner)
            return
        converted = scalar(value)
        if type(converted) in _SCALARS:
            row[key] = converted
        elif isinstance(value, bool):
            row[key] = bool(value)
        elif isinstance(value, numbers.Integral):
            row[key] = int(value)
        elif isinstance(value, numbers.Real):
            row[key] = float(value)
        elif isinstance(value, str):
            row[key] = str(value)
        elif isinstance(value, (datetime.datetime, datetime.date)):
            row[key] = value.isoformat()
        elif isinstance(value, (list, tuple)) and all(type(scalar(v)) in _SCALARS for v in value):
            row[key] = [scalar(v) for v in value]
        elif media is not None and isinstance(value, (list, tuple)) and value and all(
                isinstance(v, Media) for v in value):
            try:
                row[key] = [media(key, v) for v in value]
            except OSError as exc:
                bad.append(f"{key!r} (could not store the {value[0].kind}: {exc})")
        else:
            bad.append(f"{key!r} ({type(value).__module__}.{type(value).__qualname__})")

    for key in data:
        if not isinstance(key, str):
            raise TypeError(f"log: keys must be strings, got {key!r} ({type(key).__name__})")
    for key, value in data.items():
        put(str(key), value)
    return row, bad


class Summary:
    """The last value of each logged key, plus anything set by hand (``run.summary``)."""

    def __init__(self, data: dict[str, Any], run: "Run") -> None:
        self._data = data
        self._run = run

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self._run._check_writable("summary")
        del self._data[key]
        self._run._summary_changed()

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def values(self):
        return self._data.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def update(self, values: Mapping[str, Any]) -> None:
        self._run._check_writable("summary")
        row, bad = _normalise(values, self._run._store_media)
        if bad:
            raise TypeError(f"summary: cannot store {', '.join(bad)}")
        self._data.update(row)
        self._run._summary_changed()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"


class Run:
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

    def __init__(
        self,
        *,
        run_id: str,
        name: str,
        project: str,
        entity: str | None,
        notes: str | None,
        tags: tuple[str, ...],
        group: str | None,
        job_type: str | None,
        mode: str,
        config: dict[str, Any],
        allow_val_change: bool,
        summary: dict[str, Any],
        step: int,
        resumed: bool,
        start_time: float,
        folder: Path | None,
        sink: "RunSink",
        finish_timeout: float,
        on_finish: Callable[["Run", int | None], None],
        parent: dict[str, Any] | None = None,
    ) -> None:
        self._id = run_id
        self._name = name
        self._project = project
        self._entity = entity
        self._notes = notes
        self._tags = tags
        self._group = group
        self._job_type = job_type
        self._mode = mode
        self._resumed = resumed
        self._start_time = start_time
        self._folder = folder
        self._sink = sink
        self._rows = sink.rows
        self._finish_timeout = finish_timeout
        self._on_finish = on_finish
        self._parent = parent
        self._summary_data = summary
        self._summary = Summary(summary, self)
        self._config = Config(config, allow_val_change=allow_val_change, on_change=self._config_changed)
        self._step = step
        self._pending: dict[str, Any] | None = None
        self._rows_logged = 0
        self._finished = False
        self._state = "running"
        self._exit_code: int | None = None
        self._finish_lock = threading.Lock()
        self._closed_reason: str | None = None
        self._taps: list[Callable[[tuple], None]] = []
        self._system_taps: list[Callable[[tuple], None]] = []
        self._sampler = None  # the SystemSampler, when system metrics are on
        self._sync = None  # the RunSync of an online run
        self._media = MediaStore(folder)
        self._detach: list[Callable[[], None]] = []  # integrations to undo at finish

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
            The step to log at.  Without it, the row goes to the current step and
            the step advances.  A step higher than the current one opens a new row;
            a lower one is dropped with a warning.
        commit
            ``False`` accumulates into the current row without advancing.  The
            default is ``True`` without ``step`` and ``False`` with it.
        """
        if self._finished:
            self._check_writable("log")
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise TypeError(
                    f"log: data must be a dict of metric names to values, got {type(data).__name__}"
                )
            data = dict(data)
        bad = None
        if _SCALARS.issuperset(map(type, data.values())) and _STR.issuperset(map(type, data)):
            row = data.copy()
        else:
            row, bad = _normalise(data, self._store_media)
        if not RESERVED_KEYS.isdisjoint(row):
            raise UsageError(
                f"log: {sorted(RESERVED_KEYS.intersection(row))} are reserved names; "
                "pass the step with log(..., step=N)"
            )
        cur = self._step
        if step is not None:
            if type(step) is not int:
                if isinstance(step, bool) or not isinstance(step, numbers.Integral):
                    raise TypeError(f"log: step must be an integer, got {step!r}")
                step = int(step)
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
                self._step = cur = step
            if commit is None:
                commit = False
        elif commit is None:
            commit = True
        if self._pending is None:
            self._pending = row
        else:
            self._pending.update(row)
        self._summary_data.update(row)
        if commit:
            self._commit()
        if bad:
            raise TypeError(
                f"log: cannot log {', '.join(bad)}; log numbers, strings, booleans, None, "
                "nbtrack.Image, Video, Histogram or Table (the other values of this call were logged)"
            )

    def _store_media(self, key: str, value: Media) -> dict[str, Any]:
        """Write a media value's file into the run folder; the reference the row holds."""
        return value._reference(self._media)

    def _commit(self) -> None:
        row = self._pending
        step = self._step
        self._pending = None
        self._step = step + 1
        self._rows_logged += 1
        rows = self._rows
        item = (step, time.time(), self.cell, row)
        rows.append(item)
        if len(rows) > MAX_BACKLOG:
            self._sink.flush()
        if self._taps:
            for tap in self._taps:
                tap(item)

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

    # ------------------------------------------------------------- lifecycle
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """End the run: write what is queued and record its final state.

        Exit code ``0`` (or ``None``) means ``finished``; anything else ``failed``.
        Calling it again does nothing.
        """
        with self._finish_lock:
            if self._finished:
                return
            if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
                raise UsageError(f"finish: exit_code must be an integer or None, got {exit_code!r}")
            if self._pending is not None:
                self._commit()
            self._finished = True
            self._exit_code = exit_code
            self._state = "finished" if not exit_code else "failed"
            self._closed_reason = f"run {self._name} ({self._id}) is {self._state}"
            self._config._lock(self._closed_reason)
            self._on_finish(self, exit_code)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finish(exit_code=1 if exc_type is not None else 0)
        return False

    def _check_writable(self, what: str) -> None:
        if self._finished:
            raise UsageError(
                f"{what}: {self._closed_reason}; start a new run with nbtrack.init() "
                "(or resume this one with resume='allow')"
            )

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
    finished = property(lambda self: self._finished)
    rows_logged = property(lambda self: self._rows_logged, doc="Rows committed by this process.")
    parent = property(lambda self: self._parent, doc="For a fork: {'id', 'step'} of its source.")
    url = property(lambda self: self._sync.url if self._sync is not None else None,
                   doc="The run's page in the MLflow UI (online mode, once the server has the run).")

    @property
    def sync_status(self) -> dict[str, Any] | None:
        """Online mode: ``{'server', 'state', 'sent', 'pending', 'error'}``; None offline."""
        return self._sync.status() if self._sync is not None else None

    @property
    def dir(self) -> str | None:
        """The folder holding the run's files (saved code, media)."""
        return None if self._folder is None else str(self._folder)

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
        self._set_field("name", "_name", value)

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._set_field("notes", "_notes", check_text(value, "notes"))

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


class DisabledRun:
    """What ``init(mode="disabled")`` returns: the ``Run`` interface, doing nothing.

    Config and summary still work in memory so that code reading them runs; no file
    is written anywhere.
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

    def __init__(self, run_id: str, name: str, project: str, config: dict[str, Any]) -> None:
        self.id = run_id
        self.name = name
        self.project = project
        self.tags: tuple[str, ...] = ()
        self.config = Config(config, allow_val_change=True)
        self.summary: dict[str, Any] = {}
        self.step = 0
        self.state = "disabled"
        self.start_time = time.time()
        self.path = f"{project}/{run_id}"
        self.rows_logged = 0

    def log(self, data: Any, step: int | None = None, commit: bool | None = None) -> None:
        return None

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        return None

    def __enter__(self) -> "DisabledRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<nbtrack.Run {self.path} (disabled)>"
