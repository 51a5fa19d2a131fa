"""Keras 3 callbacks with wandb's names and arguments: ``WandbMetricsLogger``,
``WandbModelCheckpoint``, ``WandbEvalCallback`` and the legacy ``WandbCallback``.

Keras runs on any backend; with neither ``KERAS_BACKEND`` set nor TensorFlow installed,
this module sets ``KERAS_BACKEND=torch`` before importing Keras when PyTorch is there
(Keras would otherwise fail to import).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ..artifacts import Artifact
from ..media import Histogram, Table
from . import current_run, need

if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    if importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"
keras = need("keras", "keras")


def _number(value: Any) -> Any:
    try:
        return float(keras.ops.convert_to_numpy(value))
    except Exception:
        return value


def _learning_rate(model: Any) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        return None
    value = _number(rate)
    return value if isinstance(value, float) else None


class WandbMetricsLogger(keras.callbacks.Callback):  # type: ignore[name-defined]
    """Logs ``logs`` at each epoch end as ``epoch/<name>`` (with ``epoch/epoch`` and
    ``epoch/learning_rate``), and with ``log_freq="batch"`` or N every N batches as
    ``batch/<name>`` (with ``batch/batch_step``)."""

    def __init__(self, log_freq: str | int = "epoch", initial_global_step: int = 0, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = current_run("WandbMetricsLogger")
        if log_freq == "batch":
            log_freq = 1
        if log_freq != "epoch" and (not isinstance(log_freq, int) or log_freq < 1):
            from ..errors import UsageError

            raise UsageError(
                f"WandbMetricsLogger: log_freq must be 'epoch', 'batch' or a positive integer, got {log_freq!r}"
            )
        self.log_freq: str | int = log_freq
        self.global_step = initial_global_step
        self.run.define_metric("epoch/epoch")
        self.run.define_metric("epoch/*", step_metric="epoch/epoch")
        if log_freq != "epoch":
            self.run.define_metric("batch/batch_step")
            self.run.define_metric("batch/*", step_metric="batch/batch_step")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {f"epoch/{k}": _number(v) for k, v in (logs or {}).items()}
        row["epoch/epoch"] = epoch
        rate = _learning_rate(self.model)
        if rate is not None:
            row["epoch/learning_rate"] = rate
        self.run.log(row)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1
        if not isinstance(self.log_freq, int) or self.global_step % self.log_freq:
            return
        row = {f"batch/{k}": _number(v) for k, v in (logs or {}).items()}
        row["batch/batch_step"] = self.global_step
        rate = _learning_rate(self.model)
        if rate is not None:
            row["batch/learning_rate"] = rate
        self.run.log(row)


class WandbModelCheckpoint(keras.callbacks.ModelCheckpoint):  # type: ignore[name-defined]
    """``keras.callbacks.ModelCheckpoint`` that also logs each saved checkpoint as a
    version of the artifact ``run_<id>_model`` (type ``model``, alias ``epoch_<n>``)."""

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filepath=str(filepath),
            monitor=monitor,
            verbose=verbose,
            save_best_only=save_best_only,
            save_weights_only=save_weights_only,
            mode=mode,
            save_freq=save_freq,
            initial_value_threshold=initial_value_threshold,
            **kwargs,
        )
        self.run = current_run("WandbModelCheckpoint")
        self._seen: dict[str, float] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        path = Path(self._get_file_path(epoch, None, logs))
        if path.exists() and self._seen.get(str(path)) != path.stat().st_mtime:
            self._seen[str(path)] = path.stat().st_mtime
            artifact = Artifact(f"run_{self.run.id}_model", type="model")
            if path.is_dir():
                artifact.add_dir(str(path))
            else:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact, aliases=[f"epoch_{epoch}"])


class WandbEvalCallback(keras.callbacks.Callback):  # type: ignore[name-defined]
    """Base class for evaluation tables, as wandb's: subclass it, fill
    ``self.data_table`` in ``add_ground_truth(logs)`` (called at the start of
    training) and ``self.pred_table`` in ``add_model_predictions(epoch, logs)`` (each
    epoch end).  Both are logged as tables and as artifacts."""

    def __init__(self, data_table_columns: list[str], pred_table_columns: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = current_run("WandbEvalCallback")
        self.data_table_columns = list(data_table_columns)
        self.pred_table_columns = list(pred_table_columns)
        self.data_table: Table | None = None
        self.pred_table: Table | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.init_data_table(column_names=self.data_table_columns)
        self.add_ground_truth(logs)
        self.log_data_table()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.init_pred_table(column_names=self.pred_table_columns)
        self.add_model_predictions(epoch, logs)
        self.log_pred_table(aliases=[f"epoch_{epoch}"])

    def add_ground_truth(self, logs: dict[str, Any] | None = None) -> None:
        raise NotImplementedError("WandbEvalCallback: implement add_ground_truth(self, logs)")

    def add_model_predictions(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        raise NotImplementedError("WandbEvalCallback: implement add_model_predictions(self, epoch, logs)")

    def init_data_table(self, column_names: list[str]) -> None:
        self.data_table = Table(columns=column_names)

    def init_pred_table(self, column_names: list[str]) -> None:
        self.pred_table = Table(columns=column_names)

    def log_data_table(self, name: str = "val", type: str = "dataset", table_name: str = "val_data") -> None:
        assert self.data_table is not None
        artifact = Artifact(f"run_{self.run.id}_{name}", type=type)
        artifact.add(self.data_table, table_name)
        self.run.log_artifact(artifact)
        self.run.log({table_name: self.data_table}, commit=False)

    def log_pred_table(
        self, type: str = "evaluation", table_name: str = "eval_data", aliases: list[str] | None = None
    ) -> None:
        assert self.pred_table is not None
        artifact = Artifact(f"run_{self.run.id}_pred", type=type)
        artifact.add(self.pred_table, table_name)
        self.run.log_artifact(artifact, aliases=aliases)
        self.run.log({table_name: self.pred_table}, commit=False)


class WandbCallback(keras.callbacks.Callback):  # type: ignore[name-defined]
    """wandb's legacy all-in-one callback: each epoch's ``logs`` (with ``epoch``), the
    best value of ``monitor`` in the summary (``best_<monitor>``, ``best_epoch``), the
    best model saved as ``model-best.keras`` in the run's folder and as an artifact
    (``save_model``), weight histograms (``log_weights``) and batch rows every
    ``log_batch_frequency`` batches.  Its image and gradient options are accepted and
    not used."""

    def __init__(
        self,
        monitor: str = "val_loss",
        verbose: int = 0,
        mode: str = "auto",
        save_weights_only: bool = False,
        log_weights: bool = False,
        log_gradients: bool = False,
        save_model: bool = True,
        log_batch_frequency: int | None = None,
        log_best_prefix: str = "best_",
        **_ignored: Any,
    ) -> None:
        super().__init__()
        self.run = current_run("WandbCallback")
        self.monitor = monitor
        self.verbose = verbose
        self.save_weights_only = save_weights_only
        self.log_weights = log_weights
        self.save_model = save_model
        self.log_batch_frequency = log_batch_frequency
        self.prefix = log_best_prefix
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"
        self.mode = mode
        self.best: float | None = None
        self.batches = 0

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {k: _number(v) for k, v in (logs or {}).items()}
        row["epoch"] = epoch
        if self.log_weights:
            for layer in self.model.layers:
                for weight in layer.weights:
                    values = keras.ops.convert_to_numpy(weight.value if hasattr(weight, "value") else weight)
                    row[f"parameters/{layer.name}.{weight.name}"] = Histogram(values.ravel())
        self.run.log(row)
        current = row.get(self.monitor)
        if isinstance(current, float) and self._better(current):
            self.best = current
            self.run.summary.update({f"{self.prefix}{self.monitor}": current, "best_epoch": epoch})
            if self.save_model:
                self._save_best(epoch)

    def _save_best(self, epoch: int) -> None:
        path = Path(self.run.dir) / ("model-best.weights.h5" if self.save_weights_only else "model-best.keras")
        if self.save_weights_only:
            self.model.save_weights(str(path))
        else:
            self.model.save(str(path))
        artifact = Artifact(f"model-{self.run.id}", type="model")
        artifact.add_file(str(path))
        self.run.log_artifact(artifact, aliases=["best", f"epoch_{epoch}"])

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches += 1
        if self.log_batch_frequency and self.batches % self.log_batch_frequency == 0:
            self.run.log({**{k: _number(v) for k, v in (logs or {}).items()}, "batch": self.batches})
