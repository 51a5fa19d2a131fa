"""LightGBM with wandb's names: ``wandb_callback()`` and ``log_summary(model)``.

``lgb.train(params, train_set, valid_sets=[valid], callbacks=[wandb_callback()])`` logs
each iteration's evaluation results as ``<data>_<metric>`` (with ``iteration``) and the
parameters in the config; ``log_summary(booster)`` then puts ``best_iteration`` and
``best_score`` in the summary, logs the feature importances (a bar chart) and, with
``save_model_checkpoint=True``, the model as an artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import plot
from ..artifacts import Artifact
from ..errors import UsageError
from ..media import Table
from . import current_run, need

lightgbm = need("lightgbm", "lightgbm")


def wandb_callback(log_params: bool = True, define_metric: bool = True) -> Callable[[Any], None]:
    run = current_run("lightgbm wandb_callback")
    defined: set[str] = set()

    def _callback(env: Any) -> None:
        if log_params and env.iteration == env.begin_iteration:
            run.config.update(dict(env.params), allow_val_change=True)
        row: dict[str, Any] = {"iteration": env.iteration}
        for item in env.evaluation_result_list:
            data, name, value, bigger_is_better = item[:4]
            key = f"{data}_{name}"
            if define_metric and key not in defined:
                defined.add(key)
                run.define_metric(key, summary="max" if bigger_is_better else "min")
            row[key] = float(value)
        run.log(row)

    _callback.order = 20  # type: ignore[attr-defined]
    return _callback


def log_summary(model: Any, feature_importance: bool = True, save_model_checkpoint: bool = False) -> None:
    if not isinstance(model, lightgbm.Booster):
        raise UsageError(f"log_summary: model must be a lightgbm.Booster, got {type(model).__name__}")
    run = current_run("lightgbm log_summary")
    summary: dict[str, Any] = {"best_iteration": model.best_iteration}
    for data, metrics in (model.best_score or {}).items():
        for name, value in metrics.items():
            summary[f"best_score/{data}_{name}"] = float(value)
    run.summary.update(summary)
    if feature_importance:
        names, values = model.feature_name(), model.feature_importance()
        table = Table(
            columns=["Feature", "Importance"], data=[[n, float(v)] for n, v in zip(names, values, strict=True)]
        )
        run.log({"Feature Importance": plot.bar(table, "Feature", "Importance", title="Feature Importance")})
    if save_model_checkpoint:
        path = Path(run.dir) / "model.txt"
        model.save_model(str(path))
        artifact = Artifact(f"{run.id}_model", type="model")
        artifact.add_file(str(path))
        run.log_artifact(artifact)
