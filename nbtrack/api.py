"""The public API: ``init``, module-level ``log``/``finish``, and the ``Api`` reader."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import live
from .active_run import DisabledRun, Run
from .errors import Error, UsageError
from .manager import manager
from .settings import Settings
from .store import LocalStore, reader, store_root
from .store.local import open_readonly

if TYPE_CHECKING:
    from .artifacts import Artifact
    from .run_record import RunList, RunRecord


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


F = TypeVar("F", bound=Callable[..., Any])


def _on_current_run(method: F) -> F:
    """The module-level twin of a ``Run`` method: ``nbtrack.log_artifact(...)`` calls
    ``nbtrack.run.log_artifact(...)``, and says so clearly before ``init()``."""
    name = method.__name__

    def call(*args: Any, **kwargs: Any) -> Any:
        run = manager.current
        if run is None:
            raise Error(f"nbtrack.{name}() was called before nbtrack.init(): call nbtrack.init() first")
        return getattr(run, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``nbtrack.run.{name}(...)``: the current run's ``{name}``.\n\n{method.__doc__ or ''}"
    return call  # type: ignore[return-value]


log_artifact = _on_current_run(Run.log_artifact)
use_artifact = _on_current_run(Run.use_artifact)
link_artifact = _on_current_run(Run.link_artifact)
log_model = _on_current_run(Run.log_model)
use_model = _on_current_run(Run.use_model)
link_model = _on_current_run(Run.link_model)
define_metric = _on_current_run(Run.define_metric)
alert = _on_current_run(Run.alert)
save = _on_current_run(Run.save)
log_code = _on_current_run(Run.log_code)
mark_preempting = _on_current_run(Run.mark_preempting)
watch = _on_current_run(Run.watch)


def unwatch(models: Any = None) -> None:
    """Remove ``watch``'s hooks from the current run's models (all by default)."""
    run = manager.current
    if run is not None:
        run.unwatch(models)


def restore(name: str, run_path: str | None = None, replace: bool = False, root: str | None = None) -> Any:
    """A file saved with ``save`` by the current run or by ``run_path``
    (``"project/run_id"``), written into ``root`` (default: the current run's folder,
    else the working directory) and opened for reading."""
    run = manager.current
    if run is not None:
        return run.restore(name, run_path=run_path, replace=replace, root=root)
    if run_path is None:
        raise Error("nbtrack.restore() needs run_path='project/run_id' when no run is active")
    from .run_files import restore_file

    store = LocalStore.open(Settings().resolve().dir or Path.cwd())
    return restore_file(store, name, run_path, replace, root or os.getcwd(), default=None)


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
    """Read runs and artifacts back from a local store (wandb's public API).

    Parameters
    ----------
    dir
        The ``dir`` the runs were written with; default ``NBTRACK_DIR``, else the
        working directory.  Runs are read from ``<dir>/nbtrack/``.
    stale_after
        Seconds without a heartbeat after which a ``running`` run of another machine
        (or an earlier boot) reads as ``crashed``; default ``NBTRACK_STALE_AFTER``, else 60.
    overrides, timeout, api_key
        wandb's arguments: ``overrides={"project": ...}`` sets the default project of
        ``runs()`` and ``artifact()``; the others mean nothing locally.

    Reading never changes the store; ``RunRecord.update()``, ``delete()`` and the
    artifact methods that change it open it for writing when called.

    Raises
    ------
    UsageError
        When reading a store that is damaged or was written by a newer nbtrack.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        stale_after: float | None = None,
        overrides: Mapping[str, Any] | None = None,
        timeout: int | None = None,
        api_key: str | None = None,
    ) -> None:
        if isinstance(dir, Mapping) and overrides is None:  # Api({"project": ...}), wandb's first argument
            dir, overrides = None, dir
        settings = Settings(stale_after=stale_after).resolve()
        if dir is None:
            dir = settings.dir or Path.cwd()
        self.root = store_root(dir)
        self.stale_after = settings.stale_after
        self.default_project: str | None = (overrides or {}).get("project") or settings.project
        self._con: sqlite3.Connection | None = None
        self._store: LocalStore | None = None

    # ------------------------------------------------------------ the source of records
    def connection(self) -> sqlite3.Connection | None:
        """A read-only connection (``StoreUnavailable`` for a damaged or newer store);
        None while no store exists there."""
        live.settle(self.root)  # a run this process just started in a new store is claimed first
        if self._con is None:
            self._con = open_readonly(self.root)
            if self._con is not None:
                self._recover()
        return self._con

    _connection = connection

    def writable(self) -> LocalStore:
        """The store, opened for writing (for updates, deletes and artifact changes)."""
        if self._store is None:
            self._store = LocalStore.open(self.root.parent)
        return self._store

    def _recover(self) -> None:
        """Rows a process could not write before it ended (rescue files) go into the
        store first, when it can be written, so that what is read is complete."""
        if (self.root / "rescue").is_dir():
            try:
                LocalStore.open(self.root.parent)
            except UsageError:
                pass  # a read-only store: its rescue files wait for a writable opening

    def _project_of(self, path: str | None, what: str) -> str | None:
        if path is None:
            return self.default_project
        if not isinstance(path, str) or not path or path.count("/") > 1:
            raise UsageError(f"{what}: expected 'project' or 'entity/project', got {path!r}")
        return path.split("/")[-1]

    # ------------------------------------------------------------ runs
    def runs(
        self,
        path: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "-created_at",
        per_page: int = 50,
        include_sweeps: bool = True,
        limit: int | None = None,
        *,
        project: str | None = None,
        lazy: bool = True,
    ) -> RunList:
        """The runs of a project (``path`` is ``"project"`` or ``"entity/project"``;
        every project's when None), newest first.

        ``filters`` is wandb's MongoDB-style document (``{"state": "finished",
        "config.lr": {"$lt": 0.1}, "$or": [...]}``: see ``nbtrack.run_filters``) and
        ``order`` a field with ``-`` (descending) or ``+``, such as
        ``"-summary_metrics.accuracy"``; ``limit`` keeps the first ones.
        """
        from . import run_filters

        wanted = self._project_of(project if project is not None else path, "runs")
        run_filters.order_key(order)
        con = self.connection()
        from .run_record import RunList, RunRecord

        found = RunList()
        found.project = wanted
        if con is None:
            return found
        simple = not filters and order in ("-created_at", "-createdAt")
        if filters is not None and not isinstance(filters, Mapping):
            run_filters.matches(None, filters)  # the UsageError that names what is expected
        where, where_args = run_filters.sql_prefilter(filters)
        rows = reader.list_runs(
            con,
            wanted,
            limit if simple else None,
            self.stale_after,
            where=where,
            where_args=where_args,
            decode=False,
        )
        records = [RunRecord(row, self) for row in rows]
        if not simple:
            records = run_filters.sort([r for r in records if run_filters.matches(r, filters)], order)
            if limit is not None:
                records = records[: int(limit)]
        found.extend(records)
        return found

    def run(self, path: str) -> RunRecord:
        """One run, by ``"project/run_id"``, ``"entity/project/run_id"`` or wandb's
        ``"entity/project/runs/run_id"``."""
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) == 4 and parts[2] == "runs":
            parts = [parts[0], parts[1], parts[3]]
        if len(parts) == 1 and parts[0] and self.default_project:
            parts = [self.default_project, parts[0]]
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"Api.run: expected 'project/run_id' or 'entity/project/run_id', got {path!r}")
        project, run_id = parts[-2:]
        con = self.connection()
        from .run_record import RunRecord

        row = reader.get_run(con, project, run_id, self.stale_after) if con is not None else None
        if row is None:
            raise UsageError(f"Api.run: no run {run_id!r} in project {project!r} under {self.root}")
        return RunRecord(row, self)

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Project]:
        """The projects that have runs or artifacts here."""
        con = self.connection()
        if con is None:
            return []
        names = {r[0] for r in con.execute("SELECT DISTINCT project FROM runs")}
        names |= {r[0] for r in con.execute("SELECT DISTINCT project FROM artifacts")}
        return [Project(name, self) for name in sorted(names)]

    # ------------------------------------------------------------ artifacts
    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """An artifact version by ``"project/name:alias"`` (``"name:v3"``,
        ``"entity/project/name:latest"``...)."""
        from .artifacts import use

        return use(self.writable(), name, project=self.default_project, run_pk=None, type=type)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except UsageError:
            return False
        return True

    def artifacts(
        self, type_name: str | None = None, name: str | None = None, per_page: int = 50, tags: Any = None
    ) -> list[Artifact]:
        """The versions of the artifact ``name`` (``"project/name"``), newest first; or,
        with only ``type_name``, the latest version of every artifact of that type.
        ``tags`` keeps the versions that have every one of them."""
        from .artifacts import as_linked, loaded, parse_ref
        from .store import artifacts as stored

        store = self.writable()
        if name is not None:
            project, collection, _which = parse_ref(name.split(":")[0], self.default_project)
            with store.lock:
                versions = stored.versions(store.con, project, collection)
                links = [] if versions else stored.linked(store.con, project, collection)
            found = [loaded(store, v) for v in versions]
            found += [as_linked(store, v, project, collection, number) for number, v in links]
        else:
            with store.lock:
                latest = stored.latest_of_type(store.con, type_name, self.default_project)
            found = [loaded(store, v) for v in latest]
        wanted = [tags] if isinstance(tags, str) else list(tags or [])
        return [a for a in found if (type_name is None or a.type == type_name) and all(t in a.tags for t in wanted)]

    artifact_versions = artifacts

    def sweep(self, path: str) -> Any:
        """A sweep (``"sweep_id"`` or ``"entity/project/sweep_id"``): ``config``, ``runs``,
        ``trials()``, ``best_run()``."""
        from .sweeps import Sweep

        return Sweep(path, dir=self.root.parent)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Project:
    """A project of the store (``Api().projects()``)."""

    def __init__(self, name: str, api: Api) -> None:
        self.name = name
        self._api = api

    def runs(self, **kwargs: Any) -> RunList:
        return self._api.runs(self.name, **kwargs)

    def __repr__(self) -> str:
        return f"<Project {self.name}>"
