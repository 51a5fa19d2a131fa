"""Compact encoding of history rows.

Most rows hold the same few numeric keys step after step.  Such a row is stored as
its values packed with ``struct`` (8 bytes a number) plus the id of its *key set*,
the stored list of its keys and their types.  Encoding costs about a microsecond,
against several for JSON, which is what lets one writer thread keep up with
``log()``.  Rows holding strings, ``None``, lists or huge integers fall back to JSON.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Callable
from typing import Any

_CODES = {float: "d", int: "q", bool: "?"}

encode_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), default=str).encode


class KeySet:
    """The keys of packed rows and their value types: stored once in ``keysets``.

    ``id`` is the stored row's id, known once a write that needed it committed; rows
    are encoded before that, so the writer resolves the ids inside its transaction.
    """

    __slots__ = ("id", "spec", "struct", "types")

    def __init__(self, keys: tuple[str, ...], types: tuple[type, ...]) -> None:
        codes = "".join(_CODES[t] for t in types)
        self.types = types
        self.spec = json.dumps([list(keys), codes], separators=(",", ":"))
        self.struct = struct.Struct("<" + codes)
        self.id: int | None = None


class RowPacker:
    """Encodes rows for one store; caches key sets.  Pure computation: no I/O."""

    def __init__(self) -> None:
        # keys -> KeySet, or None when not packable.  Keyed by the keys alone: their
        # hashes are cached, while a tuple of types is not.
        self._specs: dict[tuple[str, ...], KeySet | None] = {}
        self._other: dict[tuple[tuple[str, ...], tuple[type, ...]], KeySet | None] = {}

    def encode(self, data: dict[str, Any]) -> tuple[KeySet | None, Any]:
        """``(keyset, blob)`` for a packable row, else ``(None, json_text)``."""
        values = data.values()
        keys = tuple(data)
        types = tuple(map(type, values))
        if keys in self._specs:
            spec = self._specs[keys]
        else:
            spec = self._specs[keys] = self._new_spec(keys, types)
        if spec is not None and spec.types != types:
            if (keys, types) in self._other:
                spec = self._other[(keys, types)]
            else:
                spec = self._other[(keys, types)] = self._new_spec(keys, types)
        if spec is not None:
            try:
                return spec, spec.struct.pack(*values)
            except struct.error:  # an int beyond 64 bits
                pass
        return None, encode_json(data)

    @staticmethod
    def _new_spec(keys: tuple[str, ...], types: tuple[type, ...]) -> KeySet | None:
        if not keys or any(t not in _CODES for t in types):
            return None
        return KeySet(keys, types)


class RowDecoder:
    """Decodes stored rows; loads key sets from a connection as they are met."""

    def __init__(self, con: sqlite3.Connection, object_hook: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self._con = con
        self._loads: Callable[[str], Any] = json.JSONDecoder(object_hook=object_hook).decode
        self._specs: dict[int, tuple[list[str], struct.Struct, str]] = {}
        self._pickers: dict[tuple[str, ...], dict[int, list[tuple[str, struct.Struct, int]]]] = {}

    def spec(self, kid: int) -> tuple[list[str], struct.Struct, str]:
        spec = self._specs.get(kid)
        if spec is None:
            (text,) = self._con.execute("SELECT spec FROM keysets WHERE id = ?", (kid,)).fetchone()
            keys, codes = json.loads(text)
            spec = self._specs[kid] = (keys, struct.Struct("<" + codes), codes)
        return spec

    def decode(self, kid: int | None, data: Any) -> dict[str, Any]:
        if kid is None:
            decoded: dict[str, Any] = self._loads(data)
            return decoded
        keys, st, _ = self.spec(kid)
        return dict(zip(keys, st.unpack(data)))

    def picker(self, kid: int, wanted: list[str]) -> list[tuple[str, struct.Struct, int]]:
        """For a key set, how to read only ``wanted`` keys: (key, one-value Struct, offset)."""
        cache = self._pickers.setdefault(tuple(wanted), {})
        pick = cache.get(kid)
        if pick is None:
            keys, _, codes = self.spec(kid)
            offsets, at = {}, 0
            for key, code in zip(keys, codes):
                offsets[key] = (code, at)
                at += struct.calcsize("<" + code)
            pick = cache[kid] = [(k, struct.Struct("<" + offsets[k][0]), offsets[k][1]) for k in wanted if k in offsets]
        return pick

    def decode_keys(self, kid: int | None, data: Any, wanted: list[str]) -> dict[str, Any]:
        """Only the ``wanted`` keys of a row (without decoding the rest of a packed row)."""
        if kid is None:
            values = self._loads(data)
            return {k: values[k] for k in wanted if k in values}
        return {k: st.unpack_from(data, at)[0] for k, st, at in self.picker(kid, wanted)}
