"""nbtrack: experiment tracking for people who train models in notebooks.

>>> import nbtrack
>>> run = nbtrack.init(project="mnist", config={"lr": 0.01})
>>> run.log({"loss": 0.5})
>>> run.finish()

In IPython or Jupyter, ``%load_ext nbtrack`` adds the ``%track_*`` magics.
Importing this package does not import IPython or any widget library.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from . import api as _api
from .active_run import DisabledRun, Run
from .api import (
    Api,
    alert,
    define_metric,
    finish,
    link_artifact,
    link_model,
    log,
    log_artifact,
    log_code,
    log_model,
    mark_preempting,
    restore,
    save,
    unwatch,
    use_artifact,
    use_model,
    watch,
)
from .diagnostics import NbtrackWarning
from .errors import AuthenticationError, CommError, ConfigError, Error, UsageError
from .hyperparams import Config
from .settings import Settings

# Names whose modules load when first used, so that ``import nbtrack`` stays quick
# (bench/bench.py measures it): name -> module.
_LAZY = {
    "plot": ".plot",
    "util": ".util",
    "AlertLevel": ".alerts",
    "Artifact": ".artifacts",
    "ArtifactEntry": ".artifacts",
    "box3d": ".compat",
    "require": ".compat",
    "sagemaker_auth": ".compat",
    "setup": ".compat",
    "teardown": ".compat",
    "termerror": ".compat",
    "termlog": ".compat",
    "termwarn": ".compat",
    "login": ".login",
    "Audio": ".media",
    "Classes": ".media",
    "Histogram": ".media",
    "Html": ".media",
    "Image": ".media",
    "JoinedTable": ".media",
    "MediaRef": ".media",
    "Molecule": ".media",
    "Object3D": ".media",
    "Table": ".media",
    "Video": ".media",
    "Metric": ".metrics",
    "RunRecord": ".run_record",
    "agent": ".sweeps",
    "sweep": ".sweeps",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import plot, util
    from .alerts import AlertLevel
    from .artifacts import Artifact, ArtifactEntry
    from .compat import box3d, require, sagemaker_auth, setup, teardown, termerror, termlog, termwarn
    from .login import login
    from .media import Audio, Classes, Histogram, Html, Image, JoinedTable, MediaRef, Molecule, Object3D, Table, Video
    from .metrics import Metric
    from .run_record import RunRecord
    from .sweeps import agent, sweep

__version__ = "0.1.0"

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "ArtifactEntry",
    "Audio",
    "AuthenticationError",
    "Classes",
    "CommError",
    "Config",
    "ConfigError",
    "DisabledRun",
    "Error",
    "Histogram",
    "Html",
    "Image",
    "JoinedTable",
    "MediaRef",
    "Metric",
    "Molecule",
    "NbtrackWarning",
    "Object3D",
    "Run",
    "RunRecord",
    "Settings",
    "Table",
    "UsageError",
    "Video",
    "agent",
    "alert",
    "box3d",
    "config",
    "define_metric",
    "finish",
    "init",
    "join",
    "link_artifact",
    "link_model",
    "load_ipython_extension",
    "log",
    "log_artifact",
    "log_code",
    "log_model",
    "login",
    "mark_preempting",
    "plot",
    "require",
    "restore",
    "run",
    "sagemaker_auth",
    "save",
    "setup",
    "summary",
    "sweep",
    "teardown",
    "termerror",
    "termlog",
    "termwarn",
    "unload_ipython_extension",
    "unwatch",
    "use_artifact",
    "use_model",
    "util",
    "watch",
]


_FRAMEWORKS = ("sklearn", "keras", "xgboost", "lightgbm", "integration")


def __getattr__(name: str) -> Any:
    # nbtrack.run / .config / .summary follow the current run, so they are looked up
    # at each access rather than stored as module globals.
    if name in ("run", "config", "summary"):
        from .api import _BeforeInit
        from .manager import manager

        run = manager.current
        if name == "run":
            return run
        if run is None:
            return _BeforeInit(name)
        return getattr(run, name)
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name in ("plot", "util") else getattr(module, name)
        globals()[name] = value  # looked up once
        return value
    if name in _FRAMEWORKS:  # wandb.sklearn, wandb.keras...: loaded when first used
        import importlib

        return importlib.import_module(f".{name}", __name__)
    from .compat import OUT_OF_SCOPE, OutOfScope

    if name in OUT_OF_SCOPE:  # a wandb feature nbtrack does not have: say so when used
        return OutOfScope(name)
    raise AttributeError(f"module 'nbtrack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


join = finish  # wandb's old name


@functools.wraps(_api.init)
def init(*args: Any, **kwargs: Any):
    # In IPython, the notebook layer (hooks, displays, session history) comes along
    # even without %load_ext; IPython is then loaded already, so this costs nothing
    # in scripts.
    from .environment import ipython_shell

    shell = ipython_shell()
    if shell is not None:
        load_ipython_extension(shell)
    return _api.init(*args, **kwargs)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: register the magics and notebook hooks."""
    from .jupyter import extension

    extension.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbtrack``: remove what ``load_ipython_extension`` added."""
    from .jupyter import extension

    extension.unload(ipython)
