"""The logic behind the magics, kept apart from IPython's ``Magics`` plumbing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..hyperparams import InvalidYaml, load_yaml

# flag dest -> init() parameter
INIT_FLAGS = (
    "project",
    "entity",
    "name",
    "id",
    "notes",
    "tags",
    "group",
    "job_type",
    "mode",
    "dir",
    "reinit",
    "resume",
    "resume_from",
    "fork_from",
    "save_code",
    "allow_val_change",
    "sync_tensorboard",
    "monitor_gym",
    "force",
    "anonymous",
)


def parse_value(text: str, key: str = "value") -> Any:
    """A ``key=value`` value as a YAML scalar: ``0.01`` is a float, ``[64,32]`` a list;
    text that is not valid YAML stays text."""
    if text == "":
        return ""
    try:
        return load_yaml(text, f"--config {key}")
    except InvalidYaml:
        return text


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``['lr=0.01', 'optim.beta=0.9']`` -> ``{'lr': 0.01, 'optim': {'beta': 0.9}}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag}: expected key=value pairs (values are read as YAML scalars), got {item!r}")
        target = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise UsageError(f"{flag}: {key!r} nests under {part!r}, which already holds a value")
            target = nested
        if isinstance(target.get(leaf), dict):
            raise UsageError(f"{flag}: {key!r} is given a value and nested keys; use one or the other")
        target[leaf] = parse_value(raw, key.strip())
    return out


def config_argument(items: list[str] | None) -> Any:
    """``--config`` is either one YAML file path or ``key=value`` pairs."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        path = Path(items[0]).expanduser()
        if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
            return str(path)
        raise UsageError(
            f"--config: {items[0]!r} is neither an existing YAML file nor key=value pairs; "
            "write --config path/to/config.yaml or --config lr=0.01 batch=64"
        )
    return parse_pairs(items, "--config")


def init_kwargs(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """The ``init()`` keyword arguments for parsed ``%track_init`` flags."""
    kw: dict[str, Any] = {name: getattr(args, name) for name in INIT_FLAGS if getattr(args, name, None) is not None}
    if "reinit" in kw or "resume" in kw:
        for name in ("reinit", "resume"):
            if kw.get(name) in ("true", "false"):
                kw[name] = kw[name] == "true"
    config = config_argument(args.config)
    if config is not None:
        kw["config"] = config
    if args.config_include:
        kw["config_include_keys"] = list(args.config_include)
    if args.config_exclude:
        kw["config_exclude_keys"] = list(args.config_exclude)
    settings = {k: v for k, v in defaults.items() if v is not None}
    if settings:
        kw["settings"] = settings
    return kw
