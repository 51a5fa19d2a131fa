"""How runs look in a notebook until the live panel exists: compact HTML and text.

Everything user-provided (names, tags, keys, values) is escaped: shown as text, never
interpreted as HTML.
"""

from __future__ import annotations

import html
from typing import Any

from ..page import _fmt

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


# Shown 3 s after it is drawn unless a live view of ``key`` says it is there: a notebook
# reopened without its kernel (widgets gone) then says why, and keeps what was saved.
_OFFLINE_SCRIPT = (
    "<script>(function(){var d=document.currentScript.previousElementSibling,l=globalThis.__nbtrackLive;"
    'if(d&&l&&l.has(d.dataset.for))d.style.display="none"})()</script>'
)


def offline_html(key: str, message: str, saved: str = "") -> str:
    """The output saved beside a live widget: hidden while the widget is live, else a
    line saying the kernel is not connected, and ``saved`` (the last state) under it."""
    return (
        "<style>@keyframes nbtrack-later{from{visibility:hidden}to{visibility:visible}}"
        ".nbtrack-offline{animation:nbtrack-later 0s 3s both}</style>"
        f'<div class="nbtrack-offline" data-for="{_e(key)}" style="font-family:sans-serif;font-size:13px">'
        f'<div style="color:#9a6700">{_e(message)}</div>{saved}</div>{_OFFLINE_SCRIPT}'
    )
