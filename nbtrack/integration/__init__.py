"""Framework integrations under the module paths wandb code imports them from
(``from nbtrack.integration.keras import WandbMetricsLogger``): each module loads its
framework when imported, and a missing framework is a ``UsageError`` naming the extra
to install (``pip install 'nbtrack[keras]'``...).

They log to the current run (``nbtrack.init()`` first, as with wandb), except the
Lightning logger and the Transformers callback, which start one when there is none.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import Error, UsageError

# wandb's integration modules nbtrack has no counterpart for
ABSENT = (
    "openai", "diffusers", "ultralytics", "langchain", "sb3", "catboost", "fastai", "sacred", "tensorflow",
    "metaflow", "prodigy", "kfp", "dspy", "weave", "huggingface", "yolov8", "cohere",
)  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in ABSENT:
        from ..compat import _NO_INTEGRATION, OutOfScope

        return OutOfScope(f"integration.{name}", _NO_INTEGRATION)
    raise AttributeError(f"module 'nbtrack.integration' has no attribute {name!r}")


def need(module: str, extra: str) -> Any:
    """Import a framework, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"this integration needs {module}: pip install 'nbtrack[{extra}]' ({exc})") from None


def current_run(what: str) -> Any:
    """The current run; an Error naming ``what`` when there is none."""
    from ..manager import manager

    run = manager.current
    if run is None:
        raise Error(f"{what}: call nbtrack.init() before training (as with wandb)")
    return run
