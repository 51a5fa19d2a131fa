"""The rest of wandb's top-level names, for code that switched with ``import nbtrack as
wandb``: the small ones nbtrack does, and the ones it does not, which raise a
``UsageError`` that names the feature and what to use instead (never an
``AttributeError`` deep inside the user's code).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from .errors import UsageError

# wandb name -> what to use in nbtrack instead
OUT_OF_SCOPE: dict[str, str] = {
    "Graph": "log the model's structure as text or an nbtrack.Html value",
    "Plotly": "log the figure as nbtrack.Html(figure.to_html()), or a matplotlib figure",
    "EvalTable": "use nbtrack.Table",
    "plot_table": "use the charts of nbtrack.plot (line, scatter, bar, histogram, line_series...)",
    "visualize": "use the charts of nbtrack.plot",
    "controller": "sweeps run on Optuna in nbtrack (see the sweeps issue); nbtrack has no sweep controller",
    "ArtifactTTL": "artifact versions are kept until deleted (Artifact.delete())",
    "pin_config_keys": "the panel shows every config key",
    "jupyter": "use %load_ext nbtrack",
    "profiler": "use the PyTorch profiler and log its tables",
    "launch": "wandb Launch is wandb's job service; run the script with your scheduler",
    "api": "use nbtrack.Api()",
    "plots": "wandb.plots was wandb's old chart module, gone from wandb too; use nbtrack.plot (roc_curve, pr_curve, "
    "confusion_matrix...) or nbtrack.sklearn",
}
# wandb names for framework integrations and sweeps, which nbtrack does not have yet
# wandb names for frameworks nbtrack has no integration for
_NO_INTEGRATION = (
    "nbtrack has no integration for this framework; log from your own loop or callback with nbtrack.log "
    "(nbtrack integrates Keras, Lightning, Transformers, XGBoost, LightGBM, scikit-learn and PyTorch's watch)"
)
OUT_OF_SCOPE.update({name: _NO_INTEGRATION for name in ("catboost", "fastai", "sacred", "tensorflow")})


class OutOfScope:
    """Stands in for a wandb feature nbtrack does not have: calling it, or anything on
    it, raises a ``UsageError`` saying so and what to use instead."""

    def __init__(self, name: str, reason: str | None = None) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_reason", reason or OUT_OF_SCOPE[name])

    def _fail(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        name = object.__getattribute__(self, "_name")
        raise UsageError(f"wandb.{name} is not in nbtrack: {object.__getattribute__(self, '_reason')}")

    __call__ = _fail

    def __getattr__(self, _attr: str) -> Any:
        self._fail()

    def __repr__(self) -> str:
        return f"<wandb.{object.__getattribute__(self, '_name')}: not in nbtrack>"


def setup(settings: Any = None) -> None:
    """wandb starts its service process here; nbtrack has none (runs write from the
    process itself), so there is nothing to set up."""
    return None


def teardown(exit_code: int | None = None) -> None:
    """Finish the runs of this process (wandb's ``teardown``)."""
    from .manager import manager

    for run in list(manager.active):
        run.finish(exit_code)


def require(requirement: str | list[str] | None = None, experiment: Any = None) -> None:
    """wandb's feature flags (``"core"``, ``"service"``...) change how wandb itself runs;
    nbtrack's behaviour does not depend on them."""
    return None


def _term(prefix: str, string: str, newline: bool = True) -> None:
    sys.stderr.write(f"nbtrack: {prefix}{string}" + ("\n" if newline else ""))
    sys.stderr.flush()


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term("", string, newline)


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term("WARNING ", string, newline)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term("ERROR ", string, newline)


def sagemaker_auth(overrides: dict[str, Any] | None = None, path: str = ".", api_key: str | None = None) -> None:
    """wandb writes its API key for SageMaker jobs here.  nbtrack needs no account, so
    nothing is written; for a tracking server, pass NBTRACK_TRACKING_URI (and
    NBTRACK_TRACKING_TOKEN) to the job's environment."""
    return None


def box3d(
    center: Any, size: Any, orientation: Any, color: Any, label: str | None = None, score: float | None = None
) -> dict[str, Any]:
    """A 3-D box for ``Object3D({"type": "lidar/beta", "boxes": [...]})``, with wandb's
    fields (centre, size, orientation quaternion, RGB colour, label, score)."""
    from .values import json_friendly

    box = {
        "center": json_friendly(center),
        "size": json_friendly(size),
        "orientation": json_friendly(orientation),
        "color": json_friendly(color),
    }
    if label is not None:
        box["label"] = label
    if score is not None:
        box["score"] = float(score)
    return box
