"""``run.alert()``: a message a run raises for whoever watches it, as in wandb.

wandb sends alerts to Slack or e-mail through its cloud; nbtrack keeps them: each is
stored with its time and step (``Api().run(...).alerts()``), printed once on stderr, and
shown as a banner in the run's panel.  An alert with the same title within
``wait_duration`` of the last one (default one minute) is left out, as wandb does.
"""

from __future__ import annotations

import datetime
import enum
import time
from typing import Any

from . import diagnostics, events
from .errors import UsageError
from .naming import check_text

DEFAULT_WAIT = 60.0
MAX_TITLE = 256
MAX_TEXT = 64 * 1024


class AlertLevel(str, enum.Enum):
    """How serious an alert is."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def _seconds(wait_duration: Any) -> float:
    if wait_duration is None:
        return DEFAULT_WAIT
    if isinstance(wait_duration, datetime.timedelta):
        return wait_duration.total_seconds()
    if isinstance(wait_duration, bool) or not isinstance(wait_duration, (int, float)) or not wait_duration >= 0:
        raise UsageError(f"alert: wait_duration must be seconds (>= 0) or a timedelta, got {wait_duration!r}")
    return float(wait_duration)


def _level(level: Any) -> AlertLevel:
    if isinstance(level, AlertLevel):
        return level
    if isinstance(level, str) and level.upper() in AlertLevel.__members__:
        return AlertLevel[level.upper()]
    raise UsageError(f"alert: level must be nbtrack.AlertLevel.INFO, WARN or ERROR, got {level!r}")


class AlertMethods:
    """``Run.alert``."""

    _sink: Any
    _step: int
    _id: str
    _name: str
    _alerted: dict[str, float]

    def _check_writable(self, what: str) -> None: ...

    def alert(
        self,
        title: str,
        text: str,
        level: str | AlertLevel | None = None,
        wait_duration: int | float | datetime.timedelta | None = None,
    ) -> bool:
        """Raise an alert: stored with the run's time and step, printed once, shown in the
        panel.  Returns False when one with the same title came within
        ``wait_duration`` seconds (default 60) and this one was left out."""
        self._check_writable("alert")
        if not isinstance(title, str) or not title.strip():
            raise UsageError(f"alert: title must be a non-empty string, got {title!r}")
        if not isinstance(text, str):
            raise UsageError(f"alert: text must be a string, got {type(text).__name__}")
        title = check_text(title[:MAX_TITLE], "title") or ""
        text = check_text(text[:MAX_TEXT], "text", multiline=True) or ""
        kind = _level(level if level is not None else AlertLevel.INFO)
        wait = _seconds(wait_duration)
        now = time.time()
        last = self._alerted.get(title)
        if last is not None and now - last < wait:
            return False
        self._alerted[title] = now
        step = self._step
        store, pk = self._sink.store, self._sink.pk  # the key first: it may claim the run, a transaction of its own
        with store.transaction() as tx:
            tx.con.execute(
                "INSERT INTO alerts (run_pk, ts, step, level, title, text) VALUES (?, ?, ?, ?, ?, ?)",
                (pk, now, step, kind.value, title, text),
            )
        diagnostics.notice(
            f"nbtrack alert ({kind.value}) from run {self._name} ({self._id}) at step {step}: {title}: {text}"
        )
        events.bus.emit(
            events.ALERT, run=self, alert={"ts": now, "step": step, "level": kind.value, "title": title, "text": text}
        )
        return True


def listed(con: Any, run_pk: int) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT ts, step, level, title, text FROM alerts WHERE run_pk = ? ORDER BY id", (run_pk,)
    ).fetchall()
    return [dict(zip(("ts", "step", "level", "title", "text"), r, strict=True)) for r in rows]
