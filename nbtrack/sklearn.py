"""``nbtrack.sklearn`` (wandb's ``wandb.sklearn``): scikit-learn plots, computed with scikit-learn and
logged to the current run as ``nbtrack.plot`` charts the panel draws.

Each ``plot_*`` logs under wandb's key (``confusion_matrix``, ``roc``, ``pr``,
``learning_curve``, ``feature_importances``, ``class_proportions``,
``calibration_curve``, ``summary_metrics``, ``elbow_curve``, ``silhouette_plot``,
``residuals``, ``outlier_candidates``) and returns the chart.  ``plot_classifier``,
``plot_regressor`` and ``plot_clusterer`` log the set that fits the model.  Needs
``pip install nbtrack[sklearn]``.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from typing import Any

from . import plot
from .errors import Error, UsageError
from .media import Chart, Table

MAX_BARS = 100  # outlier candidates shown (the largest Cook's distances)


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError:
        raise UsageError("nbtrack.sklearn needs scikit-learn: pip install 'nbtrack[sklearn]'") from None
    return sklearn


def _log(key: str, chart: Chart) -> Chart:
    from .manager import manager

    run = manager.current
    if run is None:
        raise Error(f"nbtrack.sklearn: call nbtrack.init() before logging {key}")
    run.log({key: chart})
    return chart


def _np(value: Any) -> Any:
    import numpy as np

    return np.asarray(value)


def _names(labels: Sequence[Any] | None, classes: Any) -> list[str]:
    if labels is None:
        return [str(c) for c in classes]
    # integer classes index the labels, as in wandb; others are their own names
    return [
        str(labels[int(c)]) if isinstance(c, numbers.Integral) and 0 <= int(c) < len(labels) else str(c)
        for c in classes
    ]


# ------------------------------------------------------------------ single plots
def plot_confusion_matrix(
    y_true: Any = None,
    y_pred: Any = None,
    labels: Sequence[Any] | None = None,
    true_labels: Any = None,
    pred_labels: Any = None,
    normalize: bool = False,
) -> Chart:
    _sklearn()
    import numpy as np

    y_true, y_pred = _np(y_true), _np(y_pred)
    classes = np.unique(np.concatenate([y_true, y_pred]))
    index = {c: i for i, c in enumerate(classes)}
    chart = plot.confusion_matrix(
        y_true=[index[c] for c in y_true], preds=[index[c] for c in y_pred], class_names=_names(labels, classes)
    )
    if normalize:
        rows: dict[str, int] = {}
        for actual, _p, n in chart.table.data:
            rows[actual] = rows.get(actual, 0) + n
        chart.table.data = [[a, p, round(n / rows[a], 4) if rows[a] else 0.0] for a, p, n in chart.table.data]
    return _log("confusion_matrix", chart)


def plot_roc(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[Any] | None = None,
    plot_micro: bool = True,
    plot_macro: bool = True,
    classes_to_plot: Any = None,
) -> Chart:
    _sklearn()
    import numpy as np

    classes = np.unique(_np(y_true))
    index = {c: i for i, c in enumerate(classes)}
    chart = plot.roc_curve(
        [index[c] for c in _np(y_true)], y_probas, labels=_names(labels, classes), classes_to_plot=classes_to_plot
    )
    return _log("roc", chart)


def plot_precision_recall(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[Any] | None = None,
    plot_micro: bool = True,
    classes_to_plot: Any = None,
) -> Chart:
    _sklearn()
    import numpy as np

    classes = np.unique(_np(y_true))
    index = {c: i for i, c in enumerate(classes)}
    chart = plot.pr_curve(
        [index[c] for c in _np(y_true)], y_probas, labels=_names(labels, classes), classes_to_plot=classes_to_plot
    )
    return _log("pr", chart)


def plot_feature_importances(
    model: Any = None,
    feature_names: Sequence[str] | None = None,
    title: str = "Feature Importance",
    max_num_features: int = 50,
) -> Chart | None:
    import numpy as np

    importances = getattr(model, "feature_importances_", None)
    if importances is None:
        coef = getattr(model, "coef_", None)
        if coef is None:
            return None  # the model has no importances to show (as wandb, nothing is logged)
        importances = np.abs(np.asarray(coef)).reshape(-1, np.asarray(coef).shape[-1]).mean(axis=0)
    importances = np.asarray(importances, dtype=float)
    names = list(feature_names) if feature_names is not None else [f"feature {i}" for i in range(len(importances))]
    order = np.argsort(-importances)[:max_num_features]
    table = Table(columns=["feature_names", "importance"], data=[[str(names[i]), float(importances[i])] for i in order])
    return _log("feature_importances", plot.bar(table, "feature_names", "importance", title=title))


def plot_class_proportions(y_train: Any = None, y_test: Any = None, labels: Sequence[Any] | None = None) -> Chart:
    import numpy as np

    y_train, y_test = _np(y_train), _np(y_test)
    classes = np.unique(np.concatenate([y_train, y_test]))
    names = _names(labels, classes)
    table = Table(columns=["class", "dataset", "count"])
    for name, c in zip(names, classes, strict=True):
        table.add_data(f"{name} (train)", "train", int((y_train == c).sum()))
        table.add_data(f"{name} (test)", "test", int((y_test == c).sum()))
    return _log("class_proportions", plot.bar(table, "class", "count", title="Class Proportions"))


def plot_summary_metrics(
    model: Any = None, X: Any = None, y: Any = None, X_test: Any = None, y_test: Any = None
) -> Chart:
    _sklearn()
    from sklearn import metrics
    from sklearn.base import is_classifier

    predicted = model.predict(X_test)
    if is_classifier(model):
        values = {
            "accuracy": metrics.accuracy_score(y_test, predicted),
            "precision": metrics.precision_score(y_test, predicted, average="weighted", zero_division=0),
            "recall": metrics.recall_score(y_test, predicted, average="weighted", zero_division=0),
            "f1": metrics.f1_score(y_test, predicted, average="weighted", zero_division=0),
        }
    else:
        values = {
            "mae": metrics.mean_absolute_error(y_test, predicted),
            "mse": metrics.mean_squared_error(y_test, predicted),
            "r2": metrics.r2_score(y_test, predicted),
        }
    table = Table(columns=["metric_name", "metric_value"], data=[[k, round(float(v), 6)] for k, v in values.items()])
    return _log("summary_metrics", plot.bar(table, "metric_name", "metric_value", title="Summary Metrics"))


def plot_learning_curve(
    model: Any = None,
    X: Any = None,
    y: Any = None,
    cv: Any = None,
    shuffle: bool = False,
    random_state: Any = None,
    train_sizes: Any = None,
    n_jobs: int = 1,
    scoring: Any = None,
) -> Chart:
    _sklearn()
    import numpy as np
    from sklearn.model_selection import learning_curve

    sizes, train, test = learning_curve(
        model,
        X,
        y,
        cv=cv,
        shuffle=shuffle,
        random_state=random_state,
        n_jobs=n_jobs,
        scoring=scoring,
        train_sizes=np.linspace(0.1, 1.0, 5) if train_sizes is None else train_sizes,
    )
    table = Table(columns=["dataset", "score", "train_size"])
    for name, scores in (("train", train), ("test", test)):
        for size, score in zip(sizes, scores.mean(axis=1), strict=True):
            table.add_data(name, float(score), int(size))
    return _log("learning_curve", plot.line(table, "train_size", "score", stroke="dataset", title="Learning Curve"))


def plot_calibration_curve(clf: Any = None, X: Any = None, y: Any = None, clf_name: str = "Classifier") -> Chart:
    _sklearn()
    from sklearn.calibration import calibration_curve
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)
    model = clf.fit(X_train, y_train)
    if hasattr(model, "predict_proba"):
        scores = model.predict_proba(X_test)[:, 1]
    else:
        raw = model.decision_function(X_test)
        scores = (raw - raw.min()) / (raw.max() - raw.min() or 1)
    positives, predicted = calibration_curve(y_test, scores, n_bins=10)
    table = Table(columns=["model", "fraction_of_positives", "mean_predicted_value"])
    table.add_data("Perfectly calibrated", 0.0, 0.0)
    table.add_data("Perfectly calibrated", 1.0, 1.0)
    for p, m in zip(positives, predicted, strict=True):
        table.add_data(clf_name, float(p), float(m))
    chart = plot.line(table, "mean_predicted_value", "fraction_of_positives", stroke="model", title="Calibration Curve")
    return _log("calibration_curve", chart)


def plot_elbow_curve(
    clusterer: Any = None, X: Any = None, cluster_ranges: Any = None, n_jobs: int = 1, show_cluster_time: bool = True
) -> Chart:
    _sklearn()
    from sklearn.base import clone

    ranges = list(cluster_ranges) if cluster_ranges is not None else list(range(1, 10, 2))
    table = Table(columns=["cluster_ranges", "errors", "clustering_time"])
    for k in ranges:
        model = clone(clusterer).set_params(n_clusters=k)
        start = time.perf_counter()
        model.fit(X)
        table.add_data(
            int(k),
            float(-model.score(X)) if hasattr(model, "score") else float(model.inertia_),
            time.perf_counter() - start,
        )
    return _log("elbow_curve", plot.line(table, "cluster_ranges", "errors", title="Elbow Plot"))


def plot_silhouette(
    clusterer: Any = None,
    X: Any = None,
    cluster_labels: Any = None,
    labels: Any = None,
    metric: str = "euclidean",
    kmeans: bool = True,
) -> Chart:
    _sklearn()
    import numpy as np
    from sklearn.metrics import silhouette_samples

    assigned = _np(cluster_labels) if cluster_labels is not None else clusterer.fit_predict(X)
    values = silhouette_samples(X, assigned, metric=metric)
    table = Table(columns=["cluster", "silhouette", "sample"])
    position = 0
    for cluster in np.unique(assigned):
        for value in np.sort(values[assigned == cluster]):
            table.add_data(str(cluster), float(value), position)
            position += 1
        position += 5  # a gap between clusters
    return _log("silhouette_plot", plot.line(table, "sample", "silhouette", stroke="cluster", title="Silhouette"))


def plot_residuals(regressor: Any = None, X: Any = None, y: Any = None) -> Chart:
    _sklearn()
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    model = regressor.fit(X_train, y_train)
    table = Table(columns=["dataset", "y_pred", "residuals"])
    for name, xs, ys in (("train", X_train, y_train), ("test", X_test, y_test)):
        predicted = model.predict(xs)
        for p, actual in zip(predicted, _np(ys), strict=True):
            table.add_data(name, float(p), float(actual - p))
    return _log("residuals", plot.scatter(table, "y_pred", "residuals", title="Residuals"))


def plot_outlier_candidates(regressor: Any = None, X: Any = None, y: Any = None) -> Chart:
    """Cook's distance of each sample under a least-squares fit of ``X`` (the largest
    ``MAX_BARS``)."""
    import numpy as np

    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    design = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    leverage = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
    p = design.shape[1]
    mse = (residuals @ residuals) / max(1, len(y) - p)
    distance = residuals**2 / (p * mse) * leverage / (1 - leverage) ** 2
    order = np.argsort(-distance)[:MAX_BARS]
    table = Table(columns=["sample", "distance"], data=[[str(int(i)), float(distance[i])] for i in sorted(order)])
    return _log("outlier_candidates", plot.bar(table, "sample", "distance", title="Cook's Distance Outlier Detection"))


# ------------------------------------------------------------------ sets
def plot_classifier(
    model: Any,
    X_train: Any,
    X_test: Any,
    y_train: Any,
    y_test: Any,
    y_pred: Any,
    y_probas: Any,
    labels: Sequence[Any] | None = None,
    is_binary: bool | None = None,
    model_name: str = "Classifier",
    feature_names: Sequence[str] | None = None,
    log_learning_curve: bool = False,
) -> None:
    """Summary metrics, class proportions, confusion matrix, ROC and PR curves,
    feature importances (when the model has them), the calibration curve (binary),
    and the learning curve when asked."""
    _sklearn()
    import numpy as np

    plot_summary_metrics(model, X_train, y_train, X_test, y_test)
    plot_class_proportions(y_train, y_test, labels)
    plot_confusion_matrix(y_test, y_pred, labels)
    plot_roc(y_test, y_probas, labels)
    plot_precision_recall(y_test, y_probas, labels)
    plot_feature_importances(model, feature_names)
    if is_binary or (is_binary is None and len(np.unique(_np(y_train))) == 2):
        from sklearn.base import clone

        plot_calibration_curve(
            clone(model), np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test]), model_name
        )
    if log_learning_curve:
        plot_learning_curve(model, X_train, y_train)


def plot_regressor(
    model: Any, X_train: Any, X_test: Any, y_train: Any, y_test: Any, model_name: str = "Regressor"
) -> None:
    """Summary metrics, learning curve, residuals and outlier candidates."""
    _sklearn()
    from sklearn.base import clone

    plot_summary_metrics(model, X_train, y_train, X_test, y_test)
    plot_learning_curve(clone(model), X_train, y_train)
    plot_residuals(clone(model), X_train, y_train)
    plot_outlier_candidates(model, X_train, y_train)


def plot_clusterer(
    model: Any, X_train: Any, cluster_labels: Any, labels: Any = None, model_name: str = "Clusterer"
) -> None:
    """The elbow curve (for models with ``n_clusters``) and the silhouette plot."""
    _sklearn()
    if "n_clusters" in model.get_params():
        plot_elbow_curve(model, X_train)
    plot_silhouette(model, X_train, cluster_labels, labels)
