"""Turning user values into JSON-friendly ones, for config and for logged rows."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import numbers
import pathlib
from typing import Any

MAX_CONFIG_VALUE_BYTES = 10 * 1024 * 1024


def _is_array_like(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith(("numpy", "torch", "jax", "tensorflow")) and hasattr(value, "tolist")


def scalar(value: Any) -> Any:
    """A numpy/torch/jax scalar or one-element array as a plain Python value, else ``value``."""
    item = getattr(value, "item", None)
    if item is None or not _is_array_like(value):
        return value
    size = getattr(value, "size", None)
    if callable(size):  # torch: size() is a method, numel() the count
        size = value.numel()
    if size == 1 and getattr(value, "ndim", 0) == 0:
        return item()
    return value


def json_friendly(value: Any) -> Any:
    """Convert ``value`` recursively into something ``json.dumps`` accepts.

    numpy and torch scalars and arrays, dates and times, enums, sets, dataclasses,
    paths and tuples are converted; anything else unknown becomes its ``str``.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return json_friendly(value.value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_friendly(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_friendly(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [json_friendly(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_friendly(dataclasses.asdict(value))
    if _is_array_like(value):
        return json_friendly(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return str(value)


def encoded_size(value: Any) -> int:
    """Bytes ``value`` takes as JSON (non-finite floats allowed, as in the store)."""
    return len(json.dumps(value, allow_nan=True).encode("utf-8"))
