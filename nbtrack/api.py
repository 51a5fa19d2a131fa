"""The public API: ``init``, module-level ``log``/``finish``, and the ``Api`` reader."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .active_run import DisabledRun, Run
from .errors import Error, UsageError
from .manager import manager
from .records import RunList, RunRecord
from .settings import Settings
from .store import LocalStore, reader, store_root
from .store.local import open_readonly


def init(
    entity: str | None = None,
    project: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    id: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    tags: Sequence[str] | None = None,
    config: Any = None,
    config_exclude_keys: list[str] | None = None,
    config_include_keys: list[str] | None = None,
    allow_val_change: bool | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    force: bool | None = None,
    anonymous: str | None = None,
    reinit: bool | str | None = None,
    resume: bool | str | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
    save_code: bool | None = None,
    tensorboard: bool | None = None,
    sync_tensorboard: bool | None = None,
    monitor_gym: bool | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    magic: Any = None,
) -> Run | DisabledRun:
    """Start a run (or continue one) and return it.

    The parameters are those of ``wandb.init()``; see the README for how each one
    behaves in nbtrack.  Runs are written to ``<dir>/nbtrack/`` (``dir`` defaults
    to ``NBTRACK_DIR``, else the working directory).  In a notebook,
    ``allow_val_change`` defaults to True and ``reinit`` to ``'finish_previous'``;
    in a script, to False and ``'return_previous'``.

    Raises
    ------
    UsageError
        If an argument cannot be accepted; the message names it and what is accepted.
    """
    kw = {k: v for k, v in locals().items() if v is not None}
    return manager.init(**kw)


def _current() -> Run | DisabledRun:
    run = manager.current
    if run is None:
        raise Error("no active run: call nbtrack.init() first")
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log to the current run (``nbtrack.run``); see ``Run.log``."""
    run = manager.current
    if run is None:
        raise Error("nbtrack.log() was called before nbtrack.init(): call nbtrack.init() first")
    run.log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run, if there is one."""
    run = manager.current
    if run is not None:
        run.finish(exit_code=exit_code, quiet=quiet)


class _BeforeInit:
    """Stands in for ``nbtrack.config`` / ``nbtrack.summary`` before ``init()``: every
    read and write raises, so that a value set too early is not silently lost."""

    _what: str

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise Error(
            f"nbtrack.{self._what} is not available before nbtrack.init(): call nbtrack.init() first "
            f"(init(config=...) takes the config), then use nbtrack.{self._what}"
        )

    __getitem__ = __setitem__ = __delitem__ = __getattr__ = __setattr__ = __delattr__ = _fail
    __contains__ = __iter__ = __len__ = _fail

    def __repr__(self) -> str:
        return f"<nbtrack.{self._what} before init()>"


class Api:
    """Read runs back from a local store.

    Parameters
    ----------
    dir
        The ``dir`` the runs were written with; default ``NBTRACK_DIR``, else the
        working directory.  Runs are read from ``<dir>/nbtrack/``.
    stale_after
        Seconds without a heartbeat after which a ``running`` run of another machine
        (or an earlier boot) reads as ``crashed``; default ``NBTRACK_STALE_AFTER``, else 60.

    Raises
    ------
    UsageError
        When reading a store that is damaged or was written by a newer nbtrack.
    """

    def __init__(self, dir: str | os.PathLike[str] | None = None, stale_after: float | None = None) -> None:
        settings = Settings(stale_after=stale_after).resolve()
        if dir is None:
            dir = settings.dir or Path.cwd()
        self.root = store_root(dir)
        self.stale_after = settings.stale_after
        self._con: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        """A read-only connection (``StoreUnavailable`` for a damaged or newer store)."""
        if self._con is None:
            self._con = open_readonly(self.root)
            if self._con is not None:
                self._recover()
        return self._con

    def _recover(self) -> None:
        """Rows a process could not write before it ended (rescue files) go into the
        store first, when it can be written, so that what is read is complete."""
        if (self.root / "rescue").is_dir():
            try:
                LocalStore.open(self.root.parent)
            except UsageError:
                pass  # a read-only store: its rescue files wait for a writable opening

    def _history(self, pk: int, keys=None, object_hook=None):
        con = self._connection()
        return reader.history(con, pk, keys, object_hook=object_hook) if con is not None else []

    def _system(self, pk: int, keys=None):
        con = self._connection()
        return reader.system_metrics(con, pk, keys) if con is not None else []

    def runs(self, project: str | None = None, limit: int | None = None) -> RunList:
        """The runs of ``project`` (or of every project), newest first."""
        con = self._connection()
        found = RunList()
        found.project = project
        if con is not None:
            found.extend(
                RunRecord(row, self._history, self._system, self.root)
                for row in reader.list_runs(con, project, limit, self.stale_after)
            )
        return found

    def run(self, path: str) -> RunRecord:
        """One run, by ``"project/run_id"`` (or ``"entity/project/run_id"``)."""
        if not isinstance(path, str) or path.count("/") not in (1, 2):
            raise UsageError(f"Api.run: expected 'project/run_id' or 'entity/project/run_id', got {path!r}")
        project, run_id = path.split("/")[-2:]
        con = self._connection()
        row = reader.get_run(con, project, run_id, self.stale_after) if con is not None else None
        if row is None:
            raise UsageError(f"Api.run: no run {run_id!r} in project {project!r} under {self.root}")
        return RunRecord(row, self._history, self._system, self.root)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
