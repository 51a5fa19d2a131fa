"""The shapes of what passes between ``Run.log``, the writer and SQLite."""

from __future__ import annotations

from typing import Any

from .packing import KeySet

# What log() queues: (step, time, notebook cell or None, the row's values).
QueuedRow = tuple[int, float, int | None, dict[str, Any]]
# A system metrics sample as the sampler queues it: (time, {"system/...": value}).
QueuedSample = tuple[float, dict[str, float]]
# A ``history`` row as written: (run_pk, step, ts, runtime, cell, keyset, data).  The
# keyset is the stored id, or the ``KeySet`` itself until a transaction stores it;
# ``data`` is packed bytes, or JSON text when ``keyset`` is None.
HistoryRow = tuple[int, int, float, float, int | None, int | KeySet | None, bytes | str]
# A ``system_metrics`` row without its run: (ts, runtime, JSON text).
SystemRow = tuple[float, float, str]
# A ``set_aside`` row without its run: (step or None, ts, what, reason, text).
SetAsideEntry = tuple[int | None, float, str, str, str]
# A row to replay from a rescue file: (step, ts, runtime, cell, values).
ReplayRow = tuple[int, float, float, int | None, dict[str, Any]]
