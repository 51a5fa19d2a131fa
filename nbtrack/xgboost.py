"""``wandb.xgboost``'s names: see ``nbtrack.integration.xgboost``."""

from .integration.xgboost import WandbCallback

__all__ = ["WandbCallback"]
