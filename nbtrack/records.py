"""Plain records returned by ``nbtrack.Api``: a stored run and its history."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypedDict

from .media import restorer


class StoredRun(TypedDict):
    """A run as the store holds it: what crosses from the store to the core and the Api."""

    pk: int
    project: str
    run_id: str
    entity: str | None
    name: str
    notes: str | None
    group: str | None
    job_type: str | None
    mode: str
    created_at: float
    folder: str
    parent_id: str | None
    branch_step: int | None
    resume_count: int
    rewinds: list[dict[str, Any]]
    metadata: dict[str, Any]
    stored_state: str  # as written; ``state`` reads "crashed" when the owner is gone
    exit_code: int | None
    started_at: float
    finished_at: float | None
    heartbeat: float
    pid: int | None
    pid_start: str | None
    boot_id: str | None
    last_step: int
    runtime: float
    config: dict[str, Any]
    summary: dict[str, Any]
    tags: tuple[str, ...]
    state: str


class RunRecord:
    """A run as read back from the store.

    Attributes
    ----------
    id, name, project, entity, state, config, summary, tags, notes, group, job_type
        As the run recorded them.  ``state`` is ``running``, ``finished``,
        ``failed`` or ``crashed`` (a running run whose process is gone).
    created_at
        When the run was created, a timezone-aware ``datetime``.
    resumed, parent, branch_step, rewinds
        Lineage: whether it was continued, the run it was forked from and at which
        step, and the steps it was rewound to.
    """

    def __init__(
        self,
        row: StoredRun,
        history: Callable[..., list[dict[str, Any]]],
        system: Callable[..., list[dict[str, Any]]] | None = None,
        root: Path | None = None,
    ) -> None:
        self._row = row
        self._history = history
        self._system = system
        self.id: str = row["run_id"]
        self.name: str = row["name"]
        self.project: str = row["project"]
        self.entity: str | None = row["entity"]
        self.state: str = row["state"]
        self.exit_code: int | None = row["exit_code"]
        self.config: dict[str, Any] = row["config"]
        self.dir: Path | None = None if root is None else Path(root) / row["folder"]
        self.summary: dict[str, Any] = _restore(row["summary"], restorer(self.dir))
        self.tags: tuple[str, ...] = row["tags"]
        self.notes: str | None = row["notes"]
        self.group: str | None = row["group"]
        self.job_type: str | None = row["job_type"]
        self.mode: str = row["mode"]
        self.metadata: dict[str, Any] = row["metadata"]
        self.created_at = datetime.datetime.fromtimestamp(row["created_at"], datetime.timezone.utc)
        self.started_at = datetime.datetime.fromtimestamp(row["started_at"], datetime.timezone.utc)
        self.finished_at = (
            None
            if row["finished_at"] is None
            else datetime.datetime.fromtimestamp(row["finished_at"], datetime.timezone.utc)
        )
        self.runtime: float = row["runtime"]
        self.last_step: int = row["last_step"]
        self.resumed: bool = row["resume_count"] > 0
        self.resume_count: int = row["resume_count"]
        self.parent: str | None = row["parent_id"]
        self.branch_step: int | None = row["branch_step"]
        self.rewinds: list[dict[str, Any]] = row["rewinds"]
        self.folder: str = row["folder"]
        self.pid: int | None = row["pid"]

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}" if self.entity else f"{self.project}/{self.id}"

    def history(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Logged rows in step order: dicts with ``_step``, ``_timestamp``, ``_runtime``
        (and ``_cell`` when logged from a notebook cell) plus the logged keys.

        With ``keys``, only rows holding at least one of them, each with only those keys.
        Logged images, videos, histograms and tables come back as ``nbtrack.MediaRef``.
        """
        if isinstance(keys, str):
            keys = [keys]
        return self._history(self._row["pk"], keys, restorer(self.dir))

    def system_metrics(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """System metric samples (``system/...`` keys) in time order, each with
        ``_timestamp`` and ``_runtime``; a stream of its own, apart from the history."""
        if isinstance(keys, str):
            keys = [keys]
        return self._system(self._row["pk"], keys) if self._system else []

    def __repr__(self) -> str:
        return f"<RunRecord {self.path} name={self.name!r} state={self.state}>"


def _restore(value: Any, hook: Callable[[dict], Any]) -> Any:
    """Apply a JSON object hook to a value decoded without it, inner dicts first, as
    ``json.loads(..., object_hook=hook)`` would have."""
    if type(value) is dict:
        return hook({k: _restore(v, hook) for k, v in value.items()})
    if type(value) is list:
        return [_restore(v, hook) for v in value]
    return value


class RunList(list):
    """What ``Api.runs()`` returns: a list of ``RunRecord``, newest first.

    In a notebook with nbtrack's extension loaded it shows as the interactive runs
    table; elsewhere it is a plain list.
    """

    project: str | None = None
