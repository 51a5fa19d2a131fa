"""What ``nbtrack.Api`` returns for a stored run: ``RunRecord`` (wandb's public
``Run``), its saved files, and ``RunList``.

A record is read when it is made (``config``, ``summary``, tags, state...); its
history, files and artifacts are read from the store when asked for.  ``update()``
writes name, notes, tags, config and summary back; ``delete()`` removes the run.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import live
from .errors import UsageError
from .media import restorer
from .naming import check_tags, check_text
from .records import StoredRun
from .store import columns, reader
from .store.columns import Series, empty, spread

if TYPE_CHECKING:
    from .artifacts import Artifact
    from .metrics import Metric
    from .store.local import LocalStore

HISTORY_SAMPLES = 500  # rows history() returns by default, as wandb


class Source(Protocol):
    """Where records read from: the store's root, a read connection, a writable store."""

    root: Path
    stale_after: float

    def connection(self) -> sqlite3.Connection | None: ...

    def writable(self) -> LocalStore: ...


def _utc(ts: float | None) -> datetime.datetime | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


class RunRecord:
    """A run as read back from the store.

    Attributes
    ----------
    id, name, project, entity, state, config, summary, tags, notes, group, job_type
        As the run recorded them.  ``state`` is ``running``, ``finished``,
        ``failed`` or ``crashed`` (a running run whose process is gone).  ``name``,
        ``notes``, ``tags``, ``config`` and ``summary`` may be changed here and
        written back with ``update()``.
    created_at
        When the run was created, a timezone-aware ``datetime``.
    resumed, parent, branch_step, rewinds
        Lineage: whether it was continued, the run it was forked from and at which
        step, and the steps it was rewound to.
    """

    def __init__(self, row: StoredRun, source: Source) -> None:
        # Cheap fields are set here; config, summary, metadata, dates and the folder are
        # decoded when first used, so that listing 10,000 runs costs little.
        self._row = row
        self._source = source
        self.id: str = row["run_id"]
        self.name: str = row["name"]
        self.project: str = row["project"]
        self.entity: str | None = row["entity"]
        self.state: str = row["state"]
        self.exit_code: int | None = row["exit_code"]
        self.tags: tuple[str, ...] | list[str] = row["tags"]
        self.notes: str | None = row["notes"]
        self.group: str | None = row["group"]
        self.job_type: str | None = row["job_type"]
        self.mode: str = row["mode"]
        self.runtime: float = row["runtime"]
        self.last_step: int = row["last_step"]
        self.resumed: bool = row["resume_count"] > 0
        self.resume_count: int = row["resume_count"]
        self.parent: str | None = row["parent_id"]
        self.branch_step: int | None = row["branch_step"]
        self.folder: str = row["folder"]
        self.pid: int | None = row["pid"]
        self.sweep = None

    def _stored(self, name: str) -> Any:
        """A JSON field of the stored row, decoded once (rows listed in bulk keep the text)."""
        value = self._row[name]  # type: ignore[literal-required]
        if value is None and name == "metadata":  # a listed run: read when first used
            con = self._source.connection()
            found = (
                con.execute("SELECT metadata FROM runs WHERE pk = ?", (self._row["pk"],)).fetchone() if con else None
            )
            value = found[0] if found else None
        if value is None or isinstance(value, str):
            value = json.loads(value or ("[]" if name == "rewinds" else "{}"))
            self._row[name] = value  # type: ignore[literal-required]
        return value

    @property
    def config(self) -> dict[str, Any]:
        if "_config" not in self.__dict__:
            self.__dict__["_config"] = copy.deepcopy(self._stored("config"))  # changed here, compared at update()
        config: dict[str, Any] = self.__dict__["_config"]
        return config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        self.__dict__["_config"] = value

    @property
    def summary(self) -> dict[str, Any]:
        if "_summary" not in self.__dict__:
            self.__dict__["_summary"] = _restore(self._stored("summary"), restorer(self.dir))
        summary: dict[str, Any] = self.__dict__["_summary"]
        return summary

    @summary.setter
    def summary(self, value: dict[str, Any]) -> None:
        self.__dict__["_summary"] = value

    metadata = property(lambda self: self._stored("metadata"), doc="What the run recorded about where it ran.")
    rewinds = property(lambda self: self._stored("rewinds"), doc="The steps the run was rewound to, and when.")
    created_at = property(lambda self: _utc(self._row["created_at"]), doc="When the run was created (UTC).")
    started_at = property(lambda self: _utc(self._row["started_at"]), doc="When the run last started (UTC).")
    finished_at = property(lambda self: _utc(self._row["finished_at"]), doc="When the run finished (UTC), or None.")

    @property
    def dir(self) -> Path:
        """The run's folder."""
        return Path(self._source.root) / self._row["folder"]

    # wandb's public Run names for the same things
    display_name = property(lambda self: self.name)
    summary_metrics = property(lambda self: self.summary)
    lastHistoryStep = property(lambda self: self.last_step)
    url = property(lambda self: None, doc="Local runs have no web page (online: see the MLflow run).")

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}" if self.entity else f"{self.project}/{self.id}"

    def _con(self) -> sqlite3.Connection | None:
        return self._source.connection()

    # ------------------------------------------------------------ history
    def rows(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every logged row in step order, as dicts with ``_step``, ``_timestamp``,
        ``_runtime`` (and ``_cell`` when logged from a notebook cell) plus the logged keys.

        With ``keys``, only rows holding at least one of them, each with only those keys.
        Logged images, videos, tables... come back as ``nbtrack.MediaRef``.  For long
        runs ``series()`` is the fast way to read a key.
        """
        if isinstance(keys, str):
            keys = [keys]
        con = self._con()
        if con is None:
            return []
        if keys is not None:
            wanted = list(dict.fromkeys(keys))
            if len(wanted) == 1:
                return self.series(wanted[0]).rows()
        return reader.history(con, self._row["pk"], keys, object_hook=restorer(self.dir))

    def series(
        self,
        key: str,
        *,
        samples: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Series:
        """One key's values with their steps, timestamps and runtimes, as arrays: the
        fast way to read a long run (one key of a million steps in tens of milliseconds,
        read from the history's columnar chunks).

        ``samples`` keeps at most that many points spread evenly (the first and the last
        always in), reading only those; ``min_step``/``max_step`` bound the steps (both
        included).  ``numpy.asarray(series.values)`` takes the values without a copy.
        """
        if not isinstance(key, str):
            raise UsageError(f"series: key must be a string, got {key!r}")
        _check_samples(samples)
        con = self._con()
        if con is None:
            return empty(key)
        self._seal()
        pk, hook = self._row["pk"], restorer(self.dir)
        if samples is not None and min_step is None and max_step is None:
            sampled = columns.read_sampled(con, pk, key, samples, hook)
            if sampled is not None:
                return sampled
        found = columns.read(
            con, [pk], [key], min_step=min_step, max_step=max_step, object_hook=hook, owner=self._source
        )[pk][key]
        if samples is not None and len(found) > samples:
            found = found.pick(spread(len(found), samples))
        return found

    def series_of(self, keys: Iterable[str], *, samples: int | None = None) -> dict[str, Series]:
        """Several keys' ``series()`` at once (two queries for all of them): key -> ``Series``."""
        return RunList([self]).series(keys, samples=samples)[self.id]

    def _holding_all(self, keys: list[str], samples: int) -> list[dict[str, Any]] | None:
        """``history(keys=...)`` from the columnar chunks: the rows holding every key,
        sampled; None when the keys were not logged at the same steps (the caller then
        reads the rows)."""
        if len(keys) == 1:
            return self.series(keys[0], samples=samples).rows()
        every = [self.series(k) for k in keys]
        steps = every[0].steps
        if any(s.steps != steps for s in every[1:]):
            return None
        out = []
        for i in spread(len(steps), samples):
            row: dict[str, Any] = {
                "_step": steps[i],
                "_timestamp": every[0].timestamps[i],
                "_runtime": every[0].runtimes[i],
            }
            if every[0].cells is not None and every[0].cells[i] is not None:
                row["_cell"] = every[0].cells[i]
            for s in every:
                row[s.key] = s.values[i]
            out.append(row)
        return out

    def _seal(self) -> None:
        """A run that is not running with rows never sealed into chunks (written by an
        nbtrack before chunks, or ended by a crash) gets them now, where the store can be
        written; chunks are derived from the rows, so reading goes on without them."""
        _seal_runs(self._source, [self])

    def history(
        self,
        samples: int = HISTORY_SAMPLES,
        keys: Iterable[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """wandb's ``history``: up to ``samples`` rows spread evenly over the run (the
        first and the last always in), as a pandas DataFrame when pandas is installed
        and ``pandas`` is True, else a list of dicts.

        With ``keys``, only the rows holding every one of them (and ``x_axis``), with
        those columns.  ``stream="system"`` reads the system metrics instead.  For every
        row, unsampled, use ``scan_history()`` or ``rows()``.
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise UsageError(f"history: samples must be a positive integer, got {samples!r}")
        if isinstance(keys, str):
            keys = [keys]
        wanted = None if keys is None else list(dict.fromkeys([*keys, *([x_axis] if x_axis != "_step" else [])]))
        if stream == "default" and wanted is not None:
            together = self._holding_all(wanted, samples)
            if together is not None:
                return _frame(together) if pandas else together
        if stream in ("system", "events"):
            found = self.system_metrics(wanted)
        elif stream == "default":
            found = self.rows(wanted)
        else:
            raise UsageError(f"history: stream must be 'default' or 'system', got {stream!r}")
        if wanted is not None:
            found = [r for r in found if all(k in r for k in wanted)]
        elif x_axis != "_step":
            found = [r for r in found if x_axis in r]
        found = _sample(found, samples)
        return _frame(found) if pandas else found

    def scan_history(
        self,
        keys: Iterable[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row in step order, read ``page_size`` rows at a time (a long run
        never sits in memory whole).  With ``keys``, only rows holding all of them, with
        ``_step`` and those keys; ``min_step``/``max_step`` bound the steps (max
        excluded, as wandb)."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise UsageError(f"scan_history: page_size must be a positive integer, got {page_size!r}")
        if isinstance(keys, str):
            keys = [keys]
        wanted = None if keys is None else list(keys)
        after = -1 if min_step is None else int(min_step) - 1
        hook = restorer(self.dir)
        while True:
            con = self._con()
            if con is None:
                return
            page = reader.history(  # whole rows: the page's size counts rows, not matches
                con,
                self._row["pk"],
                None,
                after_step=after,
                max_step=None if max_step is None else int(max_step) - 1,
                limit=page_size,
                object_hook=hook,
            )
            for row in page:
                if wanted is None:
                    yield row
                elif all(k in row for k in wanted):
                    yield {"_step": row["_step"], **{k: row[k] for k in wanted}}
            if len(page) < page_size:
                return
            after = page[-1]["_step"]

    def system_metrics(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """System metric samples (``system/...`` keys) in time order, each with
        ``_timestamp`` and ``_runtime``; a stream of its own, apart from the history."""
        if isinstance(keys, str):
            keys = [keys]
        con = self._con()
        return reader.system_metrics(con, self._row["pk"], keys) if con is not None else []

    # ------------------------------------------------------------ writing
    def _owned_by_live_process(self, what: str) -> None:
        if self.state == "running":
            raise UsageError(
                f"{what}: run {self.path} is running in process {self.pid}; change it there "
                "(run.name, run.tags, run.config, run.summary), or after it finished"
            )

    def update(self) -> None:
        """Write this record's ``name``, ``notes``, ``tags``, ``config`` and ``summary``
        back to the store.  A run this process is running takes the changes itself (as
        ``run.name = ...``, ``run.config.update(...)`` would); one running in another
        process cannot be changed from here."""
        running_here = live.find(self.project, self.id) if self.state == "running" else None
        if running_here is not None:
            self._update_live(running_here)
            return
        self._owned_by_live_process("update")
        if not isinstance(self.name, str) or not self.name.strip():
            raise UsageError(f"update: name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.config, dict) or not isinstance(self.summary, dict):
            raise UsageError("update: config and summary must be dicts")
        from .values import json_friendly

        fields = {"name": check_text(self.name, "name"), "notes": check_text(self.notes, "notes", multiline=True)}
        tags = check_tags(list(self.tags))
        self._source.writable().update_run(
            self._row["pk"],
            fields=fields,
            tags=tags,
            config=json_friendly(self.config),
            summary=json_friendly(_unrestore(self.summary)),
        )
        self.tags = tags

    def _update_live(self, run: Any) -> None:
        if self.name != run.name:
            run.name = self.name
        if self.notes != run.notes:
            run.notes = self.notes
        if tuple(self.tags) != tuple(run.tags):
            run.tags = list(self.tags)
        stored_config = self._stored("config")
        changed = {k: v for k, v in self.config.items() if k not in stored_config or stored_config[k] != v}
        if changed:
            run.config.update(changed, allow_val_change=True)
        current = run.summary.as_dict()
        changed = {k: v for k, v in _unrestore(self.summary).items() if current.get(k) != v}
        if changed:
            run.summary.update(changed)
        run.flush()

    def delete(self, delete_artifacts: bool = False) -> None:
        """Remove the run from the store and its folder from disk.  The artifact versions
        it logged stay (other runs may use them) unless ``delete_artifacts``."""
        self._owned_by_live_process("delete")
        store = self._source.writable()
        if delete_artifacts:
            for artifact in self.logged_artifacts():
                artifact.delete(delete_aliases=True)
        store.delete_run(self._row["pk"])
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ files
    def files(self, names: Iterable[str] | None = None, per_page: int = 50) -> list[RunFile]:
        """The run's files: those kept with ``save`` (by their saved name), then every
        other file in its folder (media, saved code...) by its path there."""
        from .run_files import FILES_DIR, listed

        con = self._con()
        saved = listed(con, self._row["pk"]) if con is not None else []
        out = [
            RunFile(self, f["name"], self.dir / FILES_DIR / f["name"], f["size"], f["sha256"], f["updated_at"])
            for f in saved
        ]
        if self.dir.is_dir():
            for path in sorted(self.dir.rglob("*")):
                rel = path.relative_to(self.dir).as_posix()
                if path.is_file() and not rel.startswith(FILES_DIR + "/"):
                    out.append(RunFile(self, rel, path, path.stat().st_size, None, path.stat().st_mtime))
        wanted = None if names is None else set(names)
        return [f for f in out if wanted is None or f.name in wanted]

    def file(self, name: str) -> RunFile:
        """One of ``files()``, by name."""
        for found in self.files():
            if found.name == name:
                return found
        raise UsageError(f"file: run {self.path} has no file {name!r}")

    # ------------------------------------------------------------ artifacts, alerts, metrics
    def _artifacts(self, role: str) -> list[Artifact]:
        from .artifacts import loaded
        from .store import artifacts as stored

        store = self._source.writable()
        with store.lock:
            versions = stored.of_run(store.con, self._row["pk"], role)
        return [loaded(store, v) for v in versions]

    def logged_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run logged."""
        return self._artifacts("logged")

    def used_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run used."""
        return self._artifacts("used")

    def alerts(self) -> list[dict[str, Any]]:
        """The run's alerts: ``{"ts", "step", "level", "title", "text"}`` in order."""
        from .alerts import listed

        con = self._con()
        return listed(con, self._row["pk"]) if con is not None else []

    @property
    def metric_definitions(self) -> list[Metric]:
        """What the run's ``define_metric`` calls defined."""
        from .metrics import load

        con = self._con()
        return load(con, self._row["pk"]) if con is not None else []

    def to_html(self, height: int = 420, hidden: bool = False) -> str:
        """The run as a self-contained HTML page fragment (charts, summary, config,
        media): interactive where scripts run, static SVG where they do not.  ``nbtrack
        view`` writes it into a file."""
        from .page import run_fragment, run_state

        return run_fragment(run_state(self), height=height, hidden=hidden)

    def __repr__(self) -> str:
        return f"<RunRecord {self.path} name={self.name!r} state={self.state}>"


class RunFile:
    """A file of a stored run (wandb's ``File``): ``name``, ``size``, ``path`` on disk."""

    def __init__(
        self, run: RunRecord, name: str, path: Path, size: int, sha256: str | None, updated_at: float | None
    ) -> None:
        self.run = run
        self.name = name
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.updated_at = _utc(updated_at)

    def download(
        self, root: str | os.PathLike[str] = ".", replace: bool = False, exist_ok: bool = False, **_ignored: Any
    ) -> IO[str]:
        """Copy the file to ``root/name``; return it open for reading.  An existing file
        there is an error unless ``replace`` (overwrite) or ``exist_ok`` (keep it)."""
        target = Path(root) / self.name
        if target.exists() and not replace:
            if not exist_ok:
                raise UsageError(f"download: {target} exists; pass replace=True or exist_ok=True")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, target)
        return open(target, encoding="utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<RunFile {self.name} ({self.size} bytes)>"


def _sample(rows: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    return rows if len(rows) <= samples else [rows[i] for i in spread(len(rows), samples)]


def _check_samples(samples: int | None) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise UsageError(f"series: samples must be a positive integer or None, got {samples!r}")


def _seal_runs(source: Source, records: Iterable[RunRecord]) -> None:
    con = source.connection()
    if con is None:
        return
    if not columns.present(con):  # a store before chunks: upgraded when it can be written
        try:
            source.writable()
        except (UsageError, sqlite3.Error, OSError):
            return
    for record in records:
        if record.state == "running":
            continue  # its process seals it
        try:
            if columns.unsealed(con, record._row["pk"]) == 0:
                continue
            source.writable().seal_history(record._row["pk"], final=True)
        except (UsageError, sqlite3.Error, OSError):
            return  # a read-only or busy store: read from the rows


def _frame(rows: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def _restore(value: Any, hook: Any) -> Any:
    """Apply a JSON object hook to a value decoded without it, inner dicts first, as
    ``json.loads(..., object_hook=hook)`` would have."""
    if type(value) is dict:
        return hook({k: _restore(v, hook) for k, v in value.items()})
    if type(value) is list:
        return [_restore(v, hook) for v in value]
    return value


def _unrestore(value: Any) -> Any:
    """The stored form of a summary that ``_restore`` read (MediaRefs as plain dicts)."""
    if isinstance(value, dict):
        return {k: _unrestore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unrestore(v) for v in value]
    return value


class RunList(list):
    """What ``Api.runs()`` returns: a list of ``RunRecord``, newest first (or in the
    ``order`` asked for).

    In a notebook with nbtrack's extension loaded it shows as the interactive runs
    table; elsewhere it is a plain list.
    """

    project: str | None = None

    def series(self, keys: Iterable[str] | str, *, samples: int | None = None) -> dict[str, dict[str, Series]]:
        """``keys`` of every run here, read together (two queries for all the runs'
        chunks): run id -> key -> ``Series``.  ``samples`` keeps at most that many points
        of each series.  What the runs table's overlay reads."""
        wanted = [keys] if isinstance(keys, str) else list(keys)
        if not self:
            return {}
        _check_samples(samples)
        source = self[0]._source
        con = source.connection()
        if con is None:
            return {r.id: {k: empty(k) for k in wanted} for r in self}
        _seal_runs(source, self)
        found = columns.read(con, [r._row["pk"] for r in self], wanted, owner=source)
        out: dict[str, dict[str, Series]] = {}
        for record in self:
            per_key = found[record._row["pk"]]
            if samples is not None:
                per_key = {k: s.pick(spread(len(s), samples)) if len(s) > samples else s for k, s in per_key.items()}
            out[record.id] = per_key
        return out
