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
        if not isinstance(content, dict) or content.get("type") != "history":
            return
        key = str(content.get("key", ""))
        chosen = RunList(r for r in map(self._records.get, content.get("ids", [])[:MAX_OVERLAY_RUNS]) if r is not None)
        found = chosen.series(key)  # every chosen run's key in one read of the columnar chunks
        series = {}
        for record in chosen:
            s = found[record.id][key]
            series[record.id] = [record.name, *min_max(s.steps, s.values, MAX_OVERLAY_POINTS)]
        self.send({"type": "history", "key": key, "series": series})

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
