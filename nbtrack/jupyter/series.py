"""Bounded series for the panel: min/max buckets that keep every spike visible.

A series holds at most ``cap`` points however many are added.  Points fall into
buckets of ``width`` consecutive samples; a closed bucket keeps only its lowest and
highest point.  When there are too many closed buckets, neighbours merge and the width
doubles, so the global extremes always survive.  The open bucket and the newest point
(the "tail", at most 3 points) count against the cap too.  ``delta()`` says what the
front end lacks since the last call: closed points to append, or all of them after a
merge (``reset``), and always the current tail, which replaces the previous one.
"""

from __future__ import annotations

import functools
import operator
import sys
from typing import Any

from ..page import ordered

TAIL_MAX = 3  # open bucket (its lowest and highest point) plus the newest point
_X, _Y = operator.itemgetter(0), operator.itemgetter(1)


_np: Any = None


def numpy_or_none() -> Any:
    """numpy, imported when first asked for (the panel's first burst of rows); None where
    it is not installed.  ``Series.extend`` is given numpy arrays, so it is there."""
    global _np
    if _np is None:
        try:
            import numpy as found
        except ImportError:
            found = False  # type: ignore[assignment]
        _np = found
    return _np or None


class Series:
    __slots__ = ("cap", "closed", "count", "last", "merged", "open", "open_count", "sent", "sent_tail", "width")

    def __init__(self, cap: int = 1000) -> None:
        self.cap = max(8, cap)
        self.width = 1
        self.closed: list[tuple[tuple[float, float], ...]] = []  # each: 1 or 2 (x, y) points
        self.open: list[tuple[float, float]] = []  # [min point, max point] of the open bucket
        self.open_count = 0
        self.sent = 0  # closed buckets the front end has
        self.merged = False
        self.count = 0
        self.last: tuple[float, float] | None = None  # the newest point is always shown
        self.sent_tail: list[tuple[float, float]] = []  # the tail the front end holds

    def add(self, x: float, y: float) -> None:
        self.count += 1
        point = (x, y)
        self.last = point
        if not self.open:
            self.open = [point, point]
        else:
            lo, hi = self.open
            if y < lo[1]:
                self.open[0] = point
            if y > hi[1]:
                self.open[1] = point
        self.open_count += 1
        if self.open_count >= self.width:
            self._close()

    def extend(self, xs: Any, ys: Any) -> None:
        """Add many points at once: ``xs`` and ``ys`` are numpy arrays of one length,
        ``xs`` increasing (steps) and ``ys`` finite.  The same buckets ``add()`` would
        make while they fit; when a batch would overflow the cap, the closed buckets are
        merged first, so the batch is bucketed once at the wider width (a burst of
        50,000 rows costs a few array operations, not 50,000 calls)."""
        n = len(ys)
        if not n:
            return
        np = numpy_or_none()
        self.count += n
        self.last = (xs[-1].item(), ys[-1].item())
        i = 0
        if self.open_count:  # fill the open bucket first
            i = min(n, self.width - self.open_count)
            self._absorb(xs, ys, 0, i)
            if self.open_count >= self.width:
                self._close()
        limit = (self.cap - TAIL_MAX) // 2  # closed buckets held before a merge
        if not self._count_closed() and not self.open_count:
            while n - i > limit * self.width:  # nothing to merge yet: start at the width the batch needs
                self.width *= 2
        while n - i >= self.width:
            while self._count_closed() + (n - i) // self.width > limit and self._count_closed() > 1:
                self._merge()
            b = min((n - i) // self.width, max(1, limit - self._count_closed()))
            if not b:  # merged to a width wider than what is left
                break
            w = self.width
            end = i + b * w
            block = ys[i:end].reshape(b, w)
            base = _starts(i, end, w)
            lo, hi = base + block.argmin(axis=1), base + block.argmax(axis=1)  # first of equals, as add()
            self._add_buckets(np, xs, ys, np.minimum(lo, hi), np.maximum(lo, hi))
            i = end
            if 2 * self._count_closed() + TAIL_MAX > self.cap:
                self._merge()
        if i < n:
            self._absorb(xs, ys, i, n)

    def _absorb(self, xs: Any, ys: Any, i: int, j: int) -> None:
        """Points ``i:j`` of the arrays into the open bucket (not closing it)."""
        part = ys[i:j]
        lo, hi = i + int(part.argmin()), i + int(part.argmax())
        low, high = (xs[lo].item(), ys[lo].item()), (xs[hi].item(), ys[hi].item())
        if not self.open:
            self.open = [low, high]
        else:
            if low[1] < self.open[0][1]:
                self.open[0] = low
            if high[1] > self.open[1][1]:
                self.open[1] = high
        self.open_count += j - i

    def _close(self) -> None:
        lo, hi = self.open
        self._keep(ordered(lo, hi))
        self.open, self.open_count = [], 0
        if 2 * self._count_closed() + TAIL_MAX > self.cap:
            self._merge()

    def _merge(self) -> None:
        """Halve the closed buckets: the width doubles and views get the whole series anew."""
        self._pair_closed()
        self.width *= 2
        self.merged = True
        self.sent = 0

    def _pair_closed(self) -> None:
        """Neighbouring closed buckets in pairs: each pair's first lowest and first highest
        point, in x order; an odd last bucket is kept as it is."""
        merged = []
        for i in range(0, len(self.closed) - 1, 2):
            pts = self.closed[i] + self.closed[i + 1]
            lo = min(pts, key=_Y)
            hi = max(pts, key=_Y)
            merged.append(ordered(lo, hi))
        if len(self.closed) % 2:
            merged.append(self.closed[-1])
        self.closed = merged

    # ------------------------------------------------ where closed buckets are kept
    # (tuples in a list here; ArraySeries keeps them in numpy arrays)
    def _count_closed(self) -> int:
        return len(self.closed)

    def _keep(self, bucket: tuple[tuple[Any, Any], ...]) -> None:
        """One bucket ``add()`` closed, after those held."""
        self.closed.append(bucket)

    def _add_buckets(self, np: Any, xs: Any, ys: Any, first: Any, second: Any) -> None:
        """Buckets from the positions of their points (``first <= second``), after those held."""
        self.closed.extend(_buckets(xs, ys, first, second))

    def _last_closed(self) -> tuple[Any, Any] | None:
        return self.closed[-1][-1] if self.closed else None

    def _closed_points(self) -> int:
        return sum(len(b) for b in self.closed)

    def _columns_from(self, start: int) -> list[list[Any]]:
        """``[xs, ys]`` of the points of the closed buckets from bucket ``start`` on."""
        return _columns([p for bucket in self.closed[start:] for p in bucket])

    # ------------------------------------------------------------ reading
    def _tail(self) -> list[tuple[float, float]]:
        tail = list(ordered(*self.open)) if self.open else []
        end = tail[-1] if tail else self._last_closed()
        if self.last is not None and self.last != end:
            tail.append(self.last)
        return tail

    def points(self) -> tuple[list[float], list[float]]:
        """All kept points, in x order: ``(xs, ys)``."""
        xs, ys = self._columns_from(0)
        for x, y in self._tail():
            xs.append(x)
            ys.append(y)
        return xs, ys

    def snapshot(self) -> dict[str, Any]:
        """Everything kept, as a delta that replaces what a view holds."""
        self.merged = False
        reset = self._columns_from(0)
        self.sent = self._count_closed()
        self.sent_tail = self._tail()
        return {"reset": reset, "tail": _columns(self.sent_tail)}

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last call, for the front end, or ``None``."""
        if self.merged:
            return self.snapshot()
        tail = self._tail()
        closed = self._count_closed()
        if self.sent == closed and tail == self.sent_tail:
            return None  # nothing the front end lacks: no message
        new = self._columns_from(self.sent)
        self.sent = closed
        self.sent_tail = tail
        return {"append": new, "tail": _columns(tail)}

    def __len__(self) -> int:
        return self._closed_points() + len(self._tail())


class ArraySeries(Series):
    """A ``Series`` whose closed buckets are numpy arrays: the same points, buckets, merges
    and deltas (``add`` is ``Series.add``), without a Python tuple a bucket.

    A burst folded by columns (``extend``) makes hundreds of buckets a key and a tick, and
    merging them was a Python loop; here both are a few array operations, which also let
    go of the interpreter lock the training loop needs.  Each closed bucket is a row of
    ``bx``/``by`` (its two points in x order; a bucket of one point holds it twice, marked
    in ``one``).  Buckets ``add()`` closes wait in ``fresh`` (Python tuples, as in
    ``Series``) until the next merge, ``extend`` or read moves them into the arrays.
    y values are kept as floats (the front end has nothing else); x as integers while
    every x is one (steps), else as floats.
    """

    __slots__ = ("bx", "by", "fresh", "one")

    def __init__(self, cap: int = 1000) -> None:
        super().__init__(cap)
        np = numpy_or_none()
        self.bx = np.empty((0, 2), dtype=np.int64)
        self.by = np.empty((0, 2), dtype=np.float64)
        self.one = np.empty(0, dtype=bool)
        self.fresh: list[tuple[tuple[Any, Any], ...]] = []

    # ------------------------------------------------------------ storage
    def _count_closed(self) -> int:
        return len(self.one) + len(self.fresh)

    def _keep(self, bucket: tuple[tuple[Any, Any], ...]) -> None:
        self.fresh.append(bucket)

    def _add_buckets(self, np: Any, xs: Any, ys: Any, first: Any, second: Any) -> None:
        self._settle()  # what add() closed comes first
        self._store(
            np.stack((xs[first], xs[second]), axis=1), np.stack((ys[first], ys[second]), axis=1), first == second
        )

    def _last_closed(self) -> tuple[Any, Any] | None:
        if self.fresh:
            return self.fresh[-1][-1]
        if len(self.one):
            return (self.bx[-1, 1].item(), self.by[-1, 1].item())
        return None

    def _closed_points(self) -> int:
        self._settle()
        return 2 * len(self.one) - int(self.one.sum())

    def _store(self, bx: Any, by: Any, one: Any) -> None:
        """Append closed buckets (rows) after those held."""
        np = numpy_or_none()
        if bx.dtype.kind == "f" and self.bx.dtype.kind != "f":
            self.bx = self.bx.astype(np.float64)
        elif self.bx.dtype.kind == "f" and bx.dtype.kind != "f":
            bx = bx.astype(np.float64)
        if len(self.one):
            self.bx = np.concatenate((self.bx, bx))
            self.by = np.concatenate((self.by, by))
            self.one = np.concatenate((self.one, one))
        else:
            self.bx, self.by, self.one = bx, by.astype(np.float64, copy=False), one

    def _settle(self) -> None:
        """Move the buckets add() closed into the arrays."""
        if not self.fresh:
            return
        np = numpy_or_none()
        fresh, self.fresh = self.fresh, []
        pairs = [b if len(b) == 2 else (b[0], b[0]) for b in fresh]
        xs = [p[0] for pair in pairs for p in pair]
        ys = [p[1] for pair in pairs for p in pair]
        kind = np.int64 if all(type(x) is int for x in xs) and self.bx.dtype.kind != "f" else np.float64
        try:
            bx = np.array(xs, dtype=kind).reshape(-1, 2)
        except OverflowError:  # an integer x beyond 64 bits
            bx = np.array(xs, dtype=np.float64).reshape(-1, 2)
        try:
            by = np.array(ys, dtype=np.float64).reshape(-1, 2)
        except OverflowError:  # an integer beyond what a float holds: drawn at the float's end
            big = sys.float_info.max
            by = np.array([max(-big, min(big, y)) if type(y) is int else y for y in ys], dtype=np.float64).reshape(
                -1, 2
            )
        self._store(bx, by, np.array([len(b) == 1 for b in fresh], dtype=bool))

    def _pair_closed(self) -> None:
        """As ``Series``, on the arrays: of each pair's (up to 4) points, the first lowest
        and first highest, once where they are the same point."""
        self._settle()
        np = numpy_or_none()
        m = len(self.one)
        pairs = m // 2
        if pairs:
            px = self.bx[: 2 * pairs].reshape(pairs, 4)
            py = self.by[: 2 * pairs].reshape(pairs, 4)
            rows = np.arange(pairs)
            lo, hi = py.argmin(axis=1), py.argmax(axis=1)
            xl, yl, xh, yh = px[rows, lo], py[rows, lo], px[rows, hi], py[rows, hi]
            same = (xl == xh) & (yl == yh)
            swap = ~same & (xh < xl)  # ordered(lo, hi): by x, the lowest first on equal x
            first_x, first_y = np.where(swap, xh, xl), np.where(swap, yh, yl)
            second_x, second_y = np.where(swap | same, xl, xh), np.where(swap | same, yl, yh)
            merged_x = np.stack((first_x, second_x), axis=1)
            merged_y = np.stack((first_y, second_y), axis=1)
            if m % 2:
                merged_x = np.concatenate((merged_x, self.bx[-1:]))
                merged_y = np.concatenate((merged_y, self.by[-1:]))
                same = np.concatenate((same, self.one[-1:]))
            self.bx, self.by, self.one = merged_x, merged_y, same

    def _columns_from(self, start: int) -> list[list[Any]]:
        """``[xs, ys]`` of the closed buckets' points from bucket ``start`` on, in x order
        (straight from the arrays: no tuple a point)."""
        self._settle()
        bx, by, one = self.bx[start:], self.by[start:], self.one[start:]
        if not len(one):
            return [[], []]
        if one.all():
            return [bx[:, 0].tolist(), by[:, 0].tolist()]
        if not one.any():
            return [bx.ravel().tolist(), by.ravel().tolist()]
        np = numpy_or_none()
        keep = np.ones(bx.shape, dtype=bool)
        keep[one, 1] = False
        return [bx[keep].tolist(), by[keep].tolist()]


@functools.lru_cache(maxsize=16)
def _starts(start: int, end: int, width: int) -> Any:
    """The first positions of the buckets ``start:end`` of ``width``: the same for every
    key of a burst, so made once (read only)."""
    starts = numpy_or_none().arange(start, end, width)
    starts.flags.writeable = False
    return starts


def new_series(cap: int) -> Series:
    """An ``ArraySeries`` where numpy is loaded already (it is, in a notebook that trains
    a model, and after the panel's first burst of rows), else a ``Series``."""
    return ArraySeries(cap) if _np or ("numpy" in sys.modules and numpy_or_none() is not None) else Series(cap)


def _buckets(xs: Any, ys: Any, first: Any, second: Any) -> Any:
    """Closed buckets from the positions of their points (``first <= second``, one bucket
    each): its points in x order, once where they are the same point (tuples made by
    ``zip``, not one by one, where every bucket is of one kind)."""
    same = first == second
    if same.all():
        return zip(zip(xs[first].tolist(), ys[first].tolist()))
    a = zip(xs[first].tolist(), ys[first].tolist())
    b = zip(xs[second].tolist(), ys[second].tolist())
    if not same.any():
        return zip(a, b)
    return ((p,) if s else (p, q) for p, q, s in zip(a, b, same.tolist()))


def _columns(points: Any) -> list[list[float]]:
    points = points if isinstance(points, list) else list(points)
    return [list(map(_X, points)), list(map(_Y, points))]
