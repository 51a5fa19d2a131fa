"""``wandb.lightgbm``'s names: see ``nbtrack.integration.lightgbm``."""

from .integration.lightgbm import log_summary, wandb_callback

__all__ = ["log_summary", "wandb_callback"]
