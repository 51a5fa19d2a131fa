"""The shape of a stored run as it crosses from the store to the core and the Api
(``nbtrack.RunRecord``, in ``run_record``, is what users get)."""

from __future__ import annotations

from typing import Any, TypedDict


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
