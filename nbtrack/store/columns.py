"""Columnar chunks of history: one key of a long run read with one query.

``history`` keeps one SQL row per step, which is what appending wants.  Reading one key
back from it means decoding every row.  So the writer also *seals* the rows of a run,
``CHUNK_ROWS`` steps at a time, into chunks:

* ``history_chunks``: per run and range of steps, the steps, timestamps, runtimes and
  notebook cells of its rows, as packed arrays;
* ``history_columns``: per chunk and key, the key's values as a packed array (8 bytes a
  value), with the positions in the chunk of the rows holding it when not all do.

A chunk is derived data: the rows stay the record, and a chunk can always be made again
from them.  Chunks of one run are contiguous and in step order; the rows after the last
chunk (the run's tail) are read from ``history``.  A key whose values in a chunk are not
all numbers (a string, an image, ``None``) gets no column there; the chunk names it in
``partial`` and readers take those steps from the rows.  Rewinding a run, or putting
older rows back into it, drops the chunks from that step on; they are sealed again.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import struct
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from .packing import RowDecoder

CHUNK_ROWS = 4096  # steps a chunk covers: a few hundred KB of columns, read in one go

_KINDS = {float: "d", int: "q", bool: "?"}
_INT64 = (-(2**63), 2**63 - 1)
_one = struct.Struct("<d")


class Series:
    """One key of one run: its values and the steps, timestamps and runtimes (and
    notebook cells, ``None`` where a row came from no cell) of the rows holding it.

    ``steps``, ``timestamps`` and ``runtimes`` are ``array.array`` (``numpy.asarray`` takes
    them without a copy); ``values`` too when every value has one type (``'d'`` floats,
    ``'q'`` integers), else a list (booleans, or numbers of mixed types).  Timestamps,
    runtimes and cells are read from the store when first used.
    """

    __slots__ = ("_load", "_times", "key", "steps", "values")

    def __init__(
        self,
        key: str,
        steps: array[int],
        values: Any,
        times: tuple[array[float], array[float], list[int | None] | None] | None,
        load: Callable[[], tuple[array[float], array[float], list[int | None] | None]] | None = None,
    ) -> None:
        self.key = key
        self.steps = steps
        self.values = values
        self._times = times
        self._load = load

    def _all_times(self) -> tuple[array[float], array[float], list[int | None] | None]:
        if self._times is None:
            assert self._load is not None
            self._times, self._load = self._load(), None
        return self._times

    timestamps = property(lambda self: self._all_times()[0], doc="Unix time of each point's row")
    runtimes = property(lambda self: self._all_times()[1], doc="Seconds since the run started, for each point")
    cells = property(lambda self: self._all_times()[2], doc="The notebook cell of each point's row, or None")

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        span = f"steps {self.steps[0]}..{self.steps[-1]}" if len(self.steps) else "empty"
        return f"<Series {self.key!r}: {len(self.steps):,} values, {span}>"

    def rows(self) -> list[dict[str, Any]]:
        """As ``rows(keys=[key])`` returns them: a dict per step."""
        key = self.key
        ts, rt, cells = self._all_times()
        if cells is None:
            return [
                {"_step": s, "_timestamp": t, "_runtime": r, key: v}
                for s, t, r, v in zip(self.steps, ts, rt, self.values)
            ]
        out = []
        for s, t, r, c, v in zip(self.steps, ts, rt, cells, self.values):
            row: dict[str, Any] = {"_step": s, "_timestamp": t, "_runtime": r}
            if c is not None:
                row["_cell"] = c
            row[key] = v
            out.append(row)
        return out

    def pick(self, positions: Sequence[int]) -> Series:
        """The points at ``positions`` (in order)."""
        ts, rt, cells = self._all_times()
        values = self.values
        picked_values: Any = (
            array(values.typecode, map(values.__getitem__, positions))
            if isinstance(values, array)
            else [values[i] for i in positions]
        )
        return Series(
            self.key,
            array("q", map(self.steps.__getitem__, positions)),
            picked_values,
            (
                array("d", map(ts.__getitem__, positions)),
                array("d", map(rt.__getitem__, positions)),
                None if cells is None else [cells[i] for i in positions],
            ),
        )


def spread(n: int, samples: int) -> list[int]:
    """Up to ``samples`` positions of ``n`` spread evenly, the first and the last in."""
    if n <= samples:
        return list(range(n))
    if samples == 1:
        return [n - 1]
    last = n - 1
    return sorted({round(i * last / (samples - 1)) for i in range(samples)})


def empty(key: str) -> Series:
    """A key with no points."""
    return _Builder(key).series()


def present(con: sqlite3.Connection) -> bool:
    """Whether the store has chunk tables (a store before schema 5, read where it cannot
    be upgraded, has not: its history is read from the rows)."""
    return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_chunks'").fetchone() is not None


# ---------------------------------------------------------------------- sealing
def last_sealed(con: sqlite3.Connection, pk: int) -> int:
    """The last step covered by a chunk of the run, or -1."""
    row = con.execute(
        "SELECT last_step FROM history_chunks WHERE run_pk = ? ORDER BY first_step DESC LIMIT 1", (pk,)
    ).fetchone()
    return -1 if row is None else int(row[0])


def seal(con: sqlite3.Connection, pk: int, *, final: bool) -> int:
    """Seal the run's unsealed rows into chunks of ``CHUNK_ROWS`` (call inside a write
    transaction); with ``final`` the last, shorter chunk too.  Returns rows sealed."""
    after = last_sealed(con, pk)
    decoder = RowDecoder(con)
    sealed = 0
    while True:
        rows = con.execute(
            "SELECT step, ts, runtime, cell, keyset, data FROM history WHERE run_pk = ? AND step > ?"
            " ORDER BY step LIMIT ?",
            (pk, after, CHUNK_ROWS),
        ).fetchall()
        if not rows or (len(rows) < CHUNK_ROWS and not final):
            return sealed
        _write_chunk(con, pk, rows, decoder)
        sealed += len(rows)
        after = rows[-1][0]
        if len(rows) < CHUNK_ROWS:
            return sealed


def unsealed(con: sqlite3.Connection, pk: int) -> int:
    """Rows of the run after its last chunk."""
    (n,) = con.execute(
        "SELECT COUNT(*) FROM history WHERE run_pk = ? AND step > ?", (pk, last_sealed(con, pk))
    ).fetchone()
    return int(n)


def invalidate(con: sqlite3.Connection, pk: int, from_step: int) -> None:
    """Drop the run's chunks holding any step >= ``from_step`` (call inside a write
    transaction); their rows are sealed again later."""
    first = con.execute(
        "SELECT MIN(first_step) FROM history_chunks WHERE run_pk = ? AND last_step >= ?", (pk, from_step)
    ).fetchone()[0]
    if first is None:
        return
    con.execute("DELETE FROM history_columns WHERE run_pk = ? AND first_step >= ?", (pk, first))
    con.execute("DELETE FROM history_chunks WHERE run_pk = ? AND first_step >= ?", (pk, first))


def _write_chunk(con: sqlite3.Connection, pk: int, rows: list[tuple[Any, ...]], decoder: RowDecoder) -> None:
    steps, ts, runtimes, cells, kids, datas = zip(*rows)
    n = len(rows)
    first = steps[0]
    # key -> [(positions or None for all rows, kind, raw values)]
    parts: dict[str, list[tuple[Any, str, bytes]]] = {}
    partial: set[str] = set()
    order: list[str] = []  # keys in order of first appearance
    kinds_seen = set(kids)
    if len(kinds_seen) == 1 and None not in kinds_seen:
        _columns_of_packed(decoder, kids[0], datas, None, parts, order)
    else:
        by_kid: dict[Any, list[int]] = {}
        for pos, kid in enumerate(kids):
            by_kid.setdefault(kid, []).append(pos)
        for kid, positions in by_kid.items():
            if kid is None:
                _columns_of_json(decoder, [(p, datas[p]) for p in positions], parts, partial, order)
            else:
                _columns_of_packed(decoder, kid, [datas[p] for p in positions], positions, parts, order)
    has_cells = any(c is not None for c in cells)
    con.execute(
        "INSERT OR REPLACE INTO history_chunks (run_pk, first_step, last_step, n, steps, ts, runtime, cells, partial)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            pk,
            first,
            steps[-1],
            n,
            array("q", steps).tobytes(),
            array("d", ts).tobytes(),
            array("d", runtimes).tobytes(),
            array("q", [-1 if c is None else c for c in cells]).tobytes() if has_cells else None,
            json.dumps(sorted(partial)) if partial else None,
        ),
    )
    out = []
    for key in order:
        if key in partial:
            continue
        out.append((pk, key, first, *_merge(parts[key], n)))
    con.executemany(
        "INSERT OR REPLACE INTO history_columns (run_pk, key, first_step, kind, count, idx, vals, kinds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        out,
    )


def _columns_of_packed(
    decoder: RowDecoder,
    kid: int,
    datas: Sequence[bytes],
    positions: list[int] | None,
    parts: dict[str, list[tuple[Any, str, bytes]]],
    order: list[str],
) -> None:
    keys, st, codes = decoder.spec(kid)
    joined = b"".join(datas)
    width = len(keys)
    if "?" not in codes:  # every value 8 bytes: one array, sliced by key
        flat = array("d")
        flat.frombytes(joined)
        for j, (key, code) in enumerate(zip(keys, codes)):
            if key not in parts:
                parts[key] = []
                order.append(key)
            parts[key].append((positions, code, flat[j::width].tobytes()))
        return
    columns = list(zip(*st.iter_unpack(joined)))
    for key, code, values in zip(keys, codes, columns):
        if key not in parts:
            parts[key] = []
            order.append(key)
        raw = array("q", values).tobytes() if code != "d" else array("d", values).tobytes()
        parts[key].append((positions, code, raw))


def _columns_of_json(
    decoder: RowDecoder,
    rows: list[tuple[int, str]],
    parts: dict[str, list[tuple[Any, str, bytes]]],
    partial: set[str],
    order: list[str],
) -> None:
    # rows that could not be packed: their numbers go into columns one by one, and a key
    # holding anything else in this chunk is read from the rows there
    points: dict[str, list[tuple[int, str, bytes]]] = {}
    for pos, text in rows:
        for key, value in decoder.decode(None, text).items():
            kind = _KINDS.get(type(value))
            if kind is None or (kind == "q" and not _INT64[0] <= value <= _INT64[1]):
                partial.add(key)
                continue
            if key not in parts and key not in points:
                order.append(key)
            raw = _one.pack(value) if kind == "d" else int(value).to_bytes(8, "little", signed=True)
            points.setdefault(key, []).append((pos, kind, raw))
    for key, found in points.items():
        parts.setdefault(key, [])
        for pos, kind, raw in found:
            parts[key].append(([pos], kind, raw))


def _merge(found: list[tuple[Any, str, bytes]], n: int) -> tuple[str, int, bytes | None, bytes, bytes | None]:
    """A key's parts in one column: ``(kind, count, idx, vals, kinds)``."""
    if len(found) == 1 and found[0][0] is None:
        _, kind, raw = found[0]
        return kind, n, None, raw, None
    points: list[tuple[int, str, bytes]] = []
    for positions, kind, raw in found:
        where = range(n) if positions is None else positions
        points.extend((p, kind, raw[8 * i : 8 * i + 8]) for i, p in enumerate(where))
    points.sort(key=lambda p: p[0])
    kinds = {p[1] for p in points}
    kind = kinds.pop() if len(kinds) == 1 else "m"
    idx = None if len(points) == n else array("I", [p[0] for p in points]).tobytes()
    vals = b"".join(p[2] for p in points)
    per_point = "".join(p[1] for p in points).encode("ascii") if kind == "m" else None
    return kind, len(points), idx, vals, per_point


# ---------------------------------------------------------------------- reading
def read(
    con: sqlite3.Connection,
    pks: Sequence[int],
    keys: Sequence[str],
    *,
    min_step: int | None = None,
    max_step: int | None = None,
    object_hook: Any = None,
    owner: Any = None,
) -> dict[int, dict[str, Series]]:
    """``keys`` of each run in ``pks``: run key -> key -> ``Series`` (a key never logged
    gives an empty one).  Chunks are read with two queries for all the runs (their
    timestamps with a third, when first used); the steps they do not cover (a run's
    tail, a key with non-numbers) come from the rows.  ``owner`` (what holds ``con``
    open: an ``Api``) is kept alive by the series until their timestamps are read."""
    from . import reader  # reader uses this module; imported here to keep the import one-way

    lo = -1 if min_step is None else min_step - 1
    hi = 2**63 - 1 if max_step is None else max_step
    pks = list(dict.fromkeys(pks))
    keys = list(dict.fromkeys(keys))
    chunks: dict[int, list[tuple[Any, ...]]] = {pk: [] for pk in pks}
    columns: dict[tuple[int, int, str], tuple[Any, ...]] = {}
    # a store before chunks (read where it cannot be upgraded) has none: all from the rows
    for start in range(0, len(pks) if present(con) else 0, 400):
        some = pks[start : start + 400]
        marks = ",".join("?" * len(some))
        for run_pk, first, last, hid, steps, partial in con.execute(
            "SELECT run_pk, first_step, last_step, id, steps, partial FROM history_chunks"
            f" WHERE run_pk IN ({marks}) AND last_step > ? AND first_step <= ? ORDER BY run_pk, first_step",
            (*some, lo, hi),
        ):
            chunks[run_pk].append((first, last, hid, steps, set(json.loads(partial)) if partial else ()))
        key_marks = ",".join("?" * len(keys))
        for row in con.execute(
            "SELECT run_pk, first_step, key, kind, idx, vals, kinds FROM history_columns"
            f" WHERE run_pk IN ({marks}) AND key IN ({key_marks})",
            (*some, *keys),
        ):
            columns[(row[0], row[1], row[2])] = row[3:]
    out: dict[int, dict[str, Series]] = {}
    for pk in pks:
        mine = chunks[pk]
        covered = mine[-1][1] if mine else lo
        per_key: dict[str, Series] = {}
        for key in keys:
            builder = _Builder(key, con, owner)
            for first, last, hid, steps, partial in mine:
                if key in partial:
                    rows = reader.history(con, pk, [key], after_step=first - 1, max_step=last, object_hook=object_hook)
                    builder.add_rows(rows)
                    continue
                column = columns.get((pk, first, key))
                if column is not None:
                    builder.add_chunk(hid, steps, *column)
            if covered < hi:
                after = max(covered, lo)
                builder.add_rows(
                    reader.history(con, pk, [key], after_step=after, max_step=max_step, object_hook=object_hook)
                )
            bounded = mine and (min_step is not None or max_step is not None)
            per_key[key] = builder.series(lo, hi) if bounded else builder.series()
        out[pk] = per_key
    return out


_TimesPart = tuple[Any, ...]  # ("chunk", id, positions | None) or ("rows", ts, runtimes, cells)


class _Builder:
    """Collects a key's points chunk by chunk, then rows, into a ``Series``; timestamps,
    runtimes and cells are read when the series first needs them."""

    def __init__(self, key: str, con: sqlite3.Connection | None = None, owner: Any = None) -> None:
        self.key = key
        self.con = con
        self.owner = owner  # keeps the connection's holder alive until the times are loaded
        self.steps = array("q")
        self.values: Any = None  # array while one typecode, else list
        self.times: list[_TimesPart] = []
        self.count = 0

    def _values(self, kind: str, vals: bytes, kinds: bytes | None) -> Any:
        if kind == "d" or kind == "q":
            got = array(kind)
            got.frombytes(vals)
            return got
        if kind == "?":
            flags = array("q")
            flags.frombytes(vals)
            return [bool(v) for v in flags]
        out: list[Any] = []
        codes = (kinds or b"").decode("ascii")
        for i, code in enumerate(codes):
            chunk = vals[8 * i : 8 * i + 8]
            if code == "d":
                out.append(_one.unpack(chunk)[0])
            else:
                number = int.from_bytes(chunk, "little", signed=True)
                out.append(bool(number) if code == "?" else number)
        return out

    def _extend_values(self, values: Any) -> None:
        if self.values is None:
            self.values = values if isinstance(values, array) else list(values)
        elif isinstance(self.values, array) and isinstance(values, array) and values.typecode == self.values.typecode:
            self.values.extend(values)
        else:
            if isinstance(self.values, array):
                self.values = self.values.tolist()
            self.values.extend(values)

    def add_chunk(self, hid: int, steps: bytes, kind: str, idx: bytes | None, vals: bytes, kinds: bytes | None) -> None:
        """A chunk's column: its steps (all the chunk's, or those at ``idx``) and values."""
        self._extend_values(self._values(kind, vals, kinds))
        if idx is None:
            self.steps.frombytes(steps)
            self.times.append(("chunk", hid, None))
            self.count += len(steps) // 8
            return
        where = array("I")
        where.frombytes(idx)
        every = array("q")
        every.frombytes(steps)
        self.steps.extend(map(every.__getitem__, where))
        self.times.append(("chunk", hid, where))
        self.count += len(where)

    def add_points(
        self, steps: bytes, ts: bytes, runtime: bytes, cells: bytes | None, kind: str, vals: bytes, kinds: bytes | None
    ) -> None:
        """Points read one by one (a sampled read), with their times."""
        self._extend_values(self._values(kind, vals, kinds))
        self.steps.frombytes(steps)
        stamps, runtimes = array("d"), array("d")
        stamps.frombytes(ts)
        runtimes.frombytes(runtime)
        self.times.append(("rows", stamps, runtimes, _cells(cells) if cells is not None else None))
        self.count += len(steps) // 8

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        key = self.key
        rows = [r for r in rows if key in r]
        if not rows:
            return
        self.steps.extend(r["_step"] for r in rows)
        cells = [r.get("_cell") for r in rows]
        self.times.append(
            (
                "rows",
                array("d", [r["_timestamp"] for r in rows]),
                array("d", [r["_runtime"] for r in rows]),
                cells if any(c is not None for c in cells) else None,
            )
        )
        values = [r[key] for r in rows]
        kinds = {type(v) for v in values}
        if kinds == {float}:
            self._extend_values(array("d", values))
        elif kinds == {int} and all(_INT64[0] <= v <= _INT64[1] for v in values):
            self._extend_values(array("q", values))
        else:
            self._extend_values(values)
        self.count += len(rows)

    def load_times(self) -> tuple[array[float], array[float], list[int | None] | None]:
        ids = [part[1] for part in self.times if part[0] == "chunk"]
        blobs: dict[int, tuple[bytes, bytes, bytes | None]] = {}
        for start in range(0, len(ids), 400):
            some = ids[start : start + 400]
            assert self.con is not None
            for hid, ts, runtime, cells in self.con.execute(
                f"SELECT id, ts, runtime, cells FROM history_chunks WHERE id IN ({','.join('?' * len(some))})", some
            ):
                blobs[hid] = (ts, runtime, cells)
        stamps, runtimes = array("d"), array("d")
        cells_out: list[int | None] | None = None
        done = 0
        for part in self.times:
            if part[0] == "chunk":
                ts, runtime, cells = blobs[part[1]]
                where = part[2]
                if where is None:
                    stamps.frombytes(ts)
                    runtimes.frombytes(runtime)
                    n = len(ts) // 8
                    mine = _cells(cells) if cells is not None else None
                else:
                    every_ts, every_rt = array("d"), array("d")
                    every_ts.frombytes(ts)
                    every_rt.frombytes(runtime)
                    stamps.extend(map(every_ts.__getitem__, where))
                    runtimes.extend(map(every_rt.__getitem__, where))
                    n = len(where)
                    if cells is None:
                        mine = None
                    else:
                        every_cell = _cells(cells)
                        mine = [every_cell[i] for i in where]
            else:
                _, ts_part, rt_part, mine = part
                stamps.extend(ts_part)
                runtimes.extend(rt_part)
                n = len(ts_part)
            if mine is not None and cells_out is None:
                cells_out = [None] * done
            if cells_out is not None:
                cells_out.extend([None] * n if mine is None else mine)
            done += n
        return stamps, runtimes, cells_out

    def series(self, lo: int | None = None, hi: int | None = None) -> Series:
        values = self.values if self.values is not None else array("d")
        if all(part[0] == "rows" for part in self.times):
            out = Series(self.key, self.steps, values, self.load_times())
        else:
            out = Series(self.key, self.steps, values, None, self.load_times)
        if lo is None or hi is None:
            return out
        # chunks at the edges hold steps outside the asked range: cut them off
        start = bisect.bisect_right(self.steps, lo)
        end = bisect.bisect_right(self.steps, hi)
        if start == 0 and end == len(self.steps):
            return out
        return out.pick(range(start, end))


def _cells(raw: bytes) -> list[int | None]:
    every = array("q")
    every.frombytes(raw)
    return [None if c < 0 else c for c in every]


def read_sampled(con: sqlite3.Connection, pk: int, key: str, samples: int, object_hook: Any = None) -> Series | None:
    """Up to ``samples`` points of one key spread evenly over the run (the first and the
    last always in), reading from the chunks only the values returned (one blob read a
    value).  None when a plain read is as cheap (few points) or a chunk holds the key as
    non-numbers."""
    from . import reader

    if not present(con):
        return None
    chunks = con.execute(
        "SELECT h.id, h.last_step, h.cells IS NOT NULL, h.partial, c.id, c.count, c.kind, c.idx IS NOT NULL"
        " FROM history_chunks h LEFT JOIN history_columns c"
        " ON c.run_pk = h.run_pk AND c.key = ? AND c.first_step = h.first_step"
        " WHERE h.run_pk = ? ORDER BY h.first_step",
        (key, pk),
    ).fetchall()
    blobopen = getattr(con, "blobopen", None)  # Python 3.11+; before, a whole read, then picked
    if blobopen is None or not chunks or any(c[3] is not None and key in json.loads(c[3]) for c in chunks):
        return None
    tail = _Builder(key)
    tail.add_rows(reader.history(con, pk, [key], after_step=chunks[-1][1], object_hook=object_hook))
    in_chunks = sum(c[5] or 0 for c in chunks)
    total = in_chunks + tail.count
    if total <= samples:
        return None
    picks = spread(total, samples)
    out = _Builder(key)
    base = 0
    at = 0  # the first pick not taken yet
    for hid, _last, has_cells, _partial, cid, count, kind, has_idx in chunks:
        count = count or 0
        mine = []
        while at < len(picks) and picks[at] < base + count:
            mine.append(picks[at] - base)
            at += 1
        base += count
        if not mine:
            continue
        with blobopen("history_columns", "vals", cid, readonly=True) as vals:
            raw = [_read_at(vals, 8 * i, 8) for i in mine]
        if kind == "m":
            with blobopen("history_columns", "kinds", cid, readonly=True) as kinds_blob:
                kinds = b"".join(_read_at(kinds_blob, i, 1) for i in mine)
        else:
            kinds = None
        if has_idx:
            with blobopen("history_columns", "idx", cid, readonly=True) as idx:
                positions = [int.from_bytes(_read_at(idx, 4 * i, 4), "little") for i in mine]
        else:
            positions = mine
        columns = []
        for name in ("steps", "ts", "runtime", *(("cells",) if has_cells else ())):
            with blobopen("history_chunks", name, hid, readonly=True) as blob:
                columns.append(b"".join(_read_at(blob, 8 * p, 8) for p in positions))
        out.add_points(
            columns[0], columns[1], columns[2], columns[3] if has_cells else None, kind, b"".join(raw), kinds
        )
    tail_picks = [p - in_chunks for p in picks[at:]]
    if tail_picks:
        rows = tail.series().pick(tail_picks).rows()
        out.add_rows(rows)
    return out.series()


def _read_at(blob: Any, offset: int, size: int) -> bytes:
    blob.seek(offset)
    data: bytes = blob.read(size)
    return data
