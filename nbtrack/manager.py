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
import sqlite3
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import diagnostics, environment, events, system, workers
from .active_run import DisabledRun, Run
from .errors import UsageError, choices
from .hyperparams import build_config, load_config
from .naming import check_project, check_run_id, check_tags, check_text, new_run_id
from .proc import boot_id, process_start
from .records import Record, field
from .settings import MODES, ResolvedSettings, Settings
from .starts import Create, StartContext, Started, plan_for
from .store import LocalStore, store_root
from .store.local import DB_NAME, unavailable

REINIT_CHOICES = (None, "default", "return_previous", "finish_previous", "create_new", True, False)
RESUME_CHOICES = (None, "allow", "never", "must", "auto", True, False)
ANONYMOUS_CHOICES = ("never", "allow", "must")
MODE_ALIASES = {"dryrun": "offline", "run": "online"}
_POINT = re.compile(r"^(?P<id>[^?]+)\?_step=(?P<step>\d+)$")


class InitArgs(Record):
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
            f"{argument}={value!r} is not of the form '{{run_id}}?_step={{step}}', e.g. {argument}='a1b2c3d4?_step=100'"
        )
    check_run_id(match["id"], argument)
    return match["id"], int(match["step"])


class RunManager:
    """Tracks the runs active in this process and creates new ones."""

    def __init__(self) -> None:
        self.active: list[Run | DisabledRun] = []
        self.current: Run | DisabledRun | None = None
        self._lock = threading.RLock()
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()  # every run made here, for the fork reset
        self._exits = ExitHooks()
        self._pid = os.getpid()
        # a sweep agent's trial: the next init() takes its config, group and project
        # (``apply(args)``) and hands it the run (``started(run)``)
        self.trial: Any = None

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
        if mode is not None:
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
                DeprecationWarning,
                stacklevel=4,
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
        config = build_config(config_source, include=include, exclude=exclude, cwd=cwd, paths=s.config_paths or ())
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
            notes=check_text(pick("notes", "run_notes"), "notes", multiline=True),
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
        trial = self.trial
        if trial is not None:
            trial.apply(a)
        s = a.settings
        if a.mode == "disabled":
            return self._disabled(a, kw)
        integrations = self._integrations(a)
        server = None
        if a.mode == "online":
            if not s.tracking_uri and a.force:
                raise UsageError(
                    "mode='online' with force=True needs a tracking server: set "
                    "Settings(tracking_uri=...), NBTRACK_TRACKING_URI or MLFLOW_TRACKING_URI"
                )
            if not s.tracking_uri:
                diagnostics.say(
                    "no tracking server is configured (NBTRACK_TRACKING_URI); this run is stored offline", quiet=s.quiet
                )
                a.mode = "offline"
            else:
                server = self._server(s, a)

        with self._lock:
            previous = self._apply_reinit(a, kw)
            if previous is not None:
                return previous
            run = self._start(a)
            if server is not None:
                run.start_sync(server, _sync_command(run), diagnostics.notice)
                if run.url:
                    diagnostics.say(f"syncing to {run.url}", quiet=s.quiet)
            self.active.append(run)
            if a.reinit != "create_new":
                self.current = run
            self._exits.install(self._at_exit)
        for patcher in integrations:
            run.attach(patcher.attach(run))
        if trial is not None:
            trial.started(run)
        events.bus.emit(events.RUN_STARTED, run=run)
        return run

    def _disabled(self, a: InitArgs, kw: dict[str, Any]) -> Run | DisabledRun:
        with self._lock:
            previous = self._apply_reinit(a, kw)
            if previous is not None:
                return previous
            run = DisabledRun(
                a.run_id or new_run_id(), a.name or "disabled", a.project, a.config, on_closed=self._closed
            )
            self.active.append(run)
            if a.reinit != "create_new":
                self.current = run
        return run

    @staticmethod
    def _integrations(a: InitArgs) -> list:
        """The patchers this run asks for; UsageError when their library is missing."""
        found: list[Any] = []
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

    def _apply_reinit(self, a: InitArgs, kw: dict[str, Any]) -> Run | DisabledRun | None:
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
                name
                for name, value, current in (
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
                )
                if value is not None and value != current
            ]
            if kw.get("config") is not None and any(run.config.get(k, object()) != v for k, v in a.config.items()):
                differs.append("config")
            if differs:
                diagnostics.warn(
                    f"nbtrack: init() returned the active run {run.name} ({run.id}) because "
                    f"reinit='return_previous'; these arguments were ignored: {', '.join(differs)}. "
                    "Pass reinit='finish_previous' or 'create_new' to start a new run",
                    stacklevel=4,
                )
            return run
        if a.reinit == "finish_previous":
            finished = list(self.active)
            for run in finished:
                run.finish()
            diagnostics.say(
                "finished " + ", ".join(f"{r.name} ({r.id})" for r in finished) + " before starting a new run",
                quiet=a.settings.quiet,
            )
        return None

    # ------------------------------------------------------------ the store
    def _start(self, a: InitArgs) -> Run:
        """Claim the run in the store (one transaction, see ``starts``) and build it."""
        s = a.settings
        now = time.time()
        # a folder with no store yet: the run is claimed there after init() returns
        fresh = not (store_root(a.dir) / DB_NAME).exists()
        store = LocalStore.open(a.dir, lazy=fresh)
        # where the run started (host, python, git...) is gathered by the writer thread
        meta: dict[str, Any] = {}
        meta["anonymous"] = a.anonymous
        meta["save_code"] = a.save_code
        if a.sync_tensorboard:
            meta["sync_tensorboard"] = True
        if a.monitor_gym:
            meta["monitor_gym"] = True
        owner = {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "boot_id": boot_id()}
        plan = plan_for(
            run_id=a.run_id,
            id_given=a.id_given,
            resume=a.resume,
            resume_from=a.resume_from,
            fork_from=a.fork_from,
            auto_candidate=lambda: _auto_candidate(store, a.project),
        )
        ctx = StartContext(
            project=a.project,
            now=now,
            state={"started_at": now, **owner},
            metadata=meta,
            fields={
                "name": a.name,
                "notes": a.notes,
                "group": a.group,
                "job_type": a.job_type,
                "entity": a.entity,
                "mode": a.mode,
                "tags": a.tags,
                "config": a.config,
            },
            config_given=a.config_given,
            is_active=self._is_active,
            store_root=store.root,
        )
        claim = None
        if fresh and type(plan) is Create and not store.opened:
            started, claim = _claim_later(plan, ctx, store, s)
        else:
            try:
                with store.transaction(busy_timeout=max(s.init_timeout, 1.0), stale_after=s.stale_after) as tx:
                    started = plan.claim(tx, ctx)
            except UsageError:
                raise
            except (sqlite3.Error, OSError) as exc:
                raise unavailable(store.root, exc) from None
        run = Run(
            started,
            store=store,
            project=a.project,
            mode=a.mode,
            dir=a.dir,
            settings=s,
            allow_val_change=a.allow_val_change,
            save_code=a.save_code,
            start_time=now,
            owner=owner,
            on_closed=self._closed,
            anonymous=a.anonymous,
            claim=claim,
        )
        self._runs.add(run)
        cwd, project, run_id = Path.cwd(), a.project, run.id
        sink = run._sink

        def environment_metadata() -> None:
            sink.metadata = environment.runtime_metadata(cwd, anonymous=a.anonymous == "must", git=not s.disable_git)

        def auto_resume_marker() -> None:
            try:
                store.write_auto_marker(project, run_id)
            except OSError:
                pass

        # left to the writer's first round (or to finish(), whichever comes first)
        sink.startup += [environment_metadata, auto_resume_marker]
        if system.available(s.system_interval):
            sink.startup.append(run.start_sampler)
        if a.save_code:
            saved = _save_program(Path(run.dir))
            if saved:
                run.record_code({"program": saved})
        verb = {"new": "started", "fork": "forked", "resume": "resumed", "rewind": "rewound"}[started.kind]
        diagnostics.say(f"{verb} run {run.name} ({run.id}) in project {a.project}; data in {run.dir}", quiet=s.quiet)
        run._writer.wake()  # its first round, now that init() is done with the interpreter
        return run

    def _is_active(self, project: str, run_id: str) -> bool:
        return any(r.id == run_id and r.project == project for r in self.active)

    # ---------------------------------------------------------------- finish
    def _closed(self, run: Run | DisabledRun) -> None:
        with self._lock:
            if run in self.active:
                self.active.remove(run)
            if self.current is run:
                self.current = None

    def finish_all(self, exit_code: int | None = None) -> None:
        for run in list(self.active):
            run.finish(exit_code=exit_code)

    def _at_exit(self) -> None:
        if os.getpid() != self._pid:
            return  # a forked child leaving: its parent's runs are not its own
        self.finish_all(exit_code=self._exits.exit_code())

    def _after_fork(self) -> None:
        """In a forked child: the parent's runs stay the parent's.  They refuse writes with
        a message saying to call init() in the child; the child's exit never ends them."""
        self._lock = threading.RLock()
        for run in list(self._runs):
            run._detach_after_fork()
        self.active = []
        self._pid = os.getpid()
        self._exits.forked()


class ExitHooks:
    """How a script ends, for the runs it leaves open: ``sys.exit(n)`` records exit code
    ``n`` (state ``failed`` unless 0) and an uncaught exception exit code 1 (130 for
    KeyboardInterrupt).  Not installed in IPython, where a cell's exception or
    ``sys.exit`` does not end the kernel."""

    def __init__(self) -> None:
        self._installed = False
        self._code: Any = 0
        self._error: type[BaseException] | None = None

    def install(self, at_exit: Callable[[], None]) -> None:
        if self._installed:
            return
        self._installed = True
        atexit.register(at_exit)
        if environment.in_notebook():
            return
        original_exit, previous_hook = sys.exit, sys.excepthook

        def exit(status: Any = None) -> None:
            self._code = status
            original_exit(status)

        def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            self._error = kind
            previous_hook(kind, value, tb)

        exit.__doc__ = original_exit.__doc__
        sys.exit = exit  # type: ignore[assignment]
        sys.excepthook = excepthook

    def forked(self) -> None:
        self._code, self._error = 0, None

    def exit_code(self) -> int:
        if self._error is not None:
            return 130 if issubclass(self._error, KeyboardInterrupt) else 1
        code = self._code
        if code is None or code is False:
            return 0
        if isinstance(code, int):
            return code
        return 1  # sys.exit("message") exits with 1, as Python does


def _claim_later(
    plan: Create, ctx: StartContext, store: LocalStore, s: ResolvedSettings
) -> tuple[Started, Callable[[], int]]:
    """A new run in a new store: what ``Run`` needs now (``Create.start_later``), and the
    claim to make later, by whoever needs the run's key first, the writer's first round
    as a rule (``RunSink.pk``): creating the database and inserting the run take
    milliseconds that init() need not wait for."""
    store.started_before_open += 1  # the store's first runs: numbered 1, 2... as count_runs() + 1 would
    try:
        started, later = plan.start_later(ctx, store.started_before_open)
    except OSError as exc:
        raise unavailable(store.root, exc) from None

    def claim() -> int:
        with store.transaction(busy_timeout=max(s.init_timeout, 1.0), stale_after=s.stale_after) as tx:
            pk = later.claim(tx, ctx).pk
        assert pk is not None  # a claim made in the store has its key
        return pk

    return started, claim


def _auto_candidate(store: LocalStore, project: str) -> str | None:
    """The run ``resume="auto"`` would continue: the last one started from this dir,
    named by the marker that a clean finish clears."""
    marker = store.read_auto_marker()
    if marker and marker.get("project") == project:
        return str(marker.get("run_id", "")) or None
    return None


def _sync_command(run: Run) -> str:
    return (
        f"nbtrack sync --dir {shlex.quote(run.store_dir)} --project {shlex.quote(run.project)} "
        f"--run {shlex.quote(run.id)}"
    )


def _save_program(folder: Path) -> str | None:
    """Copy the running script into the run's ``code/`` folder; return its relative path."""
    program = environment.program_path()
    if program is None:
        return None
    try:
        code = folder / "code"
        code.mkdir(exist_ok=True)
        import shutil

        shutil.copy2(program, code / program.name)
    except OSError as exc:
        diagnostics.warn(f"nbtrack: could not save {program}: {exc}", stacklevel=4)
        return None
    return f"code/{program.name}"


manager = RunManager()
workers.on_fork_child(manager._after_fork)
