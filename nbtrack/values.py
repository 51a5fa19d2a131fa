"""Turning user values into JSON-friendly ones, for config and for logged rows."""

from __future__ import annotations

import datetime
import enum
import json
import numbers
import pathlib
from typing import Any

MAX_CONFIG_VALUE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 100  # levels of nesting a config or logged value may have
MAX_VALUES = 1_000_000  # values one config value may expand to (shared parts counted each time)


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


class TooComplex(ValueError):
    """A value nested too deeply, holding itself, or expanding to too many values."""


def json_friendly(value: Any) -> Any:
    """Convert ``value`` recursively into something ``json.dumps`` accepts.

    numpy and torch scalars and arrays, dates and times, enums, sets, dataclasses,
    paths and tuples are converted; anything else unknown becomes its ``str``.

    Raises
    ------
    TooComplex
        If the value nests deeper than ``MAX_DEPTH`` levels, contains itself, or
        expands to more than ``MAX_VALUES`` values (a structure sharing its parts,
        such as a YAML alias bomb, counts each share).
    """
    return _Converter().convert(value, 0)


class _Converter:
    def __init__(self) -> None:
        self.count = 0
        self.path: set[int] = set()  # ids of the containers being converted: a cycle check

    def convert(self, value: Any, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise TooComplex(f"expands to more than {MAX_VALUES:,} values")
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return self.container(value, depth)
        if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, datetime.timedelta):
            return value.total_seconds()
        if isinstance(value, pathlib.PurePath):
            return str(value)
        if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
            import dataclasses  # the user's module imported it already

            return self.convert(dataclasses.asdict(value), depth)
        if _is_array_like(value):
            return self.convert(value.tolist(), depth)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, type) or callable(value):
            return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
        return str(value)

    def container(self, value: Any, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise TooComplex(f"is nested more than {MAX_DEPTH} levels deep")
        ident = id(value)
        if ident in self.path:
            raise TooComplex("contains itself (a cycle)")
        self.path.add(ident)
        try:
            if isinstance(value, dict):
                return {str(k): self.convert(v, depth + 1) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [self.convert(v, depth + 1) for v in value]
            items = [self.convert(v, depth + 1) for v in value]
            try:
                return sorted(items)
            except TypeError:
                return sorted(items, key=repr)
        finally:
            self.path.discard(ident)


def check_expansion(value: Any) -> None:
    """Raise ``TooComplex`` if ``value`` (as loaded from YAML, say: containers may be
    shared) nests deeper than ``MAX_DEPTH``, contains itself, or expands to more than
    ``MAX_VALUES`` values.  Linear in the distinct containers, so a bomb is caught at once."""
    sizes: dict[int, int] = {}
    path: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        ident = id(node)
        known = sizes.get(ident)
        if known is not None:
            return known
        if ident in path:
            raise TooComplex("contains itself (a cycle)")
        if depth >= MAX_DEPTH:
            raise TooComplex(f"is nested more than {MAX_DEPTH} levels deep")
        path.add(ident)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise TooComplex(f"expands to more than {MAX_VALUES:,} values")
        path.discard(ident)
        sizes[ident] = total
        return total

    size(value, 0)


def encoded_size(value: Any) -> int:
    """Bytes ``value`` takes as JSON (non-finite floats allowed, as in the store)."""
    return len(json.dumps(value, allow_nan=True).encode("utf-8"))
