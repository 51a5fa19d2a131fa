"""The ``%track_*`` magics: a thin adapter from IPython to nbtrack's API."""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Unicode

from .. import api
from ..errors import Error
from ..manager import MODE_ALIASES, manager
from . import commands

REINIT = ["default", "finish_previous", "return_previous", "create_new", "true", "false"]
RESUME = ["allow", "never", "must", "auto", "true", "false"]


def init_flags(func):
    """The flags shared by ``%track_init`` and ``%%track``: one per ``init()`` parameter."""
    flags = [
        argument("-p", "--project", help="project to log to (default: git root, program or 'uncategorized')"),
        argument("-e", "--entity", help="team or user the run belongs to"),
        argument("-n", "--name", help="display name (default: a generated name like brisk-river-7)"),
        argument("--id", help="run id, for resuming (default: 8 random characters)"),
        argument("--notes", help="a longer description of the run"),
        argument("--tags", nargs="+", help="tags: --tags baseline fp16"),
        argument("-g", "--group", help="group runs into a larger experiment"),
        argument("--job-type", dest="job_type", help="the kind of job, e.g. train or eval"),
        argument("--mode", choices=["online", "offline", "disabled", *MODE_ALIASES], help="where the run goes"),
        argument("--dir", help="runs are stored under DIR/nbtrack/ (default: NBTRACK_DIR or the working dir)"),
        argument("--reinit", choices=REINIT, help="what to do with runs already active (default: finish_previous)"),
        argument("--resume", choices=RESUME, help="continue a run: allow, never, must or auto"),
        argument("--resume-from", dest="resume_from", help="rewind: RUN_ID?_step=N"),
        argument("--fork-from", dest="fork_from", help="fork a new run: RUN_ID?_step=N"),
        argument(
            "--save-code",
            dest="save_code",
            action="store_true",
            default=None,
            help="save the session history and the notebook with the run",
        ),
        argument("--no-save-code", dest="save_code", action="store_false", help="do not save code"),
        argument(
            "--allow-val-change",
            dest="allow_val_change",
            action="store_true",
            default=None,
            help="config values may change (the default in a notebook)",
        ),
        argument(
            "--no-allow-val-change",
            dest="allow_val_change",
            action="store_false",
            help="changing a config value raises",
        ),
        argument("--config", nargs="+", help="a YAML file, or key=value pairs read as YAML: lr=0.01 layers=[64,32]"),
        argument("--config-include", dest="config_include", nargs="+", help="keep only these config keys"),
        argument("--config-exclude", dest="config_exclude", nargs="+", help="drop these config keys"),
        argument(
            "--sync-tensorboard",
            dest="sync_tensorboard",
            action="store_true",
            default=None,
            help="record TensorBoard scalars with the run",
        ),
        argument(
            "--monitor-gym",
            dest="monitor_gym",
            action="store_true",
            default=None,
            help="record gym videos with the run",
        ),
        argument("--force", action="store_true", default=None, help="online mode must reach its server"),
        argument("--anonymous", choices=["never", "allow", "must"], help="'must' records no user identity"),
    ]
    for flag in reversed(flags):
        func = flag(func)
    return magic_arguments()(func)


def _usage(exc: Exception) -> IPythonUsageError:
    return IPythonUsageError(str(exc))


def parse(func, line: str):
    """Parse a magic's line POSIX-style, so quotes group words and are removed
    (IPython's own splitting keeps them: ``--notes "a b"`` would keep the quotes)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise IPythonUsageError(f"cannot split the arguments: {exc}") from None
    return func.parser.parse_args(argv)


@magics_class
class TrackMagics(Magics):
    """nbtrack's magics.  Defaults can be set in IPython's config, e.g.
    ``c.TrackMagics.default_project = "mnist"``."""

    default_project = Unicode(None, allow_none=True, help="Project when --project is not given.").tag(config=True)
    default_entity = Unicode(None, allow_none=True, help="Entity when --entity is not given.").tag(config=True)
    default_dir = Unicode(None, allow_none=True, help="Store dir when --dir is not given.").tag(config=True)
    default_mode = Unicode(None, allow_none=True, help="Mode when --mode is not given.").tag(config=True)
    default_save_code = Bool(None, allow_none=True, help="save_code when not given.").tag(config=True)

    def __init__(self, shell: Any, layer: Any) -> None:
        super().__init__(shell=shell, parent=shell)
        self.layer = layer

    def _defaults(self) -> dict[str, Any]:
        return {
            "project": self.default_project,
            "entity": self.default_entity,
            "dir": self.default_dir,
            "mode": self.default_mode,
            "save_code": self.default_save_code,
        }

    def _start(self, line: str, func) -> Any:
        args = parse(func, line)
        try:
            kw = commands.init_kwargs(args, self._defaults())
            self.layer.in_magic = True
            try:
                return api.init(**kw)
            finally:
                self.layer.in_magic = False
        except Error as exc:
            raise _usage(exc) from None

    @init_flags
    @line_magic
    def track_init(self, line: str) -> Any:
        """Start a run (or continue one), show its status, and return it:
        ``run = %track_init -p mnist --config lr=0.01 --tags baseline``."""
        run = self._start(line, self.track_init)
        if "track_init" in (self.layer.cell_value_expr or ""):
            return None  # the cell's value: the panel is already shown, do not show it twice
        return run

    @init_flags
    @cell_magic
    def track(self, line: str, cell: str) -> None:
        """Run the cell inside a new run: init before, finish after (exit code 1, state
        'failed', if the cell raises; the exception still shows)."""
        run = self._start(line, self.track)
        shell = self.shell
        assert shell is not None  # a registered Magics always has its shell
        code = shell.transform_cell(cell)
        try:
            shell.ex(code)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish(exit_code=0)

    @magic_arguments()
    @argument("--exit-code", dest="exit_code", type=int, default=None, help="0 means finished, else failed")
    @line_magic
    def track_finish(self, line: str) -> None:
        """Finish the current run."""
        args = parse(self.track_finish, line)
        run = manager.current
        if run is None:
            raise IPythonUsageError("%track_finish: no active run")
        run.finish(exit_code=args.exit_code, quiet=True)  # the line below says it, once
        print(f"nbtrack: run {run.name} ({run.id}) {run.state}")

    @magic_arguments()
    @argument("pairs", nargs="+", help="key=value pairs, values read as YAML scalars")
    @line_magic
    def track_log(self, line: str) -> None:
        """Log key=value pairs to the current run: ``%track_log loss=0.3 note=ok``."""
        args = parse(self.track_log, line)
        try:
            api.log(commands.parse_pairs(args.pairs, "%track_log"))
        except Error as exc:
            raise _usage(exc) from None

    @magic_arguments()
    @argument("pairs", nargs="*", help="key=value pairs to set; none shows the config")
    @line_magic
    def track_config(self, line: str) -> Any:
        """Show the current run's config, or set keys: ``%track_config lr=0.02``."""
        args = parse(self.track_config, line)
        run = manager.current
        if run is None:
            raise IPythonUsageError("%track_config: no active run; start one with %track_init")
        if args.pairs:
            try:
                run.config.update(commands.parse_pairs(args.pairs, "%track_config"))
            except Error as exc:
                raise _usage(exc) from None
            return None
        return run.config.as_dict()

    @line_magic
    def track_status(self, line: str) -> None:
        """Show the current run's status again."""
        run = manager.current
        if run is None:
            raise IPythonUsageError("%track_status: no active run; start one with %track_init")
        self.layer.show(run)

    @magic_arguments()
    @argument("-p", "--project", help="project (default: the current run's, else all)")
    @argument("--limit", type=int, default=20, help="at most this many runs, newest first")
    @argument("--dir", help="store dir (default: the current run's, NBTRACK_DIR or the working dir)")
    @line_magic
    def track_runs(self, line: str) -> Any:
        """A table of a project's runs: name, id, state, start, duration, config and summary."""
        args = parse(self.track_runs, line)
        if args.limit is not None and args.limit < 1:
            raise IPythonUsageError("--limit: expected a positive number of runs")
        current = manager.current
        project = args.project or (current.project if current else None)
        dir = args.dir or self.default_dir
        if dir is None and current is not None and current.dir is not None:
            dir = current.store_dir
        reader = api.Api(dir)
        records = reader.runs(project, limit=args.limit)
        if not records:  # an empty table says nothing: say where we looked and what is there
            print(_no_runs(reader, project))
            return None
        return self.layer.runs_view(records, project)

    @magic_arguments()
    @argument("sweep_id", help="the sweep's id, as nbtrack.sweep() returned it")
    @argument("--dir", help="store dir (default: the current run's, NBTRACK_DIR or the working dir)")
    @line_magic
    def track_sweep(self, line: str) -> Any:
        """A sweep's trials as a runs table, best first by the sweep's metric, with a
        parallel coordinates view of the swept config keys against the metric."""
        args = parse(self.track_sweep, line)
        current = manager.current
        dir = args.dir or self.default_dir
        if dir is None and current is not None and current.dir is not None:
            dir = current.store_dir
        reader = api.Api(dir)
        try:
            sweep = reader.sweep(args.sweep_id)
        except Error as exc:
            raise IPythonUsageError(f"%track_sweep: {exc}") from None
        metric = sweep.config.get("metric") or {}
        records = reader.runs(sweep.project, filters={"group": sweep.id})
        return self.layer.runs_view(
            records, sweep.project, sort_by=metric.get("name"), descending=metric.get("goal") == "maximize"
        )


def _no_runs(reader: api.Api, project: str | None) -> str:
    """Why ``%track_runs`` shows no table: where it looked, and what that store has."""
    what = f"no runs of project {project!r}" if project else "no runs"
    others = [p.name for p in reader.projects() if p.name != project]
    here = f"; projects there: {', '.join(others[:20])}" if others else ""
    return (
        f"%track_runs: {what} in the store under {reader.root.parent}{here}. "
        "Runs made with init(dir=D) are in D's store: pass --dir D"
    )
