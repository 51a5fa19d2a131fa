"""``wandb.keras``'s names: see ``nbtrack.integration.keras``."""

from .integration.keras import WandbCallback, WandbEvalCallback, WandbMetricsLogger, WandbModelCheckpoint

__all__ = ["WandbCallback", "WandbEvalCallback", "WandbMetricsLogger", "WandbModelCheckpoint"]
