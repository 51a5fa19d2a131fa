"""``RunManager``: the process's active runs, and everything ``init()`` decides.

It resolves every argument (explicit > settings > ``NBTRACK_*`` > defaults),
applies ``reinit`` to the runs already active, finds the run to ``resume``, rewind
(``resume_from``) or fork (``fork_from``) in the local store, and creates the
``Run``.  Nothing here knows about IPython beyond asking ``environment`` whether an
interactive shell is running.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import environment, events, system
from .hyperparams import build_config, load_config
from .errors import UsageError, choices
from .naming import check_project, check_run_id, check_tags, check_text, new_run_id, new_run_name
from .proc import boot_id, process_start
from .active_run import DisabledRun, Run
from .settings import MODES, Settings
from .store import BatchWriter, LocalStore, RunSink, StoreUnavailable
from .store.writer import NbtrackWarning

REINIT_CHOICES = (None, "default", "return_previous", "finish_previous", "create_new", True, False)
RESUME_CHOICES = (None, "allow", "never", "must", "auto", True, False)
ANONYMOUS_CHOICES = ("never", "allow", "must")
MODE_ALIASES = {"dryrun": "offline", "run": "online"}
_POINT = re.compile(r"^(?P<id>[^?]+)\?_step=(?P<step>\d+)$")


@dataclass
class InitArgs:
    """Every ``init()`` argument after validation and precedence."""

    project: str
    entity: str | None
    dir: Path
    run_id: str | None
    id_given: bool
    name: str | None
    notes: str | None
    tags: tuple[str, ...] | None
    config: dict[str, Any]
    config_given: set[str]
    allow_val_change: bool
    group: str | None
    job_type: str | None
    mode: str
    force: bool
    anonymous: str
    reinit: str
    resume: str | None
    resume_from: tuple[str, int] | None
    fork_from: tuple[str, int] | None
    save_code: bool
    sync_tensorboard: bool
    monitor_gym: bool
    settings: Any
    extras: dict[str, Any] = field(default_factory=dict)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"nbtrack: {message}", file=sys.stderr if not environment.in_notebook() else sys.stdout)


def _notice(message: str) -> None:
    """A line the user must see even with ``quiet``: where their data is not."""
    print(message, file=sys.stderr if not environment.in_notebook() else sys.stdout, flush=True)


def _bool_or_none(value: Any, argument: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise UsageError(f"{argument}: expected True, False or None, got {value!r}")


def _point(value: Any, argument: str) -> tuple[str, int] | None:
    if value is None:
        return None
    match = _POINT.match(value) if isinstance(value, str) else None
    if match is None:
        raise UsageError(
            f"{argument}={value!r} is not of the form '{{run_id}}?_step={{step}}', "
            f"e.g. {argument}='a1b2c3d4?_step=100'"
        )
    check_run_id(match["id"], argument)
    return match["id"], int(match["step"])


class RunManager:
    """Tracks the runs active in this process and creates new ones."""

    def __init__(self) -> None:
        self.active: list[Run] = []
        self.current: Run | None = None
        self._lock = threading.RLock()
        self._exit_hooked = False
        self._uncaught = False

    # ------------------------------------------------------------- arguments
    def resolve(self, kw: dict[str, Any]) -> InitArgs:
        settings_obj = Settings.coerce(kw.get("settings"))
        s = settings_obj.resolve()
        notebook = environment.in_notebook()

        if kw.get("magic") is not None:
            warnings.warn("init(magic=...) is deprecated and has no effect", DeprecationWarning, stacklevel=4)
        tensorboard = _bool_or_none(kw.get("tensorboard"), "tensorboard")
        if tensorboard is not None:
            warnings.warn(
                "init(tensorboard=...) is deprecated; use sync_tensorboard=...", DeprecationWarning, stacklevel=4
            )
        sync_tb = _bool_or_none(kw.get("sync_tensorboard"), "sync_tensorboard")
        if sync_tb is None:
            sync_tb = tensorboard

        def pick(arg: str, setting: str | None = None) -> Any:
            value = kw.get(arg)
            return value if value is not None else getattr(s, setting or arg)

        mode = pick("mode")
        if mode is not None and not isinstance(mode, str):
            raise UsageError(f"mode: expected one of {choices(MODES)}, got {mode!r}")
        mode = MODE_ALIASES.get(mode, mode)
        if mode is None:
            mode = "online" if s.tracking_uri else "offline"
        if mode not in MODES:
            raise UsageError(
                f"mode={mode!r} is not accepted; use one of {choices(MODES)} "
                "('dryrun' means 'offline', 'run' means 'online')"
            )
        force = bool(_bool_or_none(kw.get("force"), "force"))

        anonymous = pick("anonymous") or "never"
        if anonymous not in ANONYMOUS_CHOICES:
            raise UsageError(f"anonymous={anonymous!r} is not accepted; use one of {choices(ANONYMOUS_CHOICES)}")

        reinit = kw.get("reinit")
        if reinit is None:
            reinit = s.reinit
        if reinit not in REINIT_CHOICES or (reinit is not None and not isinstance(reinit, (str, bool))):
            raise UsageError(f"reinit={reinit!r} is not accepted; use one of {choices(REINIT_CHOICES)}")
        if isinstance(reinit, bool):
            literal = "finish_previous" if reinit else "return_previous"
            warnings.warn(
                f"init(reinit={reinit}) is deprecated; use reinit={literal!r}", DeprecationWarning, stacklevel=4
            )
            reinit = literal
        if reinit in (None, "default"):
            reinit = "finish_previous" if notebook else "return_previous"

        resume = kw.get("resume")
        if resume is None:
            resume = s.resume
        if resume not in RESUME_CHOICES or (resume is not None and not isinstance(resume, (str, bool))):
            raise UsageError(f"resume={resume!r} is not accepted; use one of {choices(RESUME_CHOICES)}")
        if isinstance(resume, bool):
            warnings.warn(
                f"init(resume={resume}) is deprecated; use "
                + ("resume='auto'" if resume else "no resume argument (None)"),
                DeprecationWarning, stacklevel=4,
            )
            resume = "auto" if resume else None
        resume_from = _point(kw.get("resume_from"), "resume_from")
        fork_from = _point(kw.get("fork_from"), "fork_from")
        given = [n for n, v in (("resume", resume), ("resume_from", resume_from), ("fork_from", fork_from)) if v]
        if len(given) > 1:
            source = " (NBTRACK_RESUME is set)" if "resume" in given and kw.get("resume") is None else ""
            raise UsageError(
                f"{' and '.join(given)} cannot be used together{source}; pass only one of "
                "resume, resume_from and fork_from"
            )

        run_id = pick("id", "run_id")
        id_given = run_id is not None
        if run_id is not None:
            check_run_id(run_id, "id")

        project = pick("project")
        cwd = Path.cwd()
        if project is None:
            project = environment.default_project(cwd) or "uncategorized"
        check_project(project)

        dir_value = kw.get("dir")
        if dir_value is None:
            dir_value = s.dir
        if dir_value is None:
            dir_value = cwd
        if not isinstance(dir_value, (str, os.PathLike)):
            raise UsageError(f"dir: expected a path (str or os.PathLike), got {type(dir_value).__name__}")
        run_dir = Path(dir_value).expanduser().absolute()

        tags = kw.get("tags")
        tags = check_tags(tags) if tags is not None else (tuple(s.run_tags) if s.run_tags else None)

        include, exclude = kw.get("config_include_keys"), kw.get("config_exclude_keys")
        config_source = kw.get("config")
        config = build_config(config_source, include=include, exclude=exclude, cwd=cwd)
        config_given = set(load_config(config_source)) if config_source is not None else set()

        allow = _bool_or_none(kw.get("allow_val_change"), "allow_val_change")
        if allow is None:
            allow = notebook

        save_code = _bool_or_none(kw.get("save_code"), "save_code")
        if save_code is None:
            save_code = bool(s.save_code)

        return InitArgs(
            project=project,
            entity=check_text(pick("entity"), "entity"),
            dir=run_dir,
            run_id=run_id,
            id_given=id_given,
            name=check_text(pick("name", "run_name"), "name"),
            notes=check_text(pick("notes", "run_notes"), "notes"),
            tags=tags,
            config=config,
            config_given=config_given,
            allow_val_change=allow,
            group=check_text(pick("group", "run_group"), "group"),
            job_type=check_text(pick("job_type", "run_job_type"), "job_type"),
            mode=mode,
            force=force,
            anonymous=anonymous,
            reinit=reinit,
            resume=resume,
            resume_from=resume_from,
            fork_from=fork_from,
            save_code=save_code,
            sync_tensorboard=bool(sync_tb),
            monitor_gym=bool(_bool_or_none(kw.get("monitor_gym"), "monitor_gym")),
            settings=s,
        )

    # ------------------------------------------------------------------ init
    def init(self, **kw: Any) -> Run | DisabledRun:
        a = self.resolve(kw)
        s = a.settings
        if a.mode == "disabled":
            return DisabledRun(a.run_id or new_run_id(), a.name or "disabled", a.project, a.config)
        integrations = self._integrations(a)
        server = None
        if a.mode == "online":
            if not s.tracking_uri and a.force:
                raise UsageError(
                    "mode='online' with force=True needs a tracking server: set "
                    "Settings(tracking_uri=...), NBTRACK_TRACKING_URI or MLFLOW_TRACKING_URI"
                )
            if not s.tracking_uri:
                _say("no tracking server is configured (NBTRACK_TRACKING_URI); this run is stored offline", s.quiet)
                a.mode = "offline"
            else:
                server = self._server(s, a)

        with self._lock:
            previous = self._apply_reinit(a, kw)
            if previous is not None:
                return previous
            run = self._start(a)
            if server is not None:
                self._attach_sync(run, server, a)
            self.active.append(run)
            if a.reinit != "create_new":
                self.current = run
            self._hook_exit()
        for patcher in integrations:
            run._detach.append(patcher.attach(run))
        events.bus.emit(events.RUN_STARTED, run=run)
        return run

    @staticmethod
    def _integrations(a: InitArgs) -> list:
        """The patchers this run asks for; UsageError when their library is missing."""
        found = []
        if a.sync_tensorboard:
            from .integrations import tensorboard

            tensorboard.check_available()
            found.append(tensorboard.patcher)
        if a.monitor_gym:
            from .integrations import gym

            gym.check_available()
            found.append(gym.patcher)
        return found

    # ------------------------------------------------------------ online
    def _server(self, s: Any, a: InitArgs) -> Any:
        """The tracking server of an online run; with ``force=True`` it must answer now."""
        from . import sync  # requests is loaded by online runs only

        try:
            server = sync.Server.resolve(s.tracking_uri, insecure=s.tracking_insecure)
        except ValueError as exc:
            raise UsageError(f"tracking_uri: {exc}") from None
        if a.force:
            # its own client, so a sync request hanging on the shared one cannot hold it up;
            # fails fast: AuthenticationError on 401/403, CommError when unreachable
            client = sync.Client(server)
            try:
                client.experiment_id(a.project, deadline=time.monotonic() + s.init_timeout, retries=1)
            finally:
                client.close()
        return server

    def _attach_sync(self, run: Run, server: Any, a: InitArgs) -> None:
        from . import sync

        s = a.settings
        store, pk = run._store, run._sink.pk
        if store is None or pk is None:
            _say(f"run {run.id} has no local store to sync from; it is kept in memory only", s.quiet)
            return
        command = f"nbtrack sync --dir {shlex.quote(str(store.root.parent))} --project {shlex.quote(run.project)} --run {shlex.quote(run.id)}"
        run._sync = sync.SyncService.get().attach(
            store, pk, server, label=f"{run.project}/{run.id}", sync_command=command,
            connect_timeout=s.init_timeout, say=_notice)
        if run._sync.url:
            _say(f"syncing to {run._sync.url}", s.quiet)

    def _apply_reinit(self, a: InitArgs, kw: dict[str, Any]) -> Run | None:
        if not self.active:
            return None
        if a.resume == "must" and a.reinit != "create_new":
            names = ", ".join(f"{r.name} ({r.id})" for r in self.active)
            raise UsageError(
                f"resume='must' cannot start while {names} is active: finish it first "
                "(run.finish()), or pass reinit='create_new' to keep it running beside the resumed run"
            )
        if a.reinit == "return_previous":
            run = self.active[-1]
            differs = [
                name for name, value, current in (
                    ("project", kw.get("project"), run.project),
                    ("name", kw.get("name"), run.name),
                    ("id", kw.get("id"), run.id),
                    ("notes", kw.get("notes"), run.notes),
                    ("group", kw.get("group"), run.group),
                    ("job_type", kw.get("job_type"), run.job_type),
                    ("tags", a.tags if kw.get("tags") is not None else None, run.tags),
                    ("resume", kw.get("resume"), None),
                    ("resume_from", kw.get("resume_from"), None),
                    ("fork_from", kw.get("fork_from"), None),
                ) if value is not None and value != current
            ]
            if kw.get("config") is not None and any(
                run.config.get(k, object()) != v for k, v in a.config.items()
            ):
                differs.append("config")
            if differs:
                warnings.warn(
                    f"nbtrack: init() returned the active run {run.name} ({run.id}) because "
                    f"reinit='return_previous'; these arguments were ignored: {', '.join(differs)}. "
                    "Pass reinit='finish_previous' or 'create_new' to start a new run",
                    NbtrackWarning, stacklevel=4,
                )
            return run
        if a.reinit == "finish_previous":
            finished = list(self.active)
            for run in finished:
                run.finish()
            _say("finished " + ", ".join(f"{r.name} ({r.id})" for r in finished) + " before starting a new run",
                 a.settings.quiet)
        return None

    # ------------------------------------------------------------ the store
    def _start(self, a: InitArgs) -> Run:
        s = a.settings
        now = time.time()
        try:
            store: LocalStore | None = LocalStore.open(a.dir)
        except StoreUnavailable as exc:
            store = None
            warnings.warn(f"nbtrack: {exc}; this run is kept in memory only", NbtrackWarning, stacklevel=4)

        existing = None
        kind = "new"
        if store is not None:
            existing, kind = self._find_existing(store, a)
        meta = environment.runtime_metadata(Path.cwd(), anonymous=a.anonymous == "must")
        meta["anonymous"] = a.anonymous
        meta["save_code"] = a.save_code
        if a.sync_tensorboard:
            meta["sync_tensorboard"] = True
        if a.monitor_gym:
            meta["monitor_gym"] = True
        state = {"started_at": now, "pid": os.getpid(), "pid_start": process_start(os.getpid()), "boot_id": boot_id()}

        parent = None
        summary: dict[str, Any] = {}
        runtime_offset = 0.0
        step = 0
        if kind == "new" or kind == "fork":
            run_id = a.run_id or new_run_id()
            if store is not None and kind == "new":
                while a.run_id is None and store.find_run(a.project, run_id) is not None:
                    run_id = new_run_id()
            config = dict(a.config)
            if kind == "fork":
                source_cfg = dict(existing["config"])
                source_cfg.update(a.config)
                config = source_cfg
                parent = {"id": existing["run_id"], "step": a.fork_from[1]}
            name = a.name or new_run_name((store.count_runs(a.project) if store else 0) + 1)
            tags = a.tags or ()
            row = {
                "project": a.project, "run_id": run_id, "entity": a.entity, "name": name, "notes": a.notes,
                "run_group": a.group, "job_type": a.job_type, "mode": a.mode, "created_at": now,
                "folder": f"runs/{a.project}/{run_id}", "parent_id": parent and parent["id"],
                "branch_step": parent and parent["step"], "metadata": meta, "config": config, "tags": tags,
            }
            pk = None
            if store is not None:
                pk = self._guarded(store, store.create_run, row, state)
                if pk is not None and kind == "fork":
                    store.copy_history(existing["pk"], pk, a.fork_from[1])
                    summary = _summary_from(store.history(pk))
                    rows = store.history(pk)
                    step = rows[-1]["_step"] + 1 if rows else a.fork_from[1] + 1
                    step = max(step, a.fork_from[1] + 1)
                    if rows:
                        runtime_offset = rows[-1]["_runtime"]
            resumed = False
        else:  # resume or rewind an existing run
            run_id = existing["run_id"]
            pk = existing["pk"]
            config = dict(existing["config"])
            config.update(a.config if kind == "rewind" else {k: v for k, v in a.config.items()
                                                            if k in a.config_given or k not in config})
            name = a.name or existing["name"]
            tags = a.tags if a.tags is not None else existing["tags"]
            row = {
                "name": name, "notes": a.notes if a.notes is not None else existing["notes"],
                "run_group": a.group if a.group is not None else existing["group"],
                "job_type": a.job_type if a.job_type is not None else existing["job_type"],
                "entity": a.entity if a.entity is not None else existing["entity"],
                "mode": a.mode, "metadata": {**existing["metadata"], **meta}, "config": config, "tags": tags,
            }
            a.notes, a.group, a.job_type, a.entity = row["notes"], row["run_group"], row["job_type"], row["entity"]
            if kind == "rewind":
                store.rewind(pk, a.resume_from[1])
                summary = _summary_from(store.history(pk))
            else:
                summary = dict(existing["summary"])
            store.restart_run(pk, row, state)
            refreshed = store.find_run(a.project, run_id)
            step = max(refreshed["last_step"], store.max_step(pk)) + 1
            runtime_offset = refreshed["runtime"]
            if existing.get("parent_id"):
                parent = {"id": existing["parent_id"], "step": existing["branch_step"]}
            resumed = True

        folder = store.run_folder(f"runs/{a.project}/{run_id}") if store is not None else None
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                warnings.warn(f"nbtrack: cannot create {folder}: {exc}", NbtrackWarning, stacklevel=4)
        sink = RunSink(
            store if pk is not None else None, pk, t0=now, runtime_offset=runtime_offset,
            summary=lambda: summary, heartbeat_interval=s.heartbeat_interval, label=f"{a.project}/{run_id}",
        )
        run = Run(
            run_id=run_id, name=name, project=a.project, entity=a.entity, notes=a.notes, tags=tuple(tags),
            group=a.group, job_type=a.job_type, mode=a.mode, config=config,
            allow_val_change=a.allow_val_change, summary=summary, step=step, resumed=resumed,
            start_time=now, folder=folder, sink=sink, finish_timeout=s.finish_timeout,
            on_finish=self._finished, parent=parent,
        )
        run._store = store
        run._settings = s
        run._save_code = a.save_code
        BatchWriter.get().add(sink, s.flush_interval)
        run._sampler = system.start_sampler(s.system_interval, run._system_sample,
                                            str(folder) if folder is not None else None, f"{a.project}/{run_id}")
        if store is not None and pk is not None:
            try:
                store.write_auto_marker(a.project, run_id)
            except OSError:
                pass
        if a.save_code and folder is not None:
            saved = _save_program(folder)
            if saved and pk is not None:
                self._guarded(store, store.update_metadata, pk, {"code": {"program": saved}})
        verb = {"new": "started", "fork": "forked", "resume": "resumed", "rewind": "rewound"}[kind]
        where = folder if folder is not None else "memory only"
        _say(f"{verb} run {name} ({run_id}) in project {a.project}; data in {where}", s.quiet)
        return run

    def _guarded(self, store: LocalStore, work, *args):
        try:
            return work(*args)
        except Exception as exc:  # a full disk or read-only folder must not stop the user
            if isinstance(exc, UsageError):
                raise
            warnings.warn(f"nbtrack: cannot write to {store.root}: {exc}; this run is kept in memory only",
                          NbtrackWarning, stacklevel=5)
            return None

    def _find_existing(self, store: LocalStore, a: InitArgs) -> tuple[dict[str, Any] | None, str]:
        if a.resume_from or a.fork_from:
            source_id, step = a.resume_from or a.fork_from
            argument = "resume_from" if a.resume_from else "fork_from"
            source = store.find_run(a.project, source_id)
            if source is None:
                raise UsageError(f"{argument}: no run {source_id!r} in project {a.project!r}; "
                                 "the source run must be in the same project")
            self._refuse_if_live(source, argument)
            if a.resume_from:
                if a.id_given and a.run_id != source_id:
                    raise UsageError(f"resume_from rewinds run {source_id!r} and keeps its id; "
                                     f"id={a.run_id!r} differs. Drop id=, or use fork_from for a new run")
                return source, "rewind"
            if a.id_given and a.run_id == source_id:
                raise UsageError(f"fork_from creates a new run, so id may not be the source's id {source_id!r}; "
                                 f"to continue that run from step {step}, use resume_from='{source_id}?_step={step}'")
            if a.id_given and store.find_run(a.project, a.run_id) is not None:
                raise UsageError(f"id={a.run_id!r} already exists in project {a.project!r}; "
                                 "pick another id for the fork or leave it out")
            return source, "fork"

        resume = a.resume
        if resume == "auto" and not a.id_given:
            # The marker names the last run started from this dir; a clean finish clears it.
            marker = store.read_auto_marker()
            if marker and marker.get("project") == a.project:
                previous = store.find_run(a.project, str(marker.get("run_id", "")))
                if previous is not None and previous["state"] in ("crashed", "failed"):
                    return previous, "resume"
            return None, "new"
        if a.run_id is None:
            if resume == "must":
                raise UsageError("resume='must' needs the id of the run to resume: pass id=... "
                                 "or set NBTRACK_RUN_ID")
            return None, "new"
        existing = store.find_run(a.project, a.run_id)
        if existing is None:
            if resume == "must":
                raise UsageError(f"resume='must': no run {a.run_id!r} in project {a.project!r} to resume; "
                                 "check the id and project, or use resume='allow' to create it")
            return None, "new"
        if resume in ("allow", "must", "auto"):
            self._refuse_if_live(existing, "resume")
            return existing, "resume"
        if resume == "never":
            raise UsageError(f"resume='never': run {a.run_id!r} already exists in project {a.project!r}; "
                             "leave out id= to start a new run with a fresh id, or pass another id")
        raise UsageError(f"id={a.run_id!r} already exists in project {a.project!r} and nbtrack never "
                         "overwrites a run: pass resume='allow' to continue it, or another id (or none) "
                         "for a new run")

    def _is_active(self, row: dict[str, Any]) -> bool:
        return any(r.id == row["run_id"] and r.project == row["project"] for r in self.active)

    def _refuse_if_live(self, row: dict[str, Any], argument: str) -> None:
        if row["state"] != "running":
            return
        if self._is_active(row):
            raise UsageError(f"{argument}: run {row['run_id']!r} is active in this process; "
                             "finish it first (run.finish())")
        raise UsageError(f"{argument}: run {row['run_id']!r} is still running in process {row['pid']}; "
                         "wait for it to finish or stop that process")

    # ---------------------------------------------------------------- finish
    def _finished(self, run: Run, exit_code: int | None) -> None:
        sink = run._sink
        writer = BatchWriter.get()
        for detach in run._detach:  # copies TensorBoard event files into the run folder
            detach()
        run._detach = []
        if run._sampler is not None:
            run._sampler.stop()  # its last sample goes out with the final flush
        if not sink.flush(timeout=run._finish_timeout) or sink.pending:
            sink.flush(timeout=run._finish_timeout)
        writer.remove(sink)
        store = run._store
        if store is not None and sink.pk is not None:
            try:
                store.finish_run(sink.pk, run.state, exit_code, sink.runtime())
                if run.state == "finished":
                    store.clear_auto_marker(run.project, run.id)
            except Exception as exc:
                warnings.warn(f"nbtrack: could not record the end of run {run.id}: {exc}", NbtrackWarning,
                              stacklevel=4)
        if sink.pending:
            warnings.warn(f"nbtrack: {sink.pending} rows of run {run.id} could not be written", NbtrackWarning,
                          stacklevel=4)
        with self._lock:
            if run in self.active:
                self.active.remove(run)
            if self.current is run:
                self.current = None
        events.bus.emit(events.RUN_FINISHED, run=run)
        if run._sync is not None:  # after the listeners, which may save code to upload
            run._sync.finish(run._settings.sync_timeout)
            events.bus.emit(events.SYNC_DONE, run=run)

    def finish_all(self, exit_code: int | None = None) -> None:
        for run in list(self.active):
            run.finish(exit_code=exit_code)

    def _hook_exit(self) -> None:
        if self._exit_hooked:
            return
        self._exit_hooked = True
        atexit.register(self._at_exit)
        if not environment.in_notebook():
            previous = sys.excepthook

            def excepthook(kind, value, tb):
                self._uncaught = True
                previous(kind, value, tb)

            sys.excepthook = excepthook

    def _at_exit(self) -> None:
        self.finish_all(exit_code=1 if self._uncaught else 0)


def _summary_from(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith("_"):
                summary[key] = value
    return summary


def _save_program(folder: Path) -> str | None:
    """Copy the running script into the run's ``code/`` folder; return its relative path."""
    program = environment.program_path()
    if program is None:
        return None
    try:
        code = folder / "code"
        code.mkdir(exist_ok=True)
        shutil.copy2(program, code / program.name)
    except OSError as exc:
        warnings.warn(f"nbtrack: could not save {program}: {exc}", NbtrackWarning, stacklevel=4)
        return None
    return f"code/{program.name}"


manager = RunManager()
