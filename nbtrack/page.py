"""Self-contained pages of runs: one HTML text that needs no kernel, no server and no
network.

A page holds the run's state (header, bounded series, summary, config, media) as
gzipped JSON, the panel's own JavaScript (gzipped, run once per page), and a static
SVG rendering of every chart.  Where the front end runs the page's script (JupyterLab,
Notebook 7, VS Code, a browser opening the file) the SVG is replaced by the same
interactive panel a live run shows; where it does not (GitHub, nbviewer, an untrusted
notebook, a browser with scripts off) the SVG stays.

Used by a finished run's notebook output, ``run.to_html()``, ``RunRecord.to_html()``
and ``nbtrack view``.  Core code: nothing here imports the notebook stack.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import gzip
import hashlib
import html
import json
import math
import numbers
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .media import AUDIO_FORMATS, IMAGE_FORMATS, MEDIA_TYPES, MOLECULE_FORMATS, OBJECT3D_FORMATS, VIDEO_FORMATS

if TYPE_CHECKING:
    from .run_record import RunList, RunRecord

STATIC = Path(__file__).parent / "jupyter" / "static"
PAGE_JS = STATIC / "page.js"
MAX_POINTS = 1000  # points a key at most (as the live panel)
POINTS_BUDGET = 12_000  # points of all keys of a run together: bounds what a saved notebook grows by
MIN_POINTS = 100  # ... but never fewer than this a key
SVG_POINTS = 48  # points a key in the static drawing (min/max buckets: spikes stay)...
SVG_BUDGET = 2_400  # ... and in all: a run of many charts draws each with fewer (16 at least)
MAX_MEDIA = 100  # media items a key (the newest)
INLINE_BYTES = 256 * 1024  # a media file embedded up to this size
MEDIA_BYTES = 512 * 1024  # media files a page embeds in all, newest first (a notebook output)
FILE_MEDIA_BYTES = 16 * 1024 * 1024  # ... and a page written to a file (nbtrack view)
PROJECT_RUNS = 100  # runs of a project page whose histories are embedded for the overlay
PROJECT_POINTS = 200_000  # points of all those histories together
STATIC_ROWS = 100  # rows of the runs table drawn without scripts, as the script pages it (10,000 took 2.5 s)
SVG_W, SVG_H = 300, 150
_STATE_COLOURS = {"running": "#1a7f37", "finished": "#0969da", "failed": "#cf222e", "crashed": "#9a6700"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------ numbers
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def num(v: Any, digits: int = 4) -> str:
    """A number as a chart shows it (the same rules as the panel's ``num``): SI above
    10,000, scientific below 0.001, never "0" for a value that is not 0."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return str(v)
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4:
        for factor, suffix in _SI:
            if a >= factor:
                return f"{_precise(v / factor, digits)}{suffix}"
    if a < 1e-3:
        mantissa, exponent = f"{v:.{max(0, digits - 2)}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        return f"{mantissa}e{int(exponent)}"
    return _precise(v, digits)


def _precise(v: float, digits: int) -> str:
    text = f"{v:.{digits}g}"
    if "e" in text:  # JavaScript's toPrecision then unary + prints plain digits here
        text = repr(float(text))
    return text[:-2] if text.endswith(".0") else text


def _short(v: float) -> float | int:
    """A value rounded to 6 significant digits (the page shows at most 5)."""
    if type(v) is int:
        return v
    return float(f"{v:.6g}")


# ------------------------------------------------------------------ series
def min_max(xs: Any, ys: Any, cap: int) -> tuple[list[float], list[float]]:
    """At most ``cap`` points of a whole series at once: buckets of equal width keep
    their lowest and highest point (in x order), so every spike stays visible.  Values
    that are not finite numbers are left out."""
    points = [(x, y) for x, y in zip(xs, ys) if type(y) in (int, float) and math.isfinite(y)]
    if len(points) <= cap:
        return [p[0] for p in points], [p[1] for p in points]
    width = -(-len(points) // max(1, cap // 2))
    out_x: list[float] = []
    out_y: list[float] = []
    for start in range(0, len(points), width):
        bucket = points[start : start + width]
        lo = min(bucket, key=lambda p: p[1])
        hi = max(bucket, key=lambda p: p[1])
        for x, y in ordered(lo, hi):
            out_x.append(x)
            out_y.append(y)
    return out_x, out_y


def ordered(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[tuple[Any, Any], ...]:
    """A bucket's lowest and highest point in x order, once if they are the same point."""
    if a == b:
        return (a,)
    return (a, b) if a[0] <= b[0] else (b, a)


def _budget(snapshot: dict[str, list], total: int = POINTS_BUDGET) -> dict[str, list]:
    """The series cut to at most ``total`` points in all (at least MIN_POINTS a key),
    values rounded for the page."""
    cap = min(MAX_POINTS, max(MIN_POINTS, total // max(1, len(snapshot))))
    out = {}
    for key, (xs, ys) in snapshot.items():
        if len(xs) > cap:
            xs, ys = min_max(xs, ys, cap)
        out[key] = [[_short(x) for x in xs], [_short(y) for y in ys]]
    return out


# ------------------------------------------------------------------ state from the store
def _number(v: Any) -> bool:
    return type(v) in (int, float)


def run_state(record: RunRecord) -> dict[str, Any]:
    """A stored run as the panel's state: what ``RunPanel`` would hold once finished."""
    summary = record.summary
    numeric = [k for k, v in summary.items() if _number(v) and not k.startswith("_")]
    charted = set(numeric)
    media_keys = [k for k, v in summary.items() if media_refs(v) is not None]
    axes = _axes(record, numeric)
    wanted = list(dict.fromkeys([*numeric, *media_keys, *axes.values()]))
    found = record.series_of(wanted) if wanted else {}
    snapshot: dict[str, list] = {}
    for key in numeric:
        s = found[key]
        if not len(s.steps):
            continue  # a summary value set by hand: no history to draw
        if key in axes:
            against = dict(zip(found[axes[key]].steps, found[axes[key]].values))
            pairs = [(against[st], v) for st, v in zip(s.steps, s.values) if _number(against.get(st))]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            xs, ys = list(s.steps), list(s.values)
        snapshot[key] = list(min_max(xs, ys, MAX_POINTS))
    longest = max((found[k] for k in numeric), key=lambda s: len(s.steps), default=None)
    clock = list(min_max(longest.steps, longest.timestamps, MAX_POINTS)) if longest is not None else [[], []]
    snapshot.update(_system(record))
    media = {
        key: [
            [step, [dict(r) for r in refs]]
            for step, value in zip(found[key].steps, found[key].values)
            if (refs := media_refs(value)) is not None
        ][-MAX_MEDIA:]
        for key in media_keys
    }
    texts = {
        k: v
        for k, v in summary.items()
        if not _number(v) and media_refs(v) is None and not isinstance(v, dict) and not k.startswith("_")
    }
    finished = record.finished_at
    return {
        "name": record.name,
        "project": record.project,
        "run_id": record.id,
        "state": record.state,
        "where": str(record.dir),
        "url": None,
        "sync": None,
        "step": record.last_step + 1 if record.last_step >= 0 else 0,
        "rows": None,
        "last_cell": None,
        "started_at": record.created_at.timestamp(),
        "finished_at": finished.timestamp() if finished else None,
        "as_of": time.time(),
        "config": _plain(record.config),
        "tags": list(record.tags),
        "notes": record.notes,
        "summary": jsonable({k: v for k, v in summary.items() if k in texts or k in charted}),
        "texts": jsonable(texts),
        "snapshot": snapshot,
        "clock": clock,
        "media": media,
        "axes": axes,
        "alerts": record.alerts()[-20:],
        "max_points": MAX_POINTS,
    }


def _axes(record: RunRecord, keys: list[str]) -> dict[str, str]:
    """key -> the key it is plotted against (``define_metric(step_metric=...)``)."""
    out: dict[str, str] = {}
    for metric in record.metric_definitions:
        if not metric.step_metric or metric.hidden:
            continue
        for key in keys:
            if key != metric.step_metric and key not in out and fnmatch.fnmatchcase(key, metric.name):
                out[key] = metric.step_metric
    return out


def _system(record: RunRecord) -> dict[str, list]:
    series: dict[str, tuple[list, list]] = {}
    for sample in record.system_metrics():
        x = round(sample.get("_runtime") or 0.0, 2)
        for key, value in sample.items():
            if not key.startswith("_") and _number(value):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(x)
                ys.append(value)
    return {k: list(min_max(xs, ys, MAX_POINTS)) for k, (xs, ys) in series.items()}


def media_refs(value: Any) -> list[dict] | None:
    """The media references a logged value holds (one, or a list), else None."""
    if isinstance(value, dict):
        return [value] if value.get("_type") in MEDIA_TYPES else None
    if isinstance(value, list) and value and all(isinstance(v, dict) and v.get("_type") in MEDIA_TYPES for v in value):
        return value
    return None


MIME = {
    **MOLECULE_FORMATS,
    **OBJECT3D_FORMATS,
    **AUDIO_FORMATS,
    **VIDEO_FORMATS,
    **IMAGE_FORMATS,
    "mask.png": "image/png",
    "table.json": "application/json",
    "json": "application/json",
    "html": "text/html",
}


def mime_of(path: str) -> str:
    """The content type of a media file, from its extension (``png``, ``table.json`` ...)."""
    name = path.rsplit("/", 1)[-1].lower()
    if "." in name:
        for extension in (name.split(".", 1)[-1], name.rsplit(".", 1)[-1]):
            if extension in MIME:
                return MIME[extension]
    return "application/octet-stream"


def copy_ref(ref: dict) -> dict:
    """A media reference to change (a file put in), its masks copied too."""
    copied = dict(ref)
    if isinstance(ref.get("masks"), dict):
        copied["masks"] = {name: dict(mask) for name, mask in ref["masks"].items()}
    return copied


def embed_media(media: dict[str, list], folder: str | None, budget: int) -> dict[str, list]:
    """The media index with files put in as data: URLs (a page has no kernel to fetch
    them from): every key's newest item first, then older ones, each up to
    INLINE_BYTES, until ``budget`` bytes are used.  Items left out say so on the page."""
    out = {key: [[step, [copy_ref(r) for r in refs]] for step, refs in items] for key, items in media.items()}
    if folder is None:
        return out
    left = budget
    depth = max((len(items) for items in out.values()), default=0)
    for back in range(1, depth + 1):  # the newest of every key, then the one before ...
        for items in out.values():
            if back > len(items):
                continue
            for ref in items[-back][1]:
                left = _embed(Path(folder), ref, left)
    return out


def _embed(folder: Path, ref: dict, left: int) -> int:
    """Put a reference's file (and its masks') into it as a data: URL; the budget left."""
    if ref.get("size", INLINE_BYTES + 1) > INLINE_BYTES:
        return left
    for holder in [ref, *(m for m in (ref.get("masks") or {}).values() if isinstance(m, dict))]:
        path = holder.get("path")
        if holder.get("src"):
            left -= len(holder["src"])  # embedded already (a finished panel's newest items)
            continue
        if not isinstance(path, str):
            continue
        try:
            size = (folder / path).stat().st_size
            if size * 4 // 3 > left:
                continue
            data = (folder / path).read_bytes()
        except OSError:
            continue
        left -= len(data) * 4 // 3
        holder["src"] = f"data:{mime_of(path)};base64,{base64.b64encode(data).decode('ascii')}"
    return left


def _plain(value: Any) -> Any:
    """A value JSON can carry (other objects as their repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Latest values as a page or the panel shows them: numbers, text, True/False and
    None as they are; NaN and infinities as text, media as what they are, the rest as repr."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = str(value)
        elif (refs := media_refs(value)) is not None:
            out[key] = ", ".join(f"{r['_type']} {r.get('path') or ''}".strip() for r in refs)
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
        else:
            out[key] = repr(value)
    return out


# ------------------------------------------------------------------ the runs table
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
    """A project's runs as rows of shown values (HTML and text); what ``%track_runs``
    shows where widgets do not work."""

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


def table_state(
    records: list, project: str | None, sort_by: str | None = None, descending: bool = False
) -> dict[str, Any]:
    """The runs table's state (the traits of the live table): columns, rows, the
    metrics that can be overlaid (keys with a history first), the config keys that
    differ, and the order it opens in."""
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
        row["_metrics"] = {k: v for k, v in record.summary.items() if _number(v)}
        if sort_by is not None:
            row["_sort"][sort_by] = row["_metrics"].get(sort_by)
        rows.append(row)
    seen: dict[str, set[str]] = {}  # config key -> the values it takes (a key absent somewhere takes "None")
    for r in rows:
        for k, v in r["_params"].items():
            seen.setdefault(k, set()).add(str(v))
    params = sorted(k for k, values in seen.items() if len(values) > 1 or any(k not in r["_params"] for r in rows))
    metrics = sorted({k for r in records for k, v in r.summary.items() if _number(v)})
    if metrics and records:
        # keys with a history first (the overlay opens on the first): a summary value set
        # by hand has none; judged on the newest run, one sampled point a key
        newest = records[0]
        found = newest.series_of(metrics, samples=1)
        metrics.sort(key=lambda k: len(found[k].steps) == 0)
    return {
        "project": project,
        "columns": table.columns(),
        "rows": rows,
        "metrics": metrics,
        "params": params,
        "initial_sort": {"key": sort_by, "dir": -1 if descending else 1} if sort_by else {},
    }


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def project_history(records: RunList, metrics: list[str], total: int = PROJECT_POINTS) -> dict[str, dict[str, list]]:
    """key -> run id -> [name, steps, values] for the overlay of a page (no kernel to
    ask): the newest PROJECT_RUNS runs, at most ``total`` points in all."""
    chosen = type(records)(records[:PROJECT_RUNS])  # a RunList (Api.runs): read together
    if not chosen or not metrics:
        return {}
    found = chosen.series(metrics)
    cap = min(MAX_POINTS, max(20, total // max(1, len(chosen) * len(metrics))))
    out: dict[str, dict[str, list]] = {}
    for key in metrics:
        for record in chosen:
            s = found[record.id][key]
            if len(s.steps):
                xs, ys = min_max(s.steps, s.values, cap)
                out.setdefault(key, {})[record.id] = [record.name, xs, [_short(y) for y in ys]]
    return out


# ------------------------------------------------------------------ the static drawing
def _chart_svg(key: str, xs: list, ys: list, axis: str, most: int = SVG_POINTS) -> str:
    if len(xs) > most:
        xs, ys = min_max(xs, ys, most)
    left, right, top, bottom = 46, 6, 6, 18
    w, h = SVG_W - left - right, SVG_H - top - bottom
    lo, hi = min(ys), max(ys)
    if lo == hi:
        pad = 1.0 if lo == 0 else abs(lo) * 0.05
        lo, hi = lo - pad, hi + pad
    x0, x1 = xs[0], xs[-1]
    span = (x1 - x0) or 1
    points = " ".join(
        f"{left + (x - x0) / span * w:.0f},{top + (1 - (y - lo) / (hi - lo)) * h:.0f}" for x, y in zip(xs, ys)
    )
    mark = "" if len(xs) > 1 else f"<circle cx='{left + w // 2}' cy='{top + h // 2}' r='2.5' fill='#1f77b4'/>"
    ymin, ymax, first, last = (_e(num(v)) for v in (min(ys), max(ys), x0, x1))
    name = key[key.rfind("/") + 1 :] or key  # the y title, as the panel's: the key after its last "/"
    title = _e(name if len(name) <= 18 else name[:17] + "…")
    # an image, not inline SVG: JupyterLab's sanitizer (an untrusted notebook) removes SVG
    # elements but keeps images with data: URLs.  Small on purpose: one per chart.
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{SVG_W}' height='{SVG_H}' font-family='sans-serif' "
        "font-size='10' fill='#59636e'>"
        f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='none' stroke='#d1d9e0'/>"
        f"<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='{points}'/>{mark}"
        f"<text x='{left - 3}' y='{top + 8}' text-anchor='end'>{ymax}</text>"
        f"<text x='{left - 3}' y='{top + h}' text-anchor='end'>{ymin}</text>"
        f"<text transform='rotate(-90)' x='{-(top + h / 2):.0f}' y='10' text-anchor='middle'>{title}</text>"
        f"<text x='{left}' y='{SVG_H - 4}'>{first}</text>"
        f"<text x='{SVG_W - right}' y='{SVG_H - 4}' text-anchor='end'>{last} {_e(axis)}</text></svg>"
    )
    alt = f"{key}: {num(min(ys))} to {num(max(ys))}, {axis} {num(x0)} to {num(x1)}"
    return (
        # lazy: Chromium draws SVG images on the main thread, 100 of them for 0.3 s, while the
        # script replaces the drawing; only those scrolled to are drawn
        f'<img class="nbt-svg" width="{SVG_W}" height="{SVG_H}" data-key="{_e(key)}" data-points="{len(xs)}" '
        f'loading="lazy" decoding="async" alt="{_e(alt)}" src="data:image/svg+xml,{_data_url_text(svg)}">'
    )


def _data_url_text(svg: str) -> str:
    """SVG as the text of a data: URL in a double-quoted attribute: only what would end
    the URL (%, #) or the attribute (&, ") is escaped, so it stays about its own size."""
    return svg.replace("%", "%25").replace("#", "%23").replace("&", "&amp;").replace('"', "&quot;")


def _table_html(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_shown(v))}</td></tr>" for k, v in rows)
    return f'<table class="nbt-table">{body}</table>'


def _shown(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return num(v, 5)
    return str(v)


def _section(key: str) -> str:
    i = key.find("/")
    return key[:i] if i > 0 else "metrics"


def _elapsed(seconds: float) -> str:
    s = int(max(0, seconds))
    hours, minutes, secs = s // 3600, s // 60 % 60, s % 60
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _static_run(state: dict[str, Any]) -> str:
    colour = _STATE_COLOURS.get(state["state"], "#57606a")
    end = state.get("finished_at") or state.get("as_of") or time.time()
    rows = f" · {state['rows']} rows" if state.get("rows") is not None else ""
    parts = [
        f'<div class="nbt-static-head"><b class="nbt-name">{_e(state["name"])}</b> '
        f'<span class="nbt-badge" data-state="{_e(state["state"])}" style="color:#fff;background:{colour};'
        f'border-radius:10px;padding:0 8px">{_e(state["state"])}</span> '
        f'<span class="nbt-meta">{_e(state["project"])} / <code>{_e(state["run_id"])}</code> · '
        f"step {state['step']}{rows} · {_elapsed(end - state['started_at'])}</span></div>",
        f'<div class="nbt-where" style="opacity:.75">data: <code>{_e(state["where"])}</code></div>',
    ]
    axes = state.get("axes") or {}
    sections: dict[str, list[str]] = {}
    drawn = sum(1 for xs, _ys in state["snapshot"].values() if xs)
    each = max(16, min(SVG_POINTS, SVG_BUDGET // max(1, drawn)))  # 100 charts: 24 points each
    for key, (xs, ys) in state["snapshot"].items():
        if not xs:
            continue
        axis = axes.get(key) or ("seconds" if key.startswith("system/") else "step")
        sections.setdefault(_section(key), []).append(
            f'<figure class="nbt-static-chart" data-key="{_e(key)}" style="margin:0;display:inline-block;'
            f'vertical-align:top"><figcaption><code>{_e(key)}</code></figcaption>'
            f"{_chart_svg(key, xs, ys, axis, each)}</figure>"
        )
    for key, items in (state.get("media") or {}).items():
        refs = items[-1][1] if items else []
        shown = [
            f'<img src="{_e(r["src"])}" alt="{_e(r.get("caption") or key)}" style="max-width:300px">'
            for r in refs
            if r.get("_type") == "image" and str(r.get("src", "")).startswith("data:image/")
        ]
        if shown:
            step = items[-1][0]
            sections.setdefault(_section(key), []).append(
                f'<figure class="nbt-static-media" data-key="{_e(key)}" style="margin:0;display:inline-block">'
                f"<figcaption><code>{_e(key)}</code> · step {step}</figcaption>{''.join(shown)}</figure>"
            )
    order = sorted(sections, key=lambda name: name == "system")
    for name in order:
        charts = sections[name]
        parts.append(
            f'<details open class="nbt-static-section" data-section="{_e(name)}"><summary><b>{_e(name)} '
            f"({len(charts)})</b></summary>{''.join(charts)}</details>"
        )
    if not sections:
        parts.append('<div class="nbt-empty"><i>No metrics logged.</i></div>')
    if state.get("texts"):
        parts.append(f"<details><summary>values</summary>{_table_html(state['texts'].items())}</details>")
    parts.append(f"<details><summary>summary</summary>{_table_html(state['summary'].items())}</details>")
    parts.append(f"<details><summary>config</summary>{_table_html(_flat(state['config']).items())}</details>")
    return "".join(parts)


def _static_table(table: dict[str, Any]) -> str:
    cols = table["columns"]
    if not table["rows"]:
        return f"<p>nbtrack: no runs{' in project ' + _e(table['project']) if table['project'] else ''}</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = table["rows"]
    body = "".join(
        f'<tr data-id="{_e(r["id"])}">' + "".join(f'<td data-col="{_e(c)}">{_e(r.get(c, ""))}</td>' for c in cols)
        for r in rows[:STATIC_ROWS]
    )
    more = (
        f"<p>{len(rows) - STATIC_ROWS:,} more runs: the page lists them where it can run its script</p>"
        if len(rows) > STATIC_ROWS
        else ""
    )
    return f'<table class="nbtrack-runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}'


# ------------------------------------------------------------------ assembling
def _pack(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), allow_nan=False, default=repr).encode()
    return base64.b64encode(gzip.compress(raw, 6, mtime=0)).decode("ascii")


_code: tuple[str, str] | None = None


def _script() -> tuple[str, str]:
    """The page's JavaScript, gzipped and base64-encoded, and a short hash naming its version."""
    global _code
    if _code is None:
        text = PAGE_JS.read_bytes()
        _code = (base64.b64encode(gzip.compress(text, 9, mtime=0)).decode("ascii"), hashlib.sha1(text).hexdigest()[:10])
    return _code


# The loader: finds its own container, loads the page's code once per document (a
# script element with the unpacked text) while it unpacks the state, then hands the
# code the state.  Without scripts, or with a browser too old to unpack gzip, the
# static drawing stays.
_LOADER = """(function(){var s=document.currentScript,h=s&&s.parentNode&&s.parentNode.querySelector(".nbtrack-page");
if(!h||h.dataset.live||typeof DecompressionStream==="undefined")return;var g=globalThis,n="nbtrackPage_%(version)s";
function unzip(b){var t=atob(b),a=new Uint8Array(t.length);for(var i=0;i<t.length;i++)a[i]=t.charCodeAt(i);
return new Response(new Blob([a]).stream().pipeThrough(new DecompressionStream("gzip"))).text()}
var state=unzip(h.dataset.nbtState||s.dataset.state);
var ready=g[n]?Promise.resolve(g[n]):(g[n+"_loading"]=g[n+"_loading"]||unzip("%(code)s").then(function(t){
var e=document.createElement("script");e.textContent=t;document.head.appendChild(e);return g.nbtrackPage}));
Promise.all([ready,state]).then(function(r){g[n]=r[0];
r[0].show(h,JSON.parse(r[1]))}).catch(function(e){h.dataset.error=String(e)})})();"""


def fragment(kind: str, state: dict[str, Any], *, height: int | None = None, hidden: bool = False) -> str:
    """One page's HTML for a notebook output or a file's body: the static drawing, the
    state and the loader."""
    if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height < 1):
        raise UsageError(f"to_html: height must be a whole number of pixels above 0 (or None), got {height!r}")
    code, version = _script()
    static = _static_run(state["run"]) if kind == "run" else _static_table(state["table"])
    style = ("display:none;" if hidden else "") + (f"max-height:{int(height)}px;overflow:auto;" if height else "")
    return (
        f'<div class="nbtrack-output" style="{style}">'
        f'<div class="nbtrack-page" data-kind="{kind}" style="font-family:system-ui,sans-serif;font-size:13px">'
        f'<div class="nbt-static">{static}</div></div>'
        f'<script data-state="{_pack(state)}">{_LOADER % {"version": version, "code": code}}</script></div>'
    )


def document(title: str, body: str) -> str:
    """A whole HTML file around a fragment: opens from ``file://`` with no network."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title></head><body style="margin:16px">{body}</body></html>\n'
    )


def run_fragment(
    state: dict[str, Any], *, height: int | None = None, hidden: bool = False, media_bytes: int = MEDIA_BYTES
) -> str:
    """A run's page from its panel state (a live panel's, or ``run_state``'s), with up
    to ``media_bytes`` of its media files embedded."""
    state = dict(state)
    state["snapshot"] = _budget(state.get("snapshot") or {})
    xs, ys = state.get("clock") or [[], []]
    state["clock"] = [xs, [round(t, 3) for t in ys]] if len(xs) <= MAX_POINTS else list(min_max(xs, ys, MAX_POINTS))
    state["media"] = embed_media(state.get("media") or {}, state.get("where"), media_bytes)
    return fragment("run", {"run": state}, height=height, hidden=hidden)


def project_fragment(
    records: RunList, project: str | None, *, sort_by: str | None = None, descending: bool = False
) -> str:
    """A project's page: the runs table with the overlay of any metric across the ticked
    runs (the newest PROJECT_RUNS runs' histories embedded)."""
    table = table_state(records, project, sort_by=sort_by, descending=descending)
    history = project_history(records, table["metrics"])
    return fragment("project", {"table": table, "history": history})


def write(path: str | os.PathLike[str], text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
