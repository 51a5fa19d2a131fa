"""How runs look in a notebook until the live panel exists: compact HTML and text.

Everything user-provided (names, tags, keys, values) is escaped: shown as text, never
interpreted as HTML.
"""

from __future__ import annotations

import datetime
import html
import numbers
from collections.abc import Iterable
from typing import Any

NOT_STORED = "not stored (mode='disabled')"
_STATE_COLOURS = {"running": "#1a7f37", "finished": "#0969da", "failed": "#cf222e", "crashed": "#9a6700"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def status_text(run: Any) -> str:
    where = run.dir or NOT_STORED
    cell = f" · last cell [{run.last_cell}]" if getattr(run, "last_cell", None) else ""
    return (
        f"nbtrack run {run.name} ({run.id}) · project {run.project} · {run.state} · "
        f"step {run.step} · {run.rows_logged} rows{cell} · {where}"
    )


def status_html(run: Any) -> str:
    colour = _STATE_COLOURS.get(run.state, "#57606a")
    tags = "".join(f'<span class="nbtrack-tag">{_e(t)}</span> ' for t in run.tags)
    return (
        f'<div class="nbtrack-status" data-run-id="{_e(run.id)}" data-state="{_e(run.state)}" '
        'style="font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; padding: 4px 0">'
        f"<b>nbtrack</b> run <code>{_e(run.name)}</code> (<code>{_e(run.id)}</code>) in "
        f'<code>{_e(run.project)}</code> · <b style="color: {colour}">{_e(run.state)}</b> · '
        f"step {run.step} · {run.rows_logged} rows {tags}"
        f'<div style="opacity: .7">{_e(run.dir or NOT_STORED)}</div></div>'
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _scalar_keys(dicts: Iterable[dict], limit: int) -> list[str]:
    keys: list[str] = []
    for d in dicts:
        for k, v in d.items():
            if k not in keys and isinstance(v, (numbers.Number, str, bool)):
                keys.append(k)
    return keys[:limit]


class RunsTable:
    """What ``%track_runs`` returns: a table of a project's runs (HTML and text)."""

    def __init__(self, records: list, project: str | None, max_keys: int = 6) -> None:
        self.records = records
        self.project = project
        self.config_keys = _scalar_keys((r.config for r in records), max_keys)
        self.summary_keys = _scalar_keys((r.summary for r in records), max_keys)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            end = r.finished_at or (datetime.datetime.now(datetime.timezone.utc) if r.state == "running" else None)
            duration = (end - r.started_at).total_seconds() if end else r.runtime
            row = {
                "name": r.name,
                "id": r.id,
                "state": r.state,
                "start": r.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                "duration": f"{duration:.1f}s",
            }
            row.update({f"config.{k}": _fmt(r.config.get(k, "")) for k in self.config_keys})
            row.update({k: _fmt(r.summary.get(k, "")) for k in self.summary_keys})
            out.append(row)
        return out

    def columns(self) -> list[str]:
        return [
            "name",
            "id",
            "state",
            "start",
            "duration",
            *[f"config.{k}" for k in self.config_keys],
            *self.summary_keys,
        ]

    def _repr_html_(self) -> str:
        if not self.records:
            return f"<p>nbtrack: no runs{' in project ' + _e(self.project) if self.project else ''}</p>"
        head = "".join(f"<th>{_e(c)}</th>" for c in self.columns())
        body = "".join(
            "<tr>" + "".join(f'<td data-col="{_e(c)}">{_e(row[c])}</td>' for c in self.columns()) + "</tr>"
            for row in self.rows()
        )
        return f'<table class="nbtrack-runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        if not self.records:
            return f"nbtrack: no runs{' in project ' + self.project if self.project else ''}"
        cols = self.columns()
        rows = self.rows()
        widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)) for r in rows]
        return "\n".join(lines)


def _sparkline(xs: list, ys: list, width: int = 120, height: int = 24) -> str:
    if len(xs) < 2:
        return ""
    step = max(1, len(xs) // 100)
    xs, ys = xs[::step], ys[::step]
    x0, x1 = xs[0], xs[-1] or 1
    lo, hi = min(ys), max(ys)
    span_x = (x1 - x0) or 1
    span_y = (hi - lo) or 1
    pts = " ".join(f"{(x - x0) / span_x * width:.1f},{height - (y - lo) / span_y * height:.1f}" for x, y in zip(xs, ys))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="{pts}"/></svg>'
    )


def fallback_html(run: Any, series: dict[str, tuple[list, list]], limit: int = 12) -> str:
    """The panel for viewers without widgets (GitHub, nbviewer): status, summary, sparklines."""
    rows: list[str] = []
    for key, value in list(run.summary.items())[:40]:
        spark = _sparkline(*series[key]) if key in series and len(rows) < limit else ""
        rows.append(f"<tr><td><code>{_e(key)}</code></td><td>{_e(_fmt(value))}</td><td>{spark}</td></tr>")
    table = f'<table class="nbtrack-summary">{"".join(rows)}</table>' if rows else ""
    return status_html(run).replace("</div></div>", f"</div>{table}</div>", 1)
