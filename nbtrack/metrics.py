"""``define_metric``: how a logged key is summarised and plotted, as in wandb.

``run.define_metric("val/loss", summary="min,last", goal="minimize")`` makes the
summary of ``val/loss`` a dict ``{"min": ..., "last": ...}`` instead of the last
value; ``step_metric="epoch"`` plots it against ``epoch`` (in the panel, and as
``x_axis`` in ``Api``'s history) and, with ``step_sync`` (the default), adds the latest
``epoch`` to each row that logs ``val/loss`` without it; ``hidden=True`` keeps it off the
panel's charts.  Names may be globs (``"val/*"``): a definition of the exact name
wins over a glob, and of several globs the latest definition wins.

Only rows logged after ``define_metric`` are summarised by it; a resumed run picks
up ``min``, ``max``, ``first`` and ``best`` from the stored summary.  ``mean`` is over
the values logged since the definition in this process.
"""

from __future__ import annotations

import fnmatch
import math
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .records import Record

if TYPE_CHECKING:
    from .store.local import LocalStore

SUMMARIES = ("min", "max", "mean", "first", "last", "best", "copy", "none")
GOALS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}
_NONE = object()


class Metric(Record):
    """A definition made by ``define_metric`` (what it returns)."""

    name: str
    step_metric: str | None = None
    step_sync: bool | None = None
    hidden: bool = False
    summary: tuple[str, ...] = ()
    goal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["summary"] = list(self.summary)
        return data


def parse(
    name: Any,
    step_metric: Any = None,
    step_sync: Any = None,
    hidden: Any = None,
    summary: Any = None,
    goal: Any = None,
) -> Metric:
    """Check ``define_metric``'s arguments; a ``Metric``."""
    if not isinstance(name, str) or not name or (name.startswith("_") and name != "_step"):
        raise UsageError(f"define_metric: name must be a metric name or a glob such as 'val/*', got {name!r}")
    if step_metric is not None and (not isinstance(step_metric, str) or not step_metric or "*" in step_metric):
        raise UsageError(f"define_metric: step_metric must be the name of a logged key, got {step_metric!r}")
    for argument, value in (("step_sync", step_sync), ("hidden", hidden)):
        if value is not None and not isinstance(value, bool):
            raise UsageError(f"define_metric: {argument} must be True or False, got {value!r}")
    kinds: tuple[str, ...] = ()
    if summary is not None:
        if not isinstance(summary, str):
            raise UsageError(f"define_metric: summary must be a string such as 'min,max', got {summary!r}")
        kinds = tuple(dict.fromkeys(s.strip().lower() for s in summary.split(",") if s.strip()))
        unknown = [s for s in kinds if s not in SUMMARIES]
        if unknown:
            raise UsageError(
                f"define_metric: summary {', '.join(map(repr, unknown))} is not one of {', '.join(SUMMARIES)} "
                "(combine them with commas: 'min,last')"
            )
        if "none" in kinds and len(kinds) > 1:
            raise UsageError("define_metric: summary 'none' cannot be combined with others")
    if goal is not None:
        if not isinstance(goal, str) or goal.lower() not in GOALS:
            raise UsageError(f"define_metric: goal must be 'minimize' or 'maximize', got {goal!r}")
        goal = GOALS[goal.lower()]
    if "best" in kinds and goal is None:
        goal = "minimize"  # as wandb: best without a goal is the lowest
    if step_metric is not None and step_sync is None:
        step_sync = True
    return Metric(name, step_metric, step_sync, bool(hidden), kinds, goal)


class MetricRules:
    """The definitions of one run, applied to each logged row (under the run's lock)."""

    def __init__(self) -> None:
        self.defined: dict[str, Metric] = {}  # in definition order
        self._for_key: dict[str, Metric | None] = {}
        self._mean: dict[str, tuple[float, int]] = {}
        self._last_step_value: dict[str, Any] = {}
        self.step_metrics: set[str] = set()

    def add(self, metric: Metric) -> None:
        self.defined.pop(metric.name, None)
        self.defined[metric.name] = metric
        self._for_key.clear()
        self.step_metrics = {m.step_metric for m in self.defined.values() if m.step_metric}

    def lookup(self, key: str) -> Metric | None:
        found = self._for_key.get(key, _NONE)
        if found is _NONE:
            found = self.defined.get(key)
            if found is None:
                for metric in reversed(self.defined.values()):
                    if "*" in metric.name and fnmatch.fnmatchcase(key, metric.name):
                        found = metric
                        break
            self._for_key[key] = found
        return found  # type: ignore[return-value]

    def apply(self, row: dict[str, Any], summary: dict[str, Any]) -> None:
        """Sync step metrics into ``row`` and update ``summary`` with it (in place)."""
        for key in self.step_metrics:
            if key in row:
                self._last_step_value[key] = row[key]
        synced = None
        for key in list(row):
            metric = self.lookup(key)
            if metric is None:
                summary[key] = row[key]
                continue
            step_metric = metric.step_metric
            if (
                metric.step_sync
                and step_metric is not None
                and step_metric != key
                and step_metric not in row
                and step_metric in self._last_step_value
            ):
                synced = synced or {}
                synced[step_metric] = self._last_step_value[step_metric]
            self._summarise(key, row[key], metric, summary)
        if synced:
            row.update(synced)
            for key, value in synced.items():
                summary.setdefault(key, value)

    def _summarise(self, key: str, value: Any, metric: Metric, summary: dict[str, Any]) -> None:
        kinds = metric.summary
        if not kinds or "copy" in kinds:
            summary[key] = value
            return
        if "none" in kinds:
            summary.pop(key, None)
            return
        number = type(value) in (int, float) and not (type(value) is float and math.isnan(value))
        old = summary.get(key)
        out = dict(old) if type(old) is dict and "_type" not in old else {}
        if "last" in kinds:
            out["last"] = value
        if "first" in kinds and "first" not in out:
            out["first"] = value
        if number:
            if "min" in kinds and ("min" not in out or value < out["min"]):
                out["min"] = value
            if "max" in kinds and ("max" not in out or value > out["max"]):
                out["max"] = value
            if "best" in kinds:
                best = out.get("best")
                if best is None or (value > best if metric.goal == "maximize" else value < best):
                    out["best"] = value
            if "mean" in kinds:
                total, count = self._mean.get(key, (0.0, 0))
                total, count = total + value, count + 1
                self._mean[key] = (total, count)
                out["mean"] = total / count
        summary[key] = out

    def hidden(self, key: str) -> bool:
        metric = self.lookup(key)
        return metric is not None and metric.hidden

    def step_metric(self, key: str) -> str | None:
        metric = self.lookup(key)
        return None if metric is None else metric.step_metric


def save(store: LocalStore, run_pk: int, metric: Metric) -> None:
    import json

    with store.transaction() as tx:
        tx.con.execute(
            "INSERT OR REPLACE INTO metric_definitions (run_pk, name, data) VALUES (?, ?, ?)",
            (run_pk, metric.name, json.dumps(metric.as_dict())),
        )


def load(con: Any, run_pk: int) -> list[Metric]:
    import json

    rows = con.execute("SELECT data FROM metric_definitions WHERE run_pk = ? ORDER BY rowid", (run_pk,)).fetchall()
    out = []
    for (data,) in rows:
        fields = json.loads(data)
        fields["summary"] = tuple(fields.get("summary") or ())
        out.append(Metric(**fields))
    return out


class MetricMethods:
    """``Run.define_metric``."""

    _lock: Any
    _sink: Any
    _metrics: MetricRules | None

    def _check_writable(self, what: str) -> None: ...

    def define_metric(
        self,
        name: str,
        step_metric: str | Metric | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        """Say how ``name`` (or a glob such as ``"val/*"``) is summarised and plotted.

        Parameters
        ----------
        step_metric
            The key to plot it against (``"epoch"``); with ``step_sync`` (default
            True then), rows that log ``name`` without it get its latest value.
        hidden
            Keep it off the panel's charts.
        summary
            ``"min"``, ``"max"``, ``"mean"``, ``"first"``, ``"last"``, ``"best"`` or
            ``"none"``, combined with commas: the summary of ``name`` becomes a dict of
            them (``run.summary["loss"]["min"]``); ``"none"`` leaves it out.
        goal
            ``"minimize"`` or ``"maximize"``: what ``best`` means.
        overwrite
            False keeps the fields of an earlier definition of ``name`` that this call
            does not give; True (the default) replaces it.
        """
        self._check_writable("define_metric")
        if isinstance(step_metric, Metric):
            step_metric = step_metric.name
        metric = parse(name, step_metric, step_sync, hidden, summary, goal)
        with self._lock:
            rules = self._metrics if self._metrics is not None else MetricRules()
            old = rules.defined.get(metric.name)
            if old is not None and overwrite is False:
                metric = Metric(
                    metric.name,
                    step_metric if step_metric is not None else old.step_metric,
                    step_sync if step_sync is not None else old.step_sync,
                    hidden if hidden is not None else old.hidden,
                    metric.summary if summary is not None else old.summary,
                    metric.goal if goal is not None else old.goal,
                )
            rules.add(metric)
            self._metrics = rules
        save(self._sink.store, self._sink.pk, metric)
        return metric

    @property
    def metric_definitions(self) -> list[Metric]:
        """What ``define_metric`` defined, in order."""
        return [] if self._metrics is None else list(self._metrics.defined.values())
