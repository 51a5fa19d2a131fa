"""The interactive runs table: sort, filter, and overlay a metric across selected runs.

Rows and columns are synced traits; the histories for the overlay are asked for by the
front end and sent back downsampled, so only what is drawn crosses the comm.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ..run_record import RunList
from .display import RunsTable, _fmt
from .panel import STATIC
from .series import min_max

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
    initial_sort = traitlets.Dict(help="{'key', 'dir'}: the order the table opens in (a sweep: by its metric).").tag(
        sync=True
    )

    def __init__(
        self, records: list, project: str | None, sort_by: str | None = None, descending: bool = False
    ) -> None:
        table = RunsTable(records, project)
        rows = []
        for record, shown in zip(records, table.rows()):
            row: dict[str, Any] = {
                **shown,
                "tags": list(record.tags),
                "group": record.group or "",
                "_sort": {"start": record.created_at.timestamp()},
            }
            for key in table.summary_keys:
                value = record.summary.get(key)
                row["_sort"][key] = value if isinstance(value, (int, float)) else None
            row["_params"] = _flat(record.config)
            row["_metrics"] = {
                k: v for k, v in record.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            if sort_by is not None:
                row["_sort"][sort_by] = row["_metrics"].get(sort_by)
            rows.append(row)
        seen: dict[str, set[str]] = {}  # config key -> the values it takes (a key absent somewhere takes "None")
        for r in rows:
            for k, v in r["_params"].items():
                seen.setdefault(k, set()).add(str(v))
        params = sorted(k for k, values in seen.items() if len(values) > 1 or any(k not in r["_params"] for r in rows))
        metrics = sorted(
            {
                k
                for r in records
                for k, v in r.summary.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        )
        if metrics and records:
            # keys with a history first (the overlay opens on the first): a summary value set
            # by hand has none; judged on the newest run, one sampled point a key
            newest = records[0]
            found = RunList([newest]).series(metrics, samples=1)[newest.id]
            metrics.sort(key=lambda k: len(found[k].steps) == 0)
        initial = {"key": sort_by, "dir": -1 if descending else 1} if sort_by else {}
        super().__init__(
            project=project, columns=table.columns(), rows=rows, metrics=metrics, params=params, initial_sort=initial
        )
        self._records = {r.id: r for r in records}
        self._table = table
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
        data["text/html"] = self._table._repr_html_()
        data["text/plain"] = repr(self._table)
        return data, meta


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[f"{prefix}{key}"] = value
    return out


__all__ = ["RunsView", "_fmt"]
