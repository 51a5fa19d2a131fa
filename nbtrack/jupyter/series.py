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

import operator
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
        if not self.closed and not self.open_count:
            while n - i > limit * self.width:  # nothing to merge yet: start at the width the batch needs
                self.width *= 2
        while n - i >= self.width:
            while len(self.closed) + (n - i) // self.width > limit and len(self.closed) > 1:
                self._merge()
            b = min((n - i) // self.width, max(1, limit - len(self.closed)))
            if not b:  # merged to a width wider than what is left
                break
            w = self.width
            end = i + b * w
            block = ys[i:end].reshape(b, w)
            base = np.arange(i, end, w)
            lo, hi = base + block.argmin(axis=1), base + block.argmax(axis=1)  # first of equals, as add()
            self.closed.extend(_buckets(np, xs, ys, lo, hi))
            i = end
            if 2 * len(self.closed) + TAIL_MAX > self.cap:
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
        self.closed.append(ordered(lo, hi))
        self.open, self.open_count = [], 0
        if 2 * len(self.closed) + TAIL_MAX > self.cap:
            self._merge()

    def _merge(self) -> None:
        merged = []
        for i in range(0, len(self.closed) - 1, 2):
            pts = self.closed[i] + self.closed[i + 1]
            lo = min(pts, key=_Y)
            hi = max(pts, key=_Y)
            merged.append(ordered(lo, hi))
        if len(self.closed) % 2:
            merged.append(self.closed[-1])
        self.closed = merged
        self.width *= 2
        self.merged = True
        self.sent = 0

    def _tail(self) -> list[tuple[float, float]]:
        tail = list(ordered(*self.open)) if self.open else []
        end = tail[-1] if tail else (self.closed[-1][-1] if self.closed else None)
        if self.last is not None and self.last != end:
            tail.append(self.last)
        return tail

    def points(self) -> tuple[list[float], list[float]]:
        """All kept points, in x order: ``(xs, ys)``."""
        pts = [p for bucket in self.closed for p in bucket]
        pts.extend(self._tail())
        xs, ys = _columns(pts)
        return xs, ys

    def snapshot(self) -> dict[str, Any]:
        """Everything kept, as a delta that replaces what a view holds."""
        self.merged = False
        self.sent = len(self.closed)
        self.sent_tail = self._tail()
        return {"reset": _columns(p for bucket in self.closed for p in bucket), "tail": _columns(self.sent_tail)}

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last call, for the front end, or ``None``."""
        if self.merged:
            return self.snapshot()
        tail = self._tail()
        new = [p for bucket in self.closed[self.sent :] for p in bucket]
        if not new and tail == self.sent_tail:
            return None  # nothing the front end lacks: no message
        self.sent = len(self.closed)
        self.sent_tail = tail
        return {"append": _columns(new), "tail": _columns(tail)}

    def __len__(self) -> int:
        return sum(len(b) for b in self.closed) + len(self._tail())


def _buckets(np: Any, xs: Any, ys: Any, lo: Any, hi: Any) -> Any:
    """Closed buckets from the positions of their lowest and highest points: each bucket's
    points in x order, once where they are the same point (tuples made by ``zip``, not
    one by one, where every bucket is of one kind)."""
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
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
