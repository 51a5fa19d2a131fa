"""A Hugging Face Transformers ``TrainerCallback`` that behaves as the wandb one.

``Trainer(..., args=TrainingArguments(..., report_to="none"), callbacks=[WandbCallback()])``:
at the start of training the arguments and the model's config go to the run's config
(a run is started when none is active: project from ``NBTRACK_PROJECT``/``WANDB_PROJECT``,
else ``huggingface``, named after ``args.run_name``); each log the Trainer makes is
logged with ``train/``, ``eval/`` or ``test/`` prefixes and ``train/global_step``, the
x axis of every metric; with ``log_model="end"`` (or ``WANDB_LOG_MODEL=end``) the
final model is saved and logged as the artifact ``model-<run name>``, with
``"checkpoint"`` each checkpoint folder the Trainer saves.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..artifacts import Artifact
from ..errors import UsageError
from . import need

need("transformers", "transformers")
from transformers import TrainerCallback  # noqa: E402

STEP = "train/global_step"
LOG_MODEL = ("end", "checkpoint", "false", "")


def _rewrite(logs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in logs.items():
        for prefix in ("eval_", "test_"):
            if key.startswith(prefix):
                out[f"{prefix[:-1]}/{key[len(prefix) :]}"] = value
                break
        else:
            out[f"train/{key}"] = value
    return out


class WandbCallback(TrainerCallback):
    def __init__(self, log_model: str | None = None) -> None:
        chosen = (
            log_model
            if log_model is not None
            else os.environ.get("NBTRACK_LOG_MODEL", os.environ.get("WANDB_LOG_MODEL", "false"))
        ).lower()
        if chosen in ("true", "1"):
            chosen = "end"
        if chosen not in LOG_MODEL:
            raise UsageError(f"WandbCallback: log_model must be 'end', 'checkpoint' or 'false', got {log_model!r}")
        self.log_model = chosen
        self.run: Any = None

    def setup(self, args: Any, state: Any, model: Any) -> None:
        from .. import api
        from ..manager import manager

        if not state.is_world_process_zero:
            return
        run = manager.current
        if run is None or run.finished:
            project = os.environ.get("NBTRACK_PROJECT") or os.environ.get("WANDB_PROJECT") or "huggingface"
            run = api.init(project=project, name=getattr(args, "run_name", None) or None)
        self.run = run
        config = {k: v for k, v in args.to_dict().items() if isinstance(v, (int, float, str, bool, type(None)))}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config.update(
                {
                    k: v
                    for k, v in model_config.to_dict().items()
                    if isinstance(v, (int, float, str, bool, type(None))) and k not in config
                }
            )
        run.config.update(config, allow_val_change=True)
        run.define_metric(STEP)
        run.define_metric("*", step_metric=STEP, step_sync=True)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.run is None:
            self.setup(args, state, model)

    def on_log(
        self, args: Any, state: Any, control: Any, model: Any = None, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self.run is None:
            self.setup(args, state, model)
        if self.run is None or not state.is_world_process_zero:
            return
        row = {k: v for k, v in _rewrite(logs or {}).items() if isinstance(v, (int, float))}
        row[STEP] = state.global_step
        self.run.log(row)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.log_model != "checkpoint" or self.run is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            artifact = Artifact(f"checkpoint-{self.run.id}", type="model", metadata={"global_step": state.global_step})
            artifact.add_dir(str(folder))
            self.run.log_artifact(artifact, aliases=[f"checkpoint-{state.global_step}"])

    def on_train_end(
        self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None, **kwargs: Any
    ) -> None:
        if self.log_model != "end" or self.run is None or model is None or not state.is_world_process_zero:
            return
        with tempfile.TemporaryDirectory(prefix="nbtrack-model-") as folder:
            model.save_pretrained(folder)
            if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                processing_class.save_pretrained(folder)
            from ..artifacts import make_name_safe

            artifact = Artifact(
                make_name_safe(f"model-{self.run.name}"), type="model", metadata={"global_step": state.global_step}
            )
            artifact.add_dir(folder)
            self.run.log_artifact(artifact)
