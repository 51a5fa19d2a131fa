"""The live run panel: an anywidget fed over the kernel's comm channel.

A panel taps its run's committed rows (one ``deque.append`` on the logging thread).
One pump thread per process wakes a few times a second, folds the new rows into
bounded min/max series and sends each panel one *delta* message: the points its
views lack, changed summary values and the header.  A view that appears later (the
same run shown in a second cell) asks for a snapshot.  When the run finishes, the
full bounded series are stored in the ``snapshot`` trait, so a saved notebook shows
the last state.
"""

from __future__ import annotations

import base64
import collections
import math
import operator
import struct
import threading
import time
import uuid
import weakref
from itertools import starmap
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .. import diagnostics, events, workers
from ..active_run import Run
from ..page import copy_ref, jsonable, media_refs, mime_of
from .series import Series, new_series, numpy_or_none

STATIC = Path(__file__).parent / "static"
MAX_POINTS = 1000
MAX_MEDIA = 100  # media values kept per key for the step slider (the latest ones)
INLINE_BYTES = 256 * 1024  # a finished panel embeds each key's latest item up to this size
INLINE_KINDS = frozenset(("image", "table", "chart", "html", "audio"))
# While a cell runs the kernel cannot answer a view's requests (its shell channel is
# busy), so each tick pushes the files of every key's newest item, up to this size.
PUSH_BYTES = 4 * 1024 * 1024
INTERVAL = 0.25  # seconds between updates: at most 4 messages a second per panel
COLUMN_ROWS = 64  # rows a tick folds by columns (numpy) rather than value by value
MAX_ALERTS = 20  # alerts a panel keeps (the newest)


def _paths(ref: dict) -> list[str]:
    """The files a reference names: its own, and its masks' (an image's overlays)."""
    found = [ref["path"]] if isinstance(ref.get("path"), str) else []
    for mask in (ref.get("masks") or {}).values():
        if isinstance(mask, dict) and isinstance(mask.get("path"), str):
            found.append(mask["path"])
    return found


class RunPanel(anywidget.AnyWidget):
    """The live view of one run: header, one chart per metric, config and summary."""

    _esm = STATIC / "panel.js"
    name = traitlets.Unicode("", help="The run's display name.").tag(sync=True)
    project = traitlets.Unicode("", help="The run's project.").tag(sync=True)
    run_id = traitlets.Unicode("", help="The run's id.").tag(sync=True)
    state = traitlets.Unicode("running", help="running, finished, failed or crashed.").tag(sync=True)
    where = traitlets.Unicode("", help="Where the run's data is stored.").tag(sync=True)
    url = traitlets.Unicode(None, allow_none=True, help="The run's page on a server.").tag(sync=True)
    step = traitlets.Int(0, help="The step the next row gets.").tag(sync=True)
    rows = traitlets.Int(0, help="Rows logged by this process.").tag(sync=True)
    last_cell = traitlets.Int(None, allow_none=True, help="Execution count of the cell that logged last.").tag(
        sync=True
    )
    started_at = traitlets.Float(0.0, help="Start, seconds since the epoch.").tag(sync=True)
    finished_at = traitlets.Float(None, allow_none=True, help="End, seconds since the epoch.").tag(sync=True)
    config = traitlets.Dict(help="The run's config.").tag(sync=True)
    tags = traitlets.List(traitlets.Unicode(), help="The run's tags.").tag(sync=True)
    notes = traitlets.Unicode(None, allow_none=True, help="The run's notes.").tag(sync=True)
    summary = traitlets.Dict(help="Last value of each key (complete once finished).").tag(sync=True)
    texts = traitlets.Dict(help="Latest non-numeric values (complete once finished).").tag(sync=True)
    snapshot = traitlets.Dict(
        help="key -> [xs, values]; complete once finished. xs are steps, or seconds of the run for system/ keys."
    ).tag(sync=True)
    sync = traitlets.Dict(None, allow_none=True, help="Online mode: server, state, sent, pending, error.").tag(
        sync=True
    )
    media = traitlets.Dict(
        help="key -> [[step, [reference, ...]], ...] for logged images, videos, "
        "histograms and tables; complete once finished."
    ).tag(sync=True)
    max_points = traitlets.Int(MAX_POINTS, help="Points kept per series.").tag(sync=True)
    clock: traitlets.List[list[float]] = traitlets.List(
        help="[steps, times]: when steps were logged (seconds since the epoch), bounded like a series; "
        "what charts against time read their x from. Complete once finished."
    ).tag(sync=True)
    axes = traitlets.Dict(help="key -> the key it is plotted against (define_metric's step_metric).").tag(sync=True)
    view_key = traitlets.Unicode(
        help="Names the 'kernel not connected' line saved beside the panel, which a live view hides."
    ).tag(sync=True)
    alerts: traitlets.List[dict[str, Any]] = traitlets.List(
        help="The run's newest alerts: {ts, step, level, title, text}."
    ).tag(sync=True)

    @traitlets.validate("max_points")
    def _validate_max_points(self, proposal: Any) -> int:
        if proposal["value"] < 8:
            raise traitlets.TraitError("max_points must be at least 8")
        return proposal["value"]

    def __init__(self, run: Run, max_points: int = MAX_POINTS) -> None:
        super().__init__(
            name=run.name,
            project=run.project,
            run_id=run.id,
            state=run.state,
            where=run.dir,
            url=run.url,
            sync=run.sync_status,
            step=run.step,
            rows=run.rows_logged,
            started_at=run.start_time,
            config=run.config.as_dict(),
            tags=list(run.tags),
            notes=run.notes,
            max_points=max_points,
            view_key=uuid.uuid4().hex,
        )
        self._run = weakref.ref(run)
        self._queue: collections.deque = collections.deque()
        self._series: dict[str, Series] = {}
        self._clock = new_series(max_points)  # step -> when it was logged
        self._texts: dict[str, Any] = {}
        self._sent_summary: dict[str, Any] = {}
        self._sent_texts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._done = False
        self._final = threading.Event()  # set once the final state is in the traits
        self.messages_sent = 0
        self._system: collections.deque = collections.deque()
        self._media: dict[str, collections.deque] = {}
        self._new_media: dict[str, list] = {}
        self._pushed: set[str] = set()
        untap_rows = run.tap_rows(self._queue.append)
        untap_system = run.tap_system(self._system.append)
        unsubscribe = events.bus.subscribe(events.CHANGED, self._on_changed)
        unalert = events.bus.subscribe(events.ALERT, self._on_alert)
        self._axes: dict[str, str] = {}
        self._untap = lambda: (untap_rows(), untap_system(), unsubscribe(), unalert())
        self.on_msg(self._on_front_end_msg)
        PanelPump.get().add(self)

    def _on_changed(self, run: Any, what: str) -> None:
        """A rename, new tags or notes, or a config change shows at once (on the thread
        that made it: in a notebook, the cell's, which owns the comm)."""
        own = self._run()
        if own is None or run is not own or what == "summary":
            return  # the summary goes out with the next update, with the rows
        run = own
        with self.hold_sync():
            if what == "config":
                self.config = run.config.as_dict()
            elif what == "tags":
                self.tags = list(run.tags)
            elif what == "notes":
                self.notes = run.notes
            elif what == "name":
                self.name = run.name

    def _on_alert(self, run: Any, alert: dict[str, Any]) -> None:
        """``run.alert()``: a banner at the top of the panel, at once."""
        if run is self._run():
            self.alerts = [*self.alerts, alert][-MAX_ALERTS:]

    # ------------------------------------------------------------ data flow
    def _fold(self) -> None:
        """Move queued rows into the series (call with the lock held)."""
        queue = self._queue
        items = [queue.popleft() for _ in range(len(queue))]
        if items:
            run = self._run()
            rules = run.metric_rules if run is not None else None
            self._fold_burst(items, rules)
        # system samples are a stream of their own: x is the run's time in seconds
        series, cap, system = self._series, self.max_points, self._system
        for _ in range(len(system)):
            _ts, runtime, values = system.popleft()
            x = round(runtime, 2)
            for key, value in values.items():
                s = series.get(key)
                if s is None:
                    s = series[key] = new_series(cap)
                s.add(x, value)

    def _fold_burst(self, items: list, rules: Any) -> None:
        """Rows by columns where they can be (a burst of rows with one key set), the rest
        value by value; a burst that mixes key sets is split in halves until each part
        either folds by columns or is short."""
        if len(items) < COLUMN_ROWS or not self._fold_columns(items, rules):
            if len(items) >= 2 * COLUMN_ROWS and numpy_or_none() is not None:
                half = len(items) // 2
                self._fold_burst(items[:half], rules)
                self._fold_burst(items[half:], rules)
            else:
                self._fold_rows(items, rules)

    def _fold_rows(self, items: list, rules: Any, only: tuple[str, ...] | None = None) -> None:
        """Fold rows value by value; with ``only``, just those keys (the step clock and
        the cell are then left to the caller)."""
        series, cap, clock = self._series, self.max_points, self._clock
        for step, ts, cell, row in items:
            if only is None:
                clock.add(step, round(ts, 3))
                if cell is not None:
                    self._last_cell = cell
            for key, value in row.items() if only is None else zip(only, map(row.__getitem__, only)):
                kind = type(value)
                if kind is float or kind is int:
                    if kind is float and not math.isfinite(value):
                        continue  # NaN and inf stay in the summary; a chart cannot place them
                    x = step
                    if rules is not None:
                        metric = rules.lookup(key)
                        if metric is not None:
                            if metric.hidden:
                                continue
                            axis = metric.step_metric
                            if axis is not None and axis != key:
                                x = row.get(axis)
                                if type(x) not in (int, float) or not math.isfinite(x):
                                    continue  # plotted against its step metric: only rows that have it
                                self._axes[key] = axis
                    s = series.get(key)
                    if s is None:
                        s = series[key] = new_series(cap)
                    s.add(x, value)
                    continue
                refs = media_refs(value)
                if refs is not None:
                    items_of = self._media.get(key)
                    if items_of is None:
                        items_of = self._media[key] = collections.deque(maxlen=MAX_MEDIA)
                    items_of.append([step, refs])
                    self._new_media.setdefault(key, []).append([step, refs])
                else:
                    self._texts[key] = value

    def _fold_columns(self, items: list, rules: Any) -> bool:
        """Fold a burst of rows by columns, with numpy: the keys the first row holds as
        numbers (plotted against the step) go in one pass each; the other keys go value by
        value.  Returns False, having folded nothing, where the rows do not all hold the
        same keys, a value of those keys is not a number, or numpy is missing: the caller
        then folds value by value.  (A bool among a key's numbers is plotted as 0 or 1
        here; value by value it would be shown as text.)"""
        np = numpy_or_none()
        if np is None:
            return False
        first = items[0][3]
        numeric: list[str] = []
        others: list[str] = []
        for key, value in first.items():
            kind = type(value)
            metric = rules.lookup(key) if rules is not None else None
            plain = metric is None or (not metric.hidden and metric.step_metric in (None, key))  # against the step
            (numeric if (kind is float or kind is int) and plain else others).append(key)
        if len(numeric) < len(first) // 2:
            return False  # mostly other values: value by value
        rows = list(map(operator.itemgetter(3), items))
        try:
            if set(map(len, rows)) != {len(first)}:
                return False
            if others:  # with the same number of keys, all present means the same keys
                collections.deque(map(operator.itemgetter(*others), rows), maxlen=0)
            pack = struct.Struct(f"<{len(numeric)}d").pack
            getter = operator.itemgetter(*numeric)
            packed = b"".join(map(pack, map(getter, rows)) if len(numeric) == 1 else starmap(pack, map(getter, rows)))
        except (KeyError, struct.error, OverflowError, TypeError):
            return False
        n = len(items)
        values = np.frombuffer(packed, dtype=np.float64).reshape(n, len(numeric))
        steps = np.fromiter(map(operator.itemgetter(0), items), dtype=np.int64, count=n)
        times = np.fromiter(map(operator.itemgetter(1), items), dtype=np.float64, count=n)
        self._clock.extend(steps, np.round(times, 3))
        for item in reversed(items):
            if item[2] is not None:
                self._last_cell = item[2]
                break
        # a column's sum is finite when all its values are (NaN and inf carry into it; a sum
        # that overflows only sends the column the slower way): one pass, not a mask a value
        with np.errstate(over="ignore", invalid="ignore"):
            clean = np.isfinite(values.sum(axis=0)).tolist()
        series, cap = self._series, self.max_points
        for j, key in enumerate(numeric):
            column = values[:, j]
            if clean[j]:
                xs, ys = steps, column  # a strided view: bucketing reshapes it without a copy
            else:  # NaN and inf stay in the summary; a chart cannot place them
                finite = np.isfinite(column)
                xs, ys = steps[finite], column[finite]
            s = series.get(key)
            if s is None:
                s = series[key] = new_series(cap)
            s.extend(xs, ys)
        if others:
            self._fold_rows(items, rules, tuple(others))
        return True

    def tick(self) -> None:
        """Send what is new to the front end (the pump calls this a few times a second)."""
        run = self._run()
        if run is None or self._done:
            return
        with self._lock:
            self._fold()
            series = {k: d for k, d in ((k, s.delta()) for k, s in self._series.items()) if d}
            clock = self._clock.delta()
            summary = _changed(run.summary.as_dict(), self._sent_summary)
            texts = _changed(self._texts, self._sent_texts)
            media, self._new_media = self._new_media, {}
            buffers: list[bytes] = []
            files = self._push_files(media, buffers) if media else None
        message: dict[str, Any] = {}
        if series:
            message["series"] = series
        if clock:
            message["clock"] = clock
        if media:
            message["media"] = media
            message["files"] = files
        if summary:
            message["summary"] = summary
        if texts:
            message["texts"] = texts
        with self.hold_sync():
            self.step, self.rows, self.state = run.step, run.rows_logged, run.state
            cell = getattr(self, "_last_cell", None)
            if cell is not None:
                self.last_cell = cell
            if self._axes != self.axes:
                self.axes = dict(self._axes)
            self.refresh_header(run)
        if message:
            message["type"] = "delta"
            self.send(message, buffers=buffers or None)
            self.messages_sent += 1
        if run.data_complete:  # not merely finished: the sampler's last sample may still come
            self.finalize()

    def finalize(self) -> None:
        """Store the complete, bounded state in the traits and stop updating."""
        run = self._run()
        with self._lock:
            if self._done:
                if run is not None:  # finalized by the pump already: the sync state may be newer
                    try:
                        self.refresh_header(run)
                    except Exception:
                        pass
                return
            self._done = True
            self._fold()
            snapshot = {k: list(s.points()) for k, s in self._series.items()}
            clock = list(self._clock.points())
            media = self._final_media()
        self._untap()
        PanelPump.get().remove(self)
        try:
            if run is not None:
                self._store_final(run, snapshot, media, clock)
        except Exception:
            pass  # a front end that is gone must not break finish()
        finally:
            self._final.set()

    def wait_final(self, timeout: float) -> bool:
        """Whether the final state is in the traits (finalized here or by the pump)."""
        return self._final.wait(timeout)

    def _push_files(self, media: dict[str, list], buffers: list[bytes]) -> list[dict[str, Any]]:
        """Attach the files of each key's newest item (not sent before) as buffers."""
        files = []
        for key, items in media.items():
            for ref in items[-1][1]:
                if ref.get("size", PUSH_BYTES + 1) > PUSH_BYTES:
                    continue
                for path in _paths(ref):
                    if path in self._pushed:
                        continue
                    data = self._read_media(key, path)
                    if data is not None:
                        self._pushed.add(path)
                        files.append({"path": path, "mime": mime_of(path), "buffer": len(buffers)})
                        buffers.append(data)
        return files

    def _final_media(self) -> dict[str, list]:
        """The media index, with each key's latest item embedded when small (images and
        their masks, tables, charts, HTML, audio): a saved notebook has no kernel to
        fetch files from."""
        out: dict[str, list] = {}
        for key, items in self._media.items():
            out[key] = [[step, [copy_ref(r) for r in refs]] for step, refs in items]
            for ref in out[key][-1][1]:
                if ref["_type"] not in INLINE_KINDS or ref.get("size", INLINE_BYTES + 1) > INLINE_BYTES:
                    continue
                for holder in [ref, *(ref.get("masks") or {}).values()]:
                    data = self._read_media(key, holder.get("path"))
                    if data is not None:
                        holder["src"] = (
                            f"data:{mime_of(holder['path'])};base64,{base64.b64encode(data).decode('ascii')}"
                        )
        return out

    def _read_media(self, key: str, path: Any) -> bytes | None:
        """A media file's bytes, for a path this panel was given under ``key`` only."""
        run = self._run()
        items = self._media.get(key)
        if run is None or run.dir is None or not items or not isinstance(path, str):
            return None
        if not any(path in _paths(ref) for _step, refs in items for ref in refs):
            return None
        try:
            return (Path(run.dir) / path).read_bytes()
        except OSError:
            return None

    def _store_final(self, run: Run, snapshot: dict, media: dict, clock: list) -> None:
        with self.hold_sync():
            self.clock = clock
            self.snapshot = snapshot
            self.media = media
            self.axes = dict(self._axes)
            self.summary = jsonable(run.summary.as_dict())
            self.texts = jsonable(self._texts)
            self.config = run.config.as_dict()
            self.step, self.rows, self.state = run.step, run.rows_logged, run.state
            self.finished_at = time.time()
            self.refresh_header(run)
            cell = getattr(self, "_last_cell", None)
            if cell is not None:
                self.last_cell = cell

    def refresh_header(self, run: Run) -> None:
        """Show the run's current sync state and URL."""
        status = run.sync_status
        if status != self.sync:
            self.set_trait("sync", status)
        if run.url != self.url:
            self.url = run.url

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "file":
            self._send_file(content.get("key"), content.get("path"))
            return
        if content.get("type") != "hello":
            return
        run = self._run()
        with self._lock:
            self._fold()
            series = {}
            for key, s in self._series.items():
                series[key] = s.snapshot()  # what a view gets now counts as sent
            clock = self._clock.snapshot()
            self._sent_summary = dict(run.summary.as_dict()) if run else {}
            self._sent_texts = dict(self._texts)
            self._new_media = {}
            media = {key: list(items) for key, items in self._media.items()}
            message = {
                "type": "snapshot",
                "series": series,
                "clock": clock,
                "summary": jsonable(self._sent_summary),
                "texts": jsonable(self._texts),
                "media": media,
            }
        self.send(message)
        self.messages_sent += 1

    def _send_file(self, key: Any, path: Any) -> None:
        """Answer a view's request for a media file it was told about."""
        with self._lock:
            data = self._read_media(key, path) if isinstance(key, str) else None
        if data is None:
            self.send({"type": "file", "key": key, "path": path, "error": "not available"})
        else:
            self.send({"type": "file", "key": key, "path": path, "mime": mime_of(path)}, buffers=[data])
        self.messages_sent += 1

    def page_state(self) -> dict[str, Any]:
        """The panel's whole state as a saved page carries it (finalized panels only)."""
        names = ("name", "project", "run_id", "state", "where", "url", "step", "rows", "last_cell", "started_at",
                 "finished_at", "config", "tags", "notes", "summary", "texts", "snapshot", "clock", "sync", "media",
                 "max_points", "axes", "alerts")  # fmt: skip
        return {name: getattr(self, name) for name in names}

    # ----------------------------------------------------------- for tests
    def media_items(self) -> dict[str, list]:
        """key -> [[step, refs], ...] as the panel holds them."""
        with self._lock:
            self._fold()
            return {k: list(v) for k, v in self._media.items()}

    def series_points(self) -> dict[str, tuple[list, list]]:
        with self._lock:
            self._fold()
            return {k: s.points() for k, s in self._series.items()}


def _changed(current: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in current.items():
        if key not in sent or sent[key] != value:
            out[key] = value
            sent[key] = value
    return jsonable(out)


class PanelPump(workers.Worker):
    """One thread per process that ticks every live panel."""

    _instance: PanelPump | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__("nbtrack-panel", INTERVAL)
        self._panels: weakref.WeakSet[RunPanel] = weakref.WeakSet()
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._panels = weakref.WeakSet()  # a forked child has no front end
        self._lock = threading.Lock()
        PanelPump._instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> PanelPump:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def add(self, panel: RunPanel) -> None:
        with self._lock:
            self._panels.add(panel)
        self.start()

    def remove(self, panel: RunPanel) -> None:
        with self._lock:
            self._panels.discard(panel)

    def step(self) -> None:
        with self._lock:
            panels = list(self._panels)
        for panel in panels:
            try:
                panel.tick()
            except Exception as exc:  # a panel must never break the run; the next tick tries again
                diagnostics.warn_once(
                    f"panel-tick:{type(exc).__name__}",
                    f"nbtrack: updating a run panel failed ({exc!r}); it tries again",
                )


_panels: weakref.WeakKeyDictionary[Run, RunPanel] = weakref.WeakKeyDictionary()


def panel_for(run: Run) -> RunPanel:
    """The run's panel, created on first use; every display of the run shares it."""
    panel = _panels.get(run)
    if panel is None:
        panel = _panels[run] = RunPanel(run)
        if run.data_complete:
            panel.finalize()
    return panel
