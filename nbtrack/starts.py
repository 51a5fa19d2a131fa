"""How a run starts in the store: one small plan for each kind of start.

``init()`` picks a plan from its arguments (``plan_for``); the plan's ``claim`` runs
inside one store transaction that holds the write lock, so what it reads (does the id
exist? is its run live in another process?) cannot change before it writes.  Two
processes resuming or creating the same id at the same moment therefore cannot both
succeed: the second sees the first's claim and gets a ``UsageError`` naming its pid.

=========  ==============================================================
plan       what it does
=========  ==============================================================
Create     a new run, with the given id or a fresh one
Resume     continue an existing run (``resume="allow"/"must"/"auto"``)
Rewind     continue a run from an earlier step (``resume_from``)
Fork       a new run starting as a copy of another's first steps (``fork_from``)
=========  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError
from .naming import new_run_id, new_run_name
from .records import Record, StoredRun, field
from .store.local import Transaction


class StartContext(Record):
    """What every plan needs besides its own arguments."""

    project: str
    now: float
    state: dict[str, Any]  # started_at, pid, pid_start, boot_id: the claim on the run
    metadata: dict[str, Any]
    fields: dict[str, Any]  # name, notes, group, job_type, entity, mode, tags, config as init() resolved them
    config_given: set[str]
    is_active: Callable[[str, str], bool]  # (project, run_id) -> active in this process
    store_root: Path


class Started(Record):
    """A run as a plan claimed it: everything ``Run`` is built from."""

    kind: str  # "new", "resume", "rewind" or "fork"
    pk: int | None  # None: claimed later (a new store; see manager._claim_later)
    run_id: str
    name: str
    notes: str | None
    group: str | None
    job_type: str | None
    entity: str | None
    tags: tuple[str, ...]
    config: dict[str, Any]
    summary: dict[str, Any]
    step: int
    runtime_offset: float
    resumed: bool
    folder: str
    parent: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _folder(project: str, run_id: str) -> str:
    return f"runs/{project}/{run_id}"


def _make_folder(ctx: StartContext, run_id: str) -> str:
    """Create the run's folder inside the claim, so a failure leaves no run behind."""
    folder = _folder(ctx.project, run_id)
    (ctx.store_root / folder).mkdir(parents=True, exist_ok=True)
    return folder


def refuse_if_live(row: StoredRun, argument: str, ctx: StartContext) -> None:
    """A run another live process (or this one) is writing cannot be claimed again."""
    if row["state"] != "running":
        return
    if ctx.is_active(row["project"], row["run_id"]):
        raise UsageError(f"{argument}: run {row['run_id']!r} is active in this process; finish it first (run.finish())")
    raise UsageError(
        f"{argument}: run {row['run_id']!r} is still running in process {row['pid']}; wait for it "
        "to finish or stop that process (its pid holds the run)"
    )


def summary_from(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary a run's history gives: the last value of each key."""
    summary: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith("_"):
                summary[key] = value
    return summary


class Create(Record):
    """A new run: ``run_id`` is used as given, else a fresh id is drawn."""

    run_id: str | None
    exists: str = ""  # the UsageError message when a given id exists already

    kind = "new"

    def claim(self, tx: Transaction, ctx: StartContext) -> Started:
        run_id = self.run_id
        if run_id is not None and tx.find_run(ctx.project, run_id) is not None:
            raise UsageError(self.exists.format(id=run_id, project=ctx.project))
        while run_id is None or tx.find_run(ctx.project, run_id) is not None:
            run_id = new_run_id()
        return _create(tx, ctx, run_id, dict(ctx.fields["config"]), kind="new")

    def start_later(self, ctx: StartContext, number: int) -> tuple[Started, Create]:
        """A new run in a store that does not exist yet (nobody else can know it): its id
        and name (``number`` in a generated one) drawn and its folder made now, without
        the store.  Returns what ``Run`` is built from (``pk`` None) and the plan that
        claims it in the store later, with that id and name.

        Raises ``OSError`` when the folder cannot be made.
        """
        run_id = self.run_id or new_run_id()
        ctx.fields["name"] = ctx.fields["name"] or new_run_name(number)
        folder = _make_folder(ctx, run_id)
        started = _started(ctx, None, run_id, ctx.fields["name"], dict(ctx.fields["config"]), folder, kind="new")
        exists = self.exists or (
            "run {id!r} of project {project!r} was created by another process at the same moment; "
            "start this one again with another id"
        )
        return started, Create(run_id, exists=exists)


def _create(
    tx: Transaction,
    ctx: StartContext,
    run_id: str,
    config: dict[str, Any],
    *,
    kind: str,
    parent: dict[str, Any] | None = None,
) -> Started:
    f = ctx.fields
    name = f["name"] or new_run_name(tx.count_runs(ctx.project) + 1)
    tags = tuple(f["tags"] or ())
    folder = _make_folder(ctx, run_id)
    row = {
        "project": ctx.project,
        "run_id": run_id,
        "entity": f["entity"],
        "name": name,
        "notes": f["notes"],
        "run_group": f["group"],
        "job_type": f["job_type"],
        "mode": f["mode"],
        "created_at": ctx.now,
        "folder": folder,
        "parent_id": parent and parent["id"],
        "branch_step": parent and parent["step"],
        "metadata": ctx.metadata,
        "config": config,
        "tags": tags,
    }
    pk = tx.create_run(row, ctx.state)
    return _started(ctx, pk, run_id, name, config, folder, kind=kind, parent=parent)


def _started(
    ctx: StartContext,
    pk: int | None,
    run_id: str,
    name: str,
    config: dict[str, Any],
    folder: str,
    *,
    kind: str,
    parent: dict[str, Any] | None = None,
) -> Started:
    """A new run as ``Run`` is built from it: at step 0, with an empty summary."""
    f = ctx.fields
    return Started(
        kind=kind,
        pk=pk,
        run_id=run_id,
        name=name,
        notes=f["notes"],
        group=f["group"],
        job_type=f["job_type"],
        entity=f["entity"],
        tags=tuple(f["tags"] or ()),
        config=config,
        summary={},
        step=0,
        runtime_offset=0.0,
        resumed=False,
        folder=folder,
        parent=parent,
    )


class Resume(Record):
    """Continue run ``run_id``; when it does not exist, create it if ``create`` else refuse."""

    run_id: str
    create: bool
    argument: str = "resume"
    missing: str = ""  # the UsageError message when it does not exist and create is False

    kind = "resume"

    def claim(self, tx: Transaction, ctx: StartContext) -> Started:
        existing = tx.find_run(ctx.project, self.run_id)
        if existing is None:
            if not self.create:
                raise UsageError(self.missing.format(id=self.run_id, project=ctx.project))
            return _create(tx, ctx, self.run_id, dict(ctx.fields["config"]), kind="new")
        refuse_if_live(existing, self.argument, ctx)
        incoming = ctx.fields["config"]
        config = dict(existing["config"])
        config.update({k: v for k, v in incoming.items() if k in ctx.config_given or k not in config})
        return _restart(tx, ctx, existing, config, dict(existing["summary"]), kind="resume")


def _restart(
    tx: Transaction,
    ctx: StartContext,
    existing: StoredRun,
    config: dict[str, Any],
    summary: dict[str, Any],
    *,
    kind: str,
) -> Started:
    f = ctx.fields

    def pick(name: str) -> Any:
        value = f[name]
        return value if value is not None else existing.get(name)

    tags = tuple(f["tags"]) if f["tags"] is not None else tuple(existing["tags"])
    row = {
        "name": pick("name"),
        "notes": pick("notes"),
        "run_group": pick("group"),
        "job_type": pick("job_type"),
        "entity": pick("entity"),
        "mode": f["mode"],
        "metadata": {**existing["metadata"], **ctx.metadata},
        "config": config,
        "tags": tags,
        "summary": summary,
    }
    pk = existing["pk"]
    tx.restart_run(pk, row, ctx.state)
    (ctx.store_root / existing["folder"]).mkdir(parents=True, exist_ok=True)
    refreshed = tx.find_run(ctx.project, existing["run_id"])
    assert refreshed is not None  # restarted in this very transaction
    step = max(refreshed["last_step"], tx.max_step(pk)) + 1
    parent = {"id": existing["parent_id"], "step": existing["branch_step"]} if existing.get("parent_id") else None
    return Started(
        kind=kind,
        pk=pk,
        run_id=existing["run_id"],
        name=row["name"],
        notes=row["notes"],
        group=row["run_group"],
        job_type=row["job_type"],
        entity=row["entity"],
        tags=tags,
        config=config,
        summary=summary,
        step=step,
        runtime_offset=refreshed["runtime"],
        resumed=True,
        folder=existing["folder"],
        parent=parent,
    )


class AutoResume(Record):
    """``resume="auto"`` without an id: continue ``candidate`` (the last run started from
    this dir) if it did not finish cleanly, else start a new run."""

    candidate: str | None

    kind = "auto"

    def claim(self, tx: Transaction, ctx: StartContext) -> Started:
        if self.candidate:
            previous = tx.find_run(ctx.project, self.candidate)
            if previous is not None and previous["state"] in ("crashed", "failed"):
                return Resume(self.candidate, create=False).claim(tx, ctx)
        return Create(None).claim(tx, ctx)


def _source(tx: Transaction, ctx: StartContext, source_id: str, argument: str) -> StoredRun:
    source = tx.find_run(ctx.project, source_id)
    if source is None:
        raise UsageError(
            f"{argument}: no run {source_id!r} in project {ctx.project!r}; the source run must be in the same project"
        )
    refuse_if_live(source, argument, ctx)
    return source


class Rewind(Record):
    """``resume_from="{id}?_step={step}"``: history after ``step`` is set aside and the
    run continues from ``step + 1`` under its own id."""

    source_id: str
    step: int

    kind = "rewind"

    def claim(self, tx: Transaction, ctx: StartContext) -> Started:
        source = _source(tx, ctx, self.source_id, "resume_from")
        tx.rewind(source["pk"], self.step)
        config = dict(source["config"])
        config.update(ctx.fields["config"])
        summary = summary_from(tx.history(source["pk"]))
        return _restart(tx, ctx, source, config, summary, kind="rewind")


class Fork(Record):
    """``fork_from="{id}?_step={step}"``: a new run whose history starts as a copy of
    the source's steps up to ``step``."""

    source_id: str
    step: int
    run_id: str | None

    kind = "fork"

    def claim(self, tx: Transaction, ctx: StartContext) -> Started:
        source = _source(tx, ctx, self.source_id, "fork_from")
        if self.run_id is not None and tx.find_run(ctx.project, self.run_id) is not None:
            raise UsageError(
                f"id={self.run_id!r} already exists in project {ctx.project!r}; pick another id for "
                "the fork or leave it out"
            )
        run_id = self.run_id
        while run_id is None or tx.find_run(ctx.project, run_id) is not None:
            run_id = new_run_id()
        config = dict(source["config"])
        config.update(ctx.fields["config"])
        started = _create(tx, ctx, run_id, config, kind="fork", parent={"id": source["run_id"], "step": self.step})
        assert started.pk is not None  # made in this transaction
        tx.copy_history(source["pk"], started.pk, self.step)
        rows = tx.history(started.pk)
        started.summary = summary_from(rows)
        started.step = max(rows[-1]["_step"] + 1 if rows else 0, self.step + 1)
        started.runtime_offset = rows[-1]["_runtime"] if rows else 0.0
        return started


Plan = Create | Resume | AutoResume | Rewind | Fork


def plan_for(
    *,
    run_id: str | None,
    id_given: bool,
    resume: str | None,
    resume_from: tuple[str, int] | None,
    fork_from: tuple[str, int] | None,
    auto_candidate: Callable[[], str | None],
) -> Plan:
    """The plan for ``init()``'s resolved arguments; argument mistakes that need no store
    raise ``UsageError`` here, before anything is written."""
    if resume_from is not None:
        source_id, step = resume_from
        if id_given and run_id != source_id:
            raise UsageError(
                f"resume_from rewinds run {source_id!r} and keeps its id; id={run_id!r} differs. Drop "
                "id=, or use fork_from for a new run"
            )
        return Rewind(source_id, step)
    if fork_from is not None:
        source_id, step = fork_from
        if id_given and run_id == source_id:
            raise UsageError(
                f"fork_from creates a new run, so id may not be the source's id {source_id!r}; to "
                f"continue that run from step {step}, use resume_from='{source_id}?_step={step}'"
            )
        return Fork(source_id, step, run_id if id_given else None)
    if resume == "auto" and not id_given:
        return AutoResume(auto_candidate())
    if run_id is None:
        if resume == "must":
            raise UsageError("resume='must' needs the id of the run to resume: pass id=... or set NBTRACK_RUN_ID")
        return Create(None)
    if resume in ("allow", "auto"):
        return Resume(run_id, create=True)
    if resume == "must":
        return Resume(
            run_id,
            create=False,
            missing="resume='must': no run {id!r} in project {project!r} to "
            "resume; check the id and project, or use resume='allow' to "
            "create it",
        )
    if resume == "never":
        return Create(
            run_id,
            exists="resume='never': run {id!r} already exists in project {project!r}; leave out "
            "id= to start a new run with a fresh id, or pass another id",
        )
    return Create(
        run_id,
        exists="id={id!r} already exists in project {project!r} and nbtrack never overwrites a "
        "run: pass resume='allow' to continue it, or another id (or none) for a new run",
    )
