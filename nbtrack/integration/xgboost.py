"""An XGBoost training callback with wandb's name: ``WandbCallback``.

``xgboost.train(params, dtrain, evals=[(dvalid, "valid")], callbacks=[WandbCallback()])``
or ``XGBClassifier(callbacks=[WandbCallback()])``: each iteration's evaluation results
(``<data>-<metric>``, with ``epoch``), the booster's configuration in the config, then
the feature importances (a bar chart ``Feature Importance``), ``best_score`` and
``best_iteration`` in the summary, and with ``log_model=True`` the model as an artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import plot
from ..artifacts import Artifact
from ..media import Table
from . import current_run, need

xgboost = need("xgboost", "xgboost")


class WandbCallback(xgboost.callback.TrainingCallback):  # type: ignore[name-defined]
    def __init__(
        self,
        log_model: bool = False,
        log_feature_importance: bool = True,
        importance_type: str = "gain",
        define_metric: bool = True,
    ) -> None:
        super().__init__()
        self.run = current_run("xgboost WandbCallback")
        self.log_model = log_model
        self.log_feature_importance = log_feature_importance
        self.importance_type = importance_type
        self.define_metric = define_metric

    def before_training(self, model: Any) -> Any:
        try:
            config = json.loads(model.save_config())
            self.run.config.update({"learner": config.get("learner", config)}, allow_val_change=True)
        except Exception:
            pass
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[float]]]) -> bool:
        row: dict[str, Any] = {"epoch": epoch}
        for data, metrics in evals_log.items():
            for name, values in metrics.items():
                value = values[-1]
                row[f"{data}-{name}"] = float(value[0] if isinstance(value, tuple) else value)
                if self.define_metric and epoch == 0:
                    self.run.define_metric(f"{data}-{name}", summary="min" if "auc" not in name else "max")
        self.run.log(row)
        return False

    def after_training(self, model: Any) -> Any:
        if self.log_feature_importance:
            scores = model.get_score(importance_type=self.importance_type)
            if scores:
                table = Table(columns=["Feature", "Importance"], data=[[k, float(v)] for k, v in scores.items()])
                self.run.log(
                    {"Feature Importance": plot.bar(table, "Feature", "Importance", title="Feature Importance")}
                )
        for attr in ("best_score", "best_iteration"):
            value = model.attr(attr)
            if value is not None:
                self.run.summary.update({attr: float(value) if attr == "best_score" else int(value)})
        if self.log_model:
            path = Path(self.run.dir) / "xgb_model.json"
            model.save_model(str(path))
            artifact = Artifact(f"{self.run.id}_model", type="model")
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)
        return model
