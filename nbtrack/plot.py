"""``nbtrack.plot``: charts to log, with wandb's names and arguments.

Each function returns a ``Chart``: a ``Table`` of the data plus a small spec saying
how to draw it.  ``run.log({"roc": nbtrack.plot.roc_curve(y, probas)})`` stores the
table like any table and the spec in the row; the panel draws it (lines and scatter
with uPlot, bars and histograms and the confusion matrix as SVG and HTML).  ROC, PR
and confusion matrix values are computed here with numpy (no scikit-learn needed).

Specs: ``{"kind": "line"|"scatter"|"bar"|"histogram"|"line_series"|"confusion_matrix"|
"roc_curve"|"pr_curve", "title": ..., "x": column, "y": column, "series": column}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .media import Chart, Table

__all__ = ["Chart", "bar", "confusion_matrix", "histogram", "line", "line_series", "pr_curve", "roc_curve", "scatter"]

MAX_CURVE_POINTS = 2000  # points kept per ROC / PR curve (evenly spaced thresholds)


def _check_table(table: Any, where: str, *columns: str) -> Table:
    if not isinstance(table, Table):
        raise TypeError(f"plot.{where}: table must be an nbtrack.Table, got {type(table).__name__}")
    for column in columns:
        if column not in table.columns:
            raise ValueError(f"plot.{where}: {column!r} is not a column of the table ({', '.join(table.columns)})")
    return table


def line(
    table: Table, x: str, y: str, stroke: str | None = None, title: str | None = None, split_table: bool = False
) -> Chart:
    """A line of column ``y`` against column ``x``; ``stroke`` names a column that
    splits it into one line per value."""
    _check_table(table, "line", x, y, *([stroke] if stroke else []))
    return Chart(table, {"kind": "line", "x": x, "y": y, "series": stroke, "title": title or ""})


def scatter(table: Table, x: str, y: str, title: str | None = None, split_table: bool = False) -> Chart:
    """Points of column ``y`` against column ``x``."""
    _check_table(table, "scatter", x, y)
    return Chart(table, {"kind": "scatter", "x": x, "y": y, "title": title or ""})


def bar(table: Table, label: str, value: str, title: str | None = None, split_table: bool = False) -> Chart:
    """One bar per row: its ``label`` column and its ``value`` column."""
    _check_table(table, "bar", label, value)
    return Chart(table, {"kind": "bar", "x": label, "y": value, "title": title or ""})


def histogram(table: Table, value: str, title: str | None = None, split_table: bool = False) -> Chart:
    """The distribution of column ``value`` (binned by the panel)."""
    _check_table(table, "histogram", value)
    return Chart(table, {"kind": "histogram", "x": value, "title": title or ""})


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[float]],
    keys: Sequence[str] | None = None,
    title: str | None = None,
    xname: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Several lines over one x (``xs``) or one x per line (a list of lists)."""
    ys = [list(_values(y)) for y in ys]
    if keys is not None and len(keys) != len(ys):
        raise ValueError(f"plot.line_series: {len(keys)} keys for {len(ys)} lines")
    names = [str(k) for k in keys] if keys is not None else [f"key_{i}" for i in range(len(ys))]
    xs_list = list(_values(xs))
    per_line = bool(xs_list) and isinstance(xs_list[0], (list, tuple))  # one x list per line
    table = Table(columns=["lineKey", "lineVal", "step"])
    for i, y in enumerate(ys):
        x = list(_values(xs_list[i])) if per_line else xs_list
        if len(x) != len(y):
            raise ValueError(f"plot.line_series: line {names[i]!r} has {len(y)} values for {len(x)} x values")
        for xv, yv in zip(x, y, strict=True):
            table.add_data(names[i], yv, xv)
    return Chart(
        table,
        {"kind": "line", "x": "step", "y": "lineVal", "series": "lineKey", "title": title or "", "xname": xname or "x"},
    )


def _values(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        detach = getattr(value, "detach", None)
        return (detach().cpu() if callable(detach) else value).tolist()
    return value


def _labels(labels: Sequence[Any] | None, count: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(count)]
    labels = [str(label) for label in labels]
    if len(labels) < count:
        raise ValueError(f"plot: {len(labels)} labels for {count} classes")
    return labels


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Counts of each (actual, predicted) class pair, from ``preds`` (class indices)
    or ``probs`` (one row of class scores per item: its argmax)."""
    import numpy as np

    if y_true is None or (probs is None) == (preds is None):
        raise ValueError("plot.confusion_matrix: pass y_true and either preds or probs")
    actual = np.asarray(_values(y_true)).astype(int).ravel()
    predicted = (
        np.asarray(_values(preds)).astype(int).ravel()
        if preds is not None
        else np.asarray(_values(probs)).argmax(axis=1)
    )
    if actual.shape != predicted.shape:
        raise ValueError(f"plot.confusion_matrix: {actual.size} labels for {predicted.size} predictions")
    count = int(max(actual.max(initial=-1), predicted.max(initial=-1)) + 1)
    if class_names is not None:
        count = max(count, len(class_names))
    names = _labels(class_names, count)
    counts = np.zeros((count, count), dtype=int)
    np.add.at(counts, (actual, predicted), 1)
    table = Table(columns=["Actual", "Predicted", "nPredictions"])
    for i in range(count):
        for j in range(count):
            table.add_data(names[i], names[j], int(counts[i, j]))
    return Chart(
        table,
        {
            "kind": "confusion_matrix",
            "x": "Predicted",
            "y": "Actual",
            "value": "nPredictions",
            "classes": names,
            "title": title or "Confusion Matrix",
        },
    )


def _one_vs_rest(
    y_true: Any, y_probas: Any, labels: Sequence[str] | None, classes_to_plot: Sequence[Any] | None
) -> tuple[Any, Any, list[tuple[int, str]]]:
    import numpy as np

    actual = np.asarray(_values(y_true)).ravel()
    scores = np.asarray(_values(y_probas), dtype=float)
    if scores.ndim == 1:
        scores = np.stack([1 - scores, scores], axis=1)
    if scores.shape[0] != actual.size:
        raise ValueError(f"plot: {actual.size} labels for {scores.shape[0]} rows of scores")
    names = _labels(labels, scores.shape[1])
    chosen = (
        range(scores.shape[1])
        if classes_to_plot is None
        else [c if isinstance(c, int) else names.index(str(c)) for c in classes_to_plot]
    )
    if scores.shape[1] == 2 and classes_to_plot is None:
        chosen = [1]
    return actual, scores, [(int(c), names[int(c)]) for c in chosen]


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_CURVE_POINTS:
        return points
    step = len(points) / MAX_CURVE_POINTS
    return [points[int(i * step)] for i in range(MAX_CURVE_POINTS)] + [points[-1]]


def _curve_counts(positive: Any, score: Any) -> tuple[Any, Any]:
    """True and false positives at each distinct threshold, highest first."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tp = np.cumsum(positive)[last_of_threshold]
    fp = (last_of_threshold + 1) - tp
    return tp, fp


def _curves(
    y_true: Any,
    y_probas: Any,
    labels: Sequence[str] | None,
    classes_to_plot: Sequence[Any] | None,
    columns: list[str],
    points: Any,
) -> Table:
    """One curve per class (one vs rest): ``points(tp, fp, positives, negatives)`` turns
    the counts at each threshold into the curve's (x, y) points."""
    actual, scores, chosen = _one_vs_rest(y_true, y_probas, labels, classes_to_plot)
    table = Table(columns=columns)
    for index, name in chosen:
        positive = (actual == index) if actual.dtype.kind in "iub" else (actual.astype(str) == name)
        tp, fp = _curve_counts(positive.astype(int), scores[:, index])
        p, n = max(int(positive.sum()), 1), max(int((~positive).sum()), 1)
        for x, y in _thin(points(tp, fp, p, n)):
            table.add_data(name, round(x, 6), round(y, 6))
    return table


def roc_curve(
    y_true: Any,
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Receiver operating characteristic, one curve per class (one vs rest)."""

    def points(tp: Any, fp: Any, p: int, n: int) -> list[tuple[float, float]]:
        return [(0.0, 0.0)] + [(float(f / n), float(t / p)) for t, f in zip(tp, fp, strict=True)]

    table = _curves(y_true, y_probas, labels, classes_to_plot, ["class", "fpr", "tpr"], points)
    return Chart(table, {"kind": "roc_curve", "x": "fpr", "y": "tpr", "series": "class", "title": title or "ROC"})


def pr_curve(
    y_true: Any,
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    interp_size: int = 21,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Precision against recall, one curve per class (one vs rest)."""

    def points(tp: Any, fp: Any, p: int, n: int) -> list[tuple[float, float]]:
        return [(0.0, 1.0)] + [(float(t / p), float(t / (t + f))) for t, f in zip(tp, fp, strict=True)]

    table = _curves(y_true, y_probas, labels, classes_to_plot, ["class", "recall", "precision"], points)
    return Chart(
        table,
        {
            "kind": "pr_curve",
            "x": "recall",
            "y": "precision",
            "series": "class",
            "title": title or "Precision v. Recall",
        },
    )
