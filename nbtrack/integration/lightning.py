"""A Lightning logger with the interface of Lightning's ``WandbLogger``, writing to nbtrack.

``Trainer(logger=nbtrack.integration.lightning.WandbLogger(project="p", log_model=True))``:
hyper-parameters go to the run's config, metrics are logged with the trainer's step
(``trainer/global_step``, the x axis of every metric), checkpoints become versions of the
artifact ``model-<run id>`` (``log_model=True``: the best and last at the end;
``"all"``: each one as it is saved; aliases ``latest`` and ``best``), and
``log_image``, ``log_table`` and ``log_text`` log media.  It starts a run when none is
active (or uses ``experiment=`` a run).
"""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from ..artifacts import Artifact
from ..media import Image, Table
from . import need

need("lightning", "lightning")
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

STEP = "trainer/global_step"


def _flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(params, Namespace):
        params = vars(params)
    out: dict[str, Any] = {}
    for key, value in dict(params).items():
        if isinstance(value, (dict, Namespace)):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
    return out


class WandbLogger(Logger):
    """Lightning's ``WandbLogger`` arguments: ``name``, ``save_dir``, ``version`` (the
    run id), ``offline``, ``dir``, ``id``, ``anonymous``, ``project``, ``log_model``,
    ``experiment``, ``prefix``, ``checkpoint_name`` and any ``init()`` argument."""

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | str = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._init_args = {
            "name": name, "project": project, "id": id or version, "dir": dir or save_dir,
            "mode": "offline" if offline else kwargs.pop("mode", None),
            "anonymous": "allow" if anonymous else None, **kwargs,
        }  # fmt: skip
        self._save_dir = str(dir or save_dir)
        self._experiment = experiment
        self._log_model = log_model
        self._prefix = prefix
        self._checkpoint_name = checkpoint_name
        self._checkpoint_callback: Any = None
        self._logged: dict[str, float] = {}  # checkpoint path -> its mtime when logged

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The nbtrack run (the current one, else one started with this logger's arguments)."""
        if self._experiment is None:
            from .. import api
            from ..manager import manager

            current = manager.current
            if current is not None and not current.finished and self._init_args["id"] in (None, current.id):
                self._experiment = current
            else:
                self._experiment = api.init(**{k: v for k, v in self._init_args.items() if v is not None})
            self._experiment.define_metric(STEP)
            self._experiment.define_metric("*", step_metric=STEP, step_sync=True)
        return self._experiment

    @property
    def name(self) -> str | None:
        return self._experiment.project if self._experiment is not None else self._init_args["project"]

    @property
    def version(self) -> str | None:
        return self._experiment.id if self._experiment is not None else self._init_args["id"]

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        self.experiment.config.update(_flatten(params), allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {
            f"{self._prefix}{k}" if self._prefix else k: (v.item() if hasattr(v, "item") else v)
            for k, v in metrics.items()
        }
        if step is not None:
            row[STEP] = step
        self.experiment.log(row)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        self.log_metrics({key: Table(columns=columns, data=data, dataframe=dataframe)}, step)  # type: ignore[dict-item]

    @rank_zero_only
    def log_text(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[str]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        self.log_table(key, columns, data, dataframe, step)

    @rank_zero_only
    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: Any) -> None:
        captions = kwargs.get("caption") or [None] * len(images)
        self.log_metrics(
            {key: [Image(img, caption=c) for img, c in zip(images, captions, strict=True)]},  # type: ignore[dict-item]
            step,
        )

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._checkpoint_callback = checkpoint_callback
        if self._log_model == "all":
            self._log_checkpoints(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status != "success":
            return
        if self._log_model and self._checkpoint_callback is not None:
            self._log_checkpoints(self._checkpoint_callback)

    def _log_checkpoints(self, callback: Any) -> None:
        best = getattr(callback, "best_model_path", "") or ""
        paths = {p for p in (best, getattr(callback, "last_model_path", "") or "") if p}
        paths |= set(getattr(callback, "best_k_models", {}) or {})
        for path in sorted(paths, key=lambda p: Path(p).stat().st_mtime if Path(p).exists() else 0):
            file = Path(path)
            if not file.exists() or self._logged.get(path) == file.stat().st_mtime:
                continue
            self._logged[path] = file.stat().st_mtime
            artifact = Artifact(
                self._checkpoint_name or f"model-{self.experiment.id}",
                type="model",
                metadata={"score": _score(callback, path), "original_filename": file.name},
            )
            artifact.add_file(str(file), name="model.ckpt")
            aliases = ["latest"] + (["best"] if path == best else [])
            self.experiment.log_artifact(artifact, aliases=aliases)


def _score(callback: Any, path: str) -> Any:
    score: Any = (getattr(callback, "best_k_models", {}) or {}).get(path)
    return score.item() if hasattr(score, "item") else score
