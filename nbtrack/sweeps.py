"""Sweeps: wandb's ``sweep()`` and ``agent()``, run by Optuna.

``sweep(config)`` reads wandb's sweep configuration and makes an Optuna study (its
name is the sweep id); ``agent(sweep_id, function, count)`` runs trials: for each, it
asks the study for values, calls ``function()``, in which ``nbtrack.init()`` starts a
run whose ``config`` holds them (``group`` = the sweep id, the sweep's project), and
tells the study the run's metric.  Optuna does the searching:

- ``method: grid`` -> ``GridSampler``, ``random`` -> ``RandomSampler``, ``bayes`` ->
  ``TPESampler``;
- ``early_terminate: {type: hyperband, min_iter, eta, max_iter}`` -> ``HyperbandPruner``:
  each logged value of the metric is reported as an intermediate value; a trial the
  pruner stops raises ``nbtrack.sweeps.RunPruned`` out of that ``log()`` call, and its
  run ends finished, tagged ``pruned``;
- ``run_cap`` -> no more trials once the study has that many.

The study lives next to the runs (``<dir>/nbtrack/sweeps.journal``, Optuna's journal
file: several agent processes on one machine share it safely); ``NBTRACK_SWEEP_STORAGE``
(any Optuna storage URL, such as ``postgresql://...``) lets agents on many machines
share one sweep.  Needs ``pip install nbtrack[sweeps]`` (Optuna).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import diagnostics
from .errors import Error, UsageError
from .manager import manager
from .naming import new_run_id
from .settings import Settings
from .store import store_root

try:
    import fcntl
except ImportError:  # Windows: no lock between agents (a grid point may rarely run twice)
    fcntl = None  # type: ignore[assignment]

METHODS = ("grid", "random", "bayes")
DISTRIBUTIONS = (
    "constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform", "log_uniform_values",
    "q_log_uniform", "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values", "normal", "q_normal",
    "log_normal", "q_log_normal",
)  # fmt: skip
CONFIG_ATTR = "nbtrack_sweep_config"
PROJECT_ATTR = "nbtrack_project"


class RunPruned(Exception):
    """Raised out of ``log()`` in a sweep trial the pruner stopped; the agent catches it."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("sweeps run on Optuna: pip install 'nbtrack[sweeps]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(dir: str | os.PathLike[str] | None = None) -> Any:
    """The Optuna storage of sweeps: ``NBTRACK_SWEEP_STORAGE``, else a journal file next
    to the runs."""
    optuna = _optuna()
    url = os.environ.get("NBTRACK_SWEEP_STORAGE")
    if url:
        return url
    root = store_root(dir or Settings().resolve().dir or Path.cwd())
    root.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(root / "sweeps.journal")))


# ------------------------------------------------------------------ the configuration
def _check_parameters(parameters: Any, where: str) -> None:
    if not isinstance(parameters, Mapping) or not parameters:
        raise UsageError(f"sweep: {where} must be a dict of parameter names to specs")
    for name, spec in parameters.items():
        here = f"{where}.{name}"
        if not isinstance(spec, Mapping):
            raise UsageError(f"sweep: {here} must be a dict such as {{'values': [...]}} or {{'min': 0, 'max': 1}}")
        if "parameters" in spec:
            _check_parameters(spec["parameters"], f"{here}.parameters")
            continue
        kind = _kind(spec, here)
        if kind == "categorical" and (not isinstance(spec.get("values"), (list, tuple)) or not spec["values"]):
            raise UsageError(f"sweep: {here}.values must be a non-empty list")
        if kind in ("int_uniform", "uniform", "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform",
                    "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values"):  # fmt: skip
            lo, hi = spec.get("min"), spec.get("max")
            if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or not lo < hi:
                raise UsageError(f"sweep: {here} needs numbers min < max, got min={lo!r} max={hi!r}")
            if kind.endswith("_values") and lo <= 0:
                raise UsageError(f"sweep: {here} ({kind}) needs min > 0, got {lo!r}")
        if kind in ("normal", "q_normal", "log_normal", "q_log_normal"):
            sigma = spec.get("sigma", 1)
            if not isinstance(sigma, (int, float)) or sigma <= 0:
                raise UsageError(f"sweep: {here}.sigma must be a positive number, got {sigma!r}")


def _kind(spec: Mapping[str, Any], where: str) -> str:
    kind = spec.get("distribution")
    if kind is None:
        if "value" in spec:
            return "constant"
        if "values" in spec:
            return "categorical"
        if "min" in spec and "max" in spec:
            ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            return "int_uniform" if ints else "uniform"
        if "mu" in spec or "sigma" in spec:
            return "normal"
        raise UsageError(f"sweep: {where} needs value, values, min/max or a distribution")
    if kind not in DISTRIBUTIONS:
        raise UsageError(f"sweep: {where}.distribution {kind!r} is not one of {', '.join(DISTRIBUTIONS)}")
    return str(kind)


def check_config(config: Any) -> dict[str, Any]:
    """wandb's sweep configuration, checked; UsageError naming what is wrong."""
    if isinstance(config, (str, os.PathLike)):
        from .hyperparams import load_yaml

        config = load_yaml(Path(config).read_text(), str(config))
    if not isinstance(config, Mapping):
        raise UsageError(f"sweep: expected a sweep configuration dict (or a YAML file), got {type(config).__name__}")
    config = dict(config)
    method = config.get("method")
    if method not in METHODS:
        raise UsageError(f"sweep: method must be one of {', '.join(METHODS)}, got {method!r}")
    metric = config.get("metric")
    if metric is not None:
        if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str):
            raise UsageError("sweep: metric must be {'name': <logged key>, 'goal': 'minimize' or 'maximize'}")
        if metric.get("goal", "minimize") not in ("minimize", "maximize"):
            raise UsageError(f"sweep: metric.goal must be 'minimize' or 'maximize', got {metric.get('goal')!r}")
    elif method == "bayes":
        raise UsageError("sweep: method 'bayes' needs a metric to optimise: metric: {name: ..., goal: ...}")
    _check_parameters(config.get("parameters"), "parameters")
    if method == "grid":
        for path, spec in _leaves(config["parameters"]):
            if _kind(spec, path) not in ("constant", "categorical", "int_uniform"):
                raise UsageError(
                    f"sweep: method 'grid' needs values (or an int range) for every parameter; {path} "
                    "has a continuous distribution"
                )
    stop = config.get("early_terminate")
    if stop is not None:
        if not isinstance(stop, Mapping) or stop.get("type") != "hyperband":
            raise UsageError("sweep: early_terminate must be {'type': 'hyperband', 'min_iter': ..., 'eta': ...}")
        if metric is None:
            raise UsageError("sweep: early_terminate needs a metric to judge trials by")
    cap = config.get("run_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise UsageError(f"sweep: run_cap must be a positive integer, got {cap!r}")
    return config


def _leaves(parameters: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for name, spec in parameters.items():
        if "parameters" in spec:
            out += _leaves(spec["parameters"], f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", spec))
    return out


def _suggest(trial: Any, path: str, spec: Mapping[str, Any]) -> Any:
    """One parameter's value for a trial (Optuna's suggest_*, or a transform of one)."""
    kind = _kind(spec, path)
    lo: Any = spec.get("min")
    hi: Any = spec.get("max")
    q = spec.get("q", 1)
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        values = list(spec["values"])
        if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            return trial.suggest_categorical(path, values)
        return values[trial.suggest_categorical(path, list(range(len(values))))]  # lists, dicts: by index
    if kind == "int_uniform":
        return trial.suggest_int(path, int(lo), int(hi))
    if kind == "uniform":
        return trial.suggest_float(path, float(lo), float(hi))
    if kind == "q_uniform":
        return round(trial.suggest_float(path, float(lo), float(hi)) / q) * q
    if kind == "log_uniform_values":
        return trial.suggest_float(path, float(lo), float(hi), log=True)
    if kind == "log_uniform":  # min and max are natural logs
        return trial.suggest_float(path, math.exp(lo), math.exp(hi), log=True)
    if kind == "q_log_uniform_values":
        return round(trial.suggest_float(path, float(lo), float(hi), log=True) / q) * q
    if kind == "q_log_uniform":
        return round(trial.suggest_float(path, math.exp(lo), math.exp(hi), log=True) / q) * q
    if kind == "inv_log_uniform_values":
        return 1.0 / trial.suggest_float(path, 1.0 / float(hi), 1.0 / float(lo), log=True)
    if kind == "inv_log_uniform":
        return 1.0 / trial.suggest_float(path, math.exp(-hi), math.exp(-lo), log=True)
    # normal families: a uniform quantile through the normal's inverse CDF, so random
    # sampling draws exactly from the distribution and TPE searches its quantiles
    mu, sigma = float(spec.get("mu", 0.0)), float(spec.get("sigma", 1.0))
    u = trial.suggest_float(path, 1e-9, 1 - 1e-9)
    x = statistics.NormalDist(mu, sigma).inv_cdf(u)
    if kind.endswith("log_normal"):
        x = math.exp(x)
    if kind.startswith("q_"):
        x = round(x / q) * q
    return x


def sample(trial: Any, parameters: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config of a trial: nested parameters as nested dicts."""
    out: dict[str, Any] = {}
    for name, spec in parameters.items():
        if "parameters" in spec:
            out[name] = sample(trial, spec["parameters"], f"{prefix}{name}.")
        else:
            out[name] = _suggest(trial, f"{prefix}{name}", spec)
    return out


def _grid(parameters: Mapping[str, Any]) -> dict[str, list[Any]]:
    space = {}
    for path, spec in _leaves(parameters):
        kind = _kind(spec, path)
        if kind == "categorical":
            values = list(spec["values"])
            simple = all(v is None or isinstance(v, (bool, int, float, str)) for v in values)
            space[path] = values if simple else list(range(len(values)))
        elif kind == "int_uniform":
            space[path] = list(range(int(spec["min"]), int(spec["max"]) + 1))
    return space


# ------------------------------------------------------------------ sweep() and agent()
def sweep(
    sweep: Any, entity: str | None = None, project: str | None = None, prior_runs: list[str] | None = None
) -> str:
    """Make a sweep from wandb's sweep configuration; its id (give it to ``agent``)."""
    optuna = _optuna()
    config = check_config(sweep)
    project = project or config.get("project") or Settings().resolve().project or "uncategorized"
    sweep_id = new_run_id()
    goal = (config.get("metric") or {}).get("goal", "minimize")
    study = optuna.create_study(study_name=sweep_id, storage=storage(), direction=goal)
    study.set_user_attr(CONFIG_ATTR, config)
    study.set_user_attr(PROJECT_ATTR, project)
    for run_id in prior_runs or []:
        _add_prior(study, config, project, run_id)
    diagnostics.say(
        f"created sweep {sweep_id} in project {project} ({config['method']}, Optuna study {sweep_id})",
        quiet=bool(Settings().resolve().quiet),
    )
    return sweep_id


def _add_prior(study: Any, config: dict[str, Any], project: str, run_id: str) -> None:
    """A finished run as a completed trial, for the parameters Optuna can take as they are."""
    optuna = _optuna()
    record = _record(project, run_id)
    metric = (config.get("metric") or {}).get("name")
    value = _metric_value(record.summary, metric, (config.get("metric") or {}).get("goal", "minimize"))
    params, dists = {}, {}
    for path, spec in _leaves(config["parameters"]):
        kind = _kind(spec, path)
        found: Any = record.config
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found is None:
            continue
        if kind == "categorical" and found in spec["values"]:
            params[path], dists[path] = found, optuna.distributions.CategoricalDistribution(list(spec["values"]))
        elif kind == "int_uniform":
            params[path], dists[path] = found, optuna.distributions.IntDistribution(spec["min"], spec["max"])
        elif kind in ("uniform", "log_uniform_values"):
            params[path] = found
            dists[path] = optuna.distributions.FloatDistribution(
                spec["min"], spec["max"], log=kind == "log_uniform_values"
            )
    if value is None:
        raise UsageError(f"sweep: prior run {run_id} has no {metric!r} in its summary")
    study.add_trial(
        optuna.trial.create_trial(params=params, distributions=dists, value=value, user_attrs={"run_id": run_id})
    )


def _metric_value(summary: Mapping[str, Any], name: str | None, goal: str) -> float | None:
    if name is None:
        return None
    value = summary.get(name)
    if isinstance(value, dict):  # define_metric summaries: the best the run reached, else its last
        value = value.get("best", value.get("min" if goal == "minimize" else "max", value.get("last")))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


class Trial:
    """The manager's hook for one trial: the next init() takes the sampled config."""

    def __init__(
        self,
        sweep_id: str,
        project: str,
        config: dict[str, Any],
        trial: Any,
        metric: dict[str, Any] | None,
        prune: bool,
    ) -> None:
        self.sweep_id = sweep_id
        self.project = project
        self.config = config
        self.trial = trial
        self.metric = metric
        self.prune = prune
        self.run: Any = None
        self.reported = -1

    def apply(self, a: Any) -> None:
        if self.run is not None:
            return  # a second init() in the same trial is a run of its own
        a.project = self.project
        a.config = {**a.config, **self.config}  # the sweep's values win, as in wandb
        a.config_given = set(a.config_given) | set(self.config)
        a.group = a.group or self.sweep_id
        if a.reinit == "return_previous":
            a.reinit = "finish_previous"  # a trial needs a run of its own

    def started(self, run: Any) -> None:
        if self.run is not None:
            return
        self.run = run
        run.sweep_id = self.sweep_id
        if self.prune and self.metric is not None:
            run.after_log = self.observe

    def observe(self, step: int, row: dict[str, Any]) -> None:
        value = row.get(self.metric["name"]) if self.metric else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return
        if step <= self.reported:
            step = self.reported + 1
        self.reported = step
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise RunPruned(f"sweep {self.sweep_id}: the pruner stopped this trial at step {step}")


def _parse_sweep_id(sweep_id: str) -> tuple[str | None, str]:
    if not isinstance(sweep_id, str) or not sweep_id:
        raise UsageError(f"agent: sweep_id must be the id sweep() returned, got {sweep_id!r}")
    parts = sweep_id.split("/")
    return (parts[-2] if len(parts) >= 2 else None), parts[-1]


def load(sweep_id: str, dir: str | os.PathLike[str] | None = None) -> tuple[Any, dict[str, Any], str]:
    optuna = _optuna()
    _project, name = _parse_sweep_id(sweep_id)
    try:
        study = optuna.load_study(study_name=name, storage=storage(dir))
    except KeyError:
        raise UsageError(f"no sweep {name!r} in {_describe_storage(dir)}") from None
    return study, study.user_attrs[CONFIG_ATTR], study.user_attrs[PROJECT_ATTR]


def _describe_storage(dir: str | os.PathLike[str] | None = None) -> str:
    return os.environ.get("NBTRACK_SWEEP_STORAGE") or str(
        store_root(dir or Settings().resolve().dir or Path.cwd()) / "sweeps.journal"
    )


def _sampler(config: dict[str, Any]) -> Any:
    optuna = _optuna()
    method = config["method"]
    if method == "grid":
        return optuna.samplers.GridSampler(_grid(config["parameters"]))
    if method == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler()


def _pruner(config: dict[str, Any]) -> Any:
    optuna = _optuna()
    stop = config.get("early_terminate")
    if not stop:
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(
        min_resource=int(stop.get("min_iter", 1)),
        max_resource=stop.get("max_iter", "auto"),
        reduction_factor=int(stop.get("eta", 3)),
    )


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
) -> None:
    """Run trials of a sweep: ``function()`` for each (it calls ``nbtrack.init()`` and
    trains), until ``count`` trials ran here, the sweep's ``run_cap`` is reached, or a
    grid is exhausted.  A trial whose function raises is failed and the sweep goes on."""
    optuna = _optuna()
    if function is None:
        raise UsageError("agent: pass function=, the training function each trial calls (nbtrack runs no programs)")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise UsageError(f"agent: count must be a positive integer, got {count!r}")
    _project, name = _parse_sweep_id(sweep_id)
    study, config, sweep_project = load(sweep_id)
    study.sampler, study.pruner = _sampler(config), _pruner(config)  # they live with the agent, not the study
    metric = config.get("metric")
    callbacks = []
    if config.get("run_cap") is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(config["run_cap"], states=None))
    if config.get("run_cap") is not None and len(study.trials) >= config["run_cap"]:
        return

    def objective(trial: Any) -> float:
        if config["method"] == "grid":
            # sampling and the check are serialised between this machine's agents, so the
            # second agent to reach a grid point sees the first one's values and steps aside
            with _claim_lock():
                sampled = sample(trial, config["parameters"])
                if _taken(study, trial):
                    raise DuplicateTrial(f"grid point {trial.params} is another trial's (another agent took it)")
        else:
            sampled = sample(trial, config["parameters"])
        hook = Trial(name, project or sweep_project, sampled, trial, metric, prune=bool(config.get("early_terminate")))
        if manager.trial is not None:
            raise Error("agent: another sweep trial is running in this process")
        manager.trial = hook
        outcome = "complete"
        try:
            function()
        except RunPruned:
            outcome = "pruned"
        except Exception as exc:
            outcome = "failed"
            diagnostics.warn(f"nbtrack: sweep {name}: trial {trial.number} failed: {exc!r}")
            raise
        finally:
            manager.trial = None
            _end_run(hook.run, trial, outcome)
        if outcome == "pruned":
            raise optuna.TrialPruned()
        if hook.run is None:
            raise Error("the trial's function started no run (call nbtrack.init() in it)")
        if metric is None:
            return 0.0
        value = _metric_value(hook.run.summary, metric["name"], metric.get("goal", "minimize"))
        if value is None:
            raise Error(f"run {hook.run.id} logged no {metric['name']!r}")
        return value

    study.optimize(objective, n_trials=count, catch=(Exception,), callbacks=callbacks)


class DuplicateTrial(Exception):
    """A grid point another agent already took: this trial is failed without a run."""


def _taken(study: Any, trial: Any) -> bool:
    """Whether another trial, running or done, has this trial's values."""
    mine = trial.params
    return any(
        other.number != trial.number and other.params == mine and other.state.name in ("RUNNING", "COMPLETE", "PRUNED")
        for other in study.get_trials(deepcopy=False)
    )


@contextlib.contextmanager
def _claim_lock() -> Iterator[None]:
    """An exclusive lock shared by this machine's agents (``sweeps.lock`` next to the
    runs).  Agents on other machines (``NBTRACK_SWEEP_STORAGE``) are not covered: there,
    as with Optuna's own GridSampler, a grid point may rarely run twice."""
    root = store_root(Settings().resolve().dir or Path.cwd())
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "sweeps.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _end_run(run: Any, trial: Any, outcome: str) -> None:
    if run is None:
        return
    trial.set_user_attr("run_id", run.id)
    if outcome == "pruned":
        try:
            run.tags = [*run.tags, "pruned"]
        except Exception:
            pass
    run.finish(exit_code=1 if outcome == "failed" else 0, quiet=True)


def _record(project: str, run_id: str, dir: str | os.PathLike[str] | None = None) -> Any:
    """A run of the store, as ``Api().run()`` gives it (sweeps sit below the Api)."""
    from .artifacts import StoreSource
    from .run_record import RunRecord
    from .store import LocalStore, reader

    store = LocalStore.open(dir or Settings().resolve().dir or Path.cwd())
    with store.lock:
        row = reader.get_run(store.con, project, run_id)
    if row is None:
        raise UsageError(f"sweep: no run {run_id!r} in project {project!r} under {store.root}")
    return RunRecord(row, StoreSource(store))


class Sweep:
    """A sweep read back (``Api().sweep(id)``): its config, trials and best run."""

    def __init__(self, sweep_id: str, dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = dir
        self.study, self.config, self.project = load(sweep_id, dir)
        self.id = self.study.study_name

    @property
    def runs(self) -> list[Any]:
        """The sweep's runs, in trial order."""
        return [_record(self.project, t["run_id"], self.dir) for t in self.trials() if t["run_id"]]

    def best_run(self, order: str | None = None) -> Any:
        """The run of the best completed trial, as Optuna reports it."""
        return _record(self.project, self.study.best_trial.user_attrs["run_id"], self.dir)

    def trials(self) -> list[dict[str, Any]]:
        return [
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": t.params,
                "run_id": t.user_attrs.get("run_id"),
                "last_reported_step": max(t.intermediate_values) if t.intermediate_values else None,
            }
            for t in self.study.trials
        ]
