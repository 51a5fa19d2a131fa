"""The interactive runs table: sort, filter, and overlay a metric across selected runs.

Rows and columns are synced traits; the histories for the overlay are asked for by the
front end and sent back downsampled, so only what is drawn crosses the comm.
"""

from __future__ import annotations

import uuid
from typing import Any

import anywidget
import traitlets

from ..page import RunsTable, min_max, table_state
from ..run_record import RunList
from .panel import STATIC

MAX_OVERLAY_POINTS = 1000
MAX_OVERLAY_RUNS = 100
MAX_GRID_RUNS = 12  # runs compared on every chart (GRID_RUNS in runs.js)
MAX_GRID_KEYS = 100
MAX_GRID_POINTS = 400


class RunsView(anywidget.AnyWidget):
    """A project's runs as a sortable, filterable table with a metric overlay chart."""

    _esm = STATIC / "runs.js"
    project = traitlets.Unicode(None, allow_none=True, help="The project shown, or None for all.").tag(sync=True)
    columns: traitlets.List[str] = traitlets.List(help="Column names, in order.").tag(sync=True)
    rows: traitlets.List[dict[str, Any]] = traitlets.List(
        help="One dict per run: column -> value, plus id, tags, group."
    ).tag(sync=True)
    metrics: traitlets.List[str] = traitlets.List(help="Numeric summary keys that can be overlaid.").tag(sync=True)
    params: traitlets.List[str] = traitlets.List(
        help="Config keys (flattened with '.') that differ between the runs: the parallel coordinates' axes."
    ).tag(sync=True)
    view_key = traitlets.Unicode(
        help="Names the saved copy of the table shown beside it, which a live view hides."
    ).tag(sync=True)
    initial_sort = traitlets.Dict(help="{'key', 'dir'}: the order the table opens in (a sweep: by its metric).").tag(
        sync=True
    )

    def __init__(
        self, records: list, project: str | None, sort_by: str | None = None, descending: bool = False
    ) -> None:
        state = table_state(records, project, sort_by=sort_by, descending=descending)
        super().__init__(**state, view_key=uuid.uuid4().hex)
        self._records = {r.id: r for r in records}
        self._table = RunsTable(records, project)
        self.on_msg(self._on_front_end_msg)

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") not in ("history", "histories"):
            return
        ids = [i for i in content.get("ids", []) if isinstance(i, str)]
        if content["type"] == "history":  # one metric, the overlay chart
            key = str(content.get("key", ""))
            series = self._read([key], ids[:MAX_OVERLAY_RUNS], MAX_OVERLAY_POINTS)[key]
            self.send({"type": "history", "key": key, "series": series})
        else:  # every metric, the comparison grid
            keys = [k for k in content.get("keys", []) if isinstance(k, str)][:MAX_GRID_KEYS]
            self.send({"type": "histories", "series": self._read(keys, ids[:MAX_GRID_RUNS], MAX_GRID_POINTS)})

    def _read(self, keys: list[str], ids: list[str], points: int) -> dict[str, dict[str, list]]:
        """key -> run id -> [name, steps, values], every run's keys in one read of the
        history's columnar chunks, each series cut to ``points`` by min/max buckets."""
        chosen = RunList(r for r in map(self._records.get, ids) if r is not None)
        found = chosen.series(keys) if keys else {}
        return {
            key: {r.id: [r.name, *min_max(found[r.id][key].steps, found[r.id][key].values, points)] for r in chosen}
            for key in keys
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        bundle = super()._repr_mimebundle_(**kwargs)
        meta: dict[str, Any] = {}
        if isinstance(bundle, tuple):
            given_data, given = bundle
            data = dict(given_data or {})
            meta = dict(given or {})
        else:
            data = dict(bundle or {})
        data["text/html"] = self._table._repr_html_()  # viewers without widgets (GitHub, nbviewer)
        data["text/plain"] = repr(self._table)
        return data, meta
