"""Helpers wandb code imports from ``wandb.util``."""

from __future__ import annotations

from .artifacts import make_name_safe as make_artifact_name_safe
from .naming import ID_ALPHABET, new_run_id


def generate_id(length: int = 8) -> str:
    """A random id of ``length`` characters from ``[a-z0-9]`` (a run id, by default)."""
    if length == 8:
        return new_run_id()
    import secrets

    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


__all__ = ["generate_id", "make_artifact_name_safe"]
