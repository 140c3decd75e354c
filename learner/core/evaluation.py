"""Prequential evaluation: River metrics, overall and over a rolling window.

Each metric is updated exactly as ``river.evaluate.progressive_val_score`` updates it (the
label for label metrics, the probabilities otherwise, nothing when the model had no
prediction yet), so the service's online metric is the number an offline replay would give.

The rolling window is kept as the last ``window`` scored predictions, not as River's
``utils.Rolling`` metrics: those update *and* revert a metric on every event, which made scoring
the most expensive thing the gateway did per event. The window's metrics are computed from the
kept predictions when they are read (every second for ``/metrics``, at each guard check, at each
snapshot); the value is River's metric over exactly the last ``window`` predictions.

The gateway scores a whole batch at once (:meth:`Evaluation.update_batch`): a metric that only
counts (a confusion matrix: Accuracy, F1, MacroF1, ...) adds each distinct (label, prediction)
pair's count once, and a running mean (LogLoss, MAE, RMSE, ...) runs River's own arithmetic in one
loop instead of two calls per event (LogLoss, the default binary metric, with its loss written in).
Both leave exactly the state event-by-event updates leave (counts are whole numbers, the mean's
operations are the same in the same order); any other metric is updated event by event.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from river import metrics as river_metrics
from river import stats, utils

from learner.core.models import ModelKind, Task
from learner.errors import MetricError

__all__ = ["DEFAULT_METRICS", "DEFAULT_WINDOW", "Evaluation", "MetricError", "RollingValue", "Scored", "Tracked",
           "metrics_for", "shown"]

DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("Accuracy", "LogLoss"),
    "multiclass": ("Accuracy", "MacroF1"),
    "regression": ("MAE", "RMSE"),
    "anomaly": ("ROCAUC",),
}
DEFAULT_WINDOW = 1000

#: One scored prediction, kept for the rolling window: (label, predicted label, probabilities).
Scored = tuple[Any, Any, "dict[Any, float] | None"]
#: Updates one metric with a batch of scored predictions, in order.
BatchUpdate = Callable[[list[Scored]], None]
#: A scored prediction's (label, predicted label).
_LABEL_PAIR = itemgetter(0, 1)


@dataclass
class Tracked:
    """One metric over the whole stream: its name, the River metric, whether it takes probabilities."""

    name: str
    metric: Any
    wants_proba: bool


def metrics_for(kind: ModelKind, names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The metrics to track: the ones asked for, checked against the model, or the task's defaults.

    A classifier without probabilities (one-vs-one) cannot be scored by LogLoss; a supervised
    anomaly detector scores a value, not an anomaly label, so it has no default metric.

    >>> from learner.core.models import ModelKind
    >>> metrics_for(ModelKind("binary", "label", False))
    ('Accuracy',)
    >>> metrics_for(ModelKind("binary", "label", False), ("LogLoss",))
    Traceback (most recent call last):
    ...
    learner.errors.MetricError: LogLoss needs class probabilities, and this classifier gives none
    """
    if kind.predicts == "label_score":
        return names
    has_proba = kind.predicts in ("proba", "label_proba")
    if not names:
        return tuple(n for n in DEFAULT_METRICS[kind.task] if has_proba or not _wants_proba(kind.task, n))
    for name in names:
        if not has_proba and _wants_proba(kind.task, name):
            raise MetricError(f"{name} needs class probabilities, and this classifier gives none")
    return names


def shown(values: dict[str, dict[str, float]], names: tuple[str, ...] = ()) -> str:
    """Metrics as a progress line shows them: "—" until one exists, never a made-up 0.0000.

    >>> shown({"Accuracy": {"all": 0.8125, "1000": 0.75}}), shown({}, ("Accuracy", "LogLoss")), shown({})
    ('Accuracy 0.8125', 'Accuracy —  LogLoss —', 'metrics —')
    """
    if not values:
        return "  ".join(f"{name} —" for name in names) or "metrics —"
    return "  ".join(f"{name} {windows['all']:.4f}" for name, windows in values.items())


def _wants_proba(task: Task, name: str) -> bool:
    return task in ("binary", "multiclass") and not _build(name).requires_labels


class Evaluation:
    """The online metrics of one model: ``update`` after predicting, before learning.

    >>> evaluation = Evaluation("binary", ("Accuracy",), window=2)
    >>> for y, label in [(True, True), (False, True), (True, True)]:
    ...     evaluation.update(y, label, {True: 0.9, False: 0.1})
    >>> evaluation.values()
    {'Accuracy': {'all': 0.666..., '2': 0.5}}
    """

    def __init__(self, task: Task, names: tuple[str, ...] | None = None, window: int = DEFAULT_WINDOW) -> None:
        self.task = task
        self.window = window
        self.tracked = [_track(task, name) for name in (DEFAULT_METRICS[task] if names is None else names)]
        self.recent: deque[Scored] = deque(maxlen=window or 1)
        self._bind()

    def _bind(self) -> None:
        """The per-event path: bound update methods, split by what they take."""
        self._on_label = [t.metric.update for t in self.tracked if not t.wants_proba]
        self._on_proba = [t.metric.update for t in self.tracked if t.wants_proba]
        self._keep = self.recent.append if self.window else None
        self._batch_updates = [_batch_update(t.metric, t.wants_proba) for t in self.tracked]

    def update(self, y: Any, prediction: Any, proba: dict[Any, float] | None) -> None:
        """Score one prediction against its label; an empty prediction is not scored (as River does)."""
        if prediction is not None:
            for update in self._on_label:
                update(y, prediction)
        if proba:
            for update in self._on_proba:
                update(y, proba)
        if self._keep is not None:
            self._keep((y, prediction, proba))

    def update_batch(self, scored: list[Scored]) -> None:
        """:meth:`update` for each of a batch's scored predictions in turn, with the same result and a
        fraction of the calls (see the module's docstring).

        >>> one, many = Evaluation("binary", ("Accuracy", "LogLoss", "F1")), Evaluation("binary", ("Accuracy", "LogLoss", "F1"))
        >>> scored = [(i % 3 == 0, i % 2 == 0, {True: i / 10, False: 1 - i / 10}) for i in range(11)] + [(True, None, None)]
        >>> for y, prediction, proba in scored:
        ...     one.update(y, prediction, proba)
        >>> many.update_batch(scored[:5]); many.update_batch(scored[5:])
        >>> one.values() == many.values() and one.recent == many.recent
        True
        """
        if not scored:
            return
        for update in self._batch_updates:
            update(scored)
        if self.window:
            self.recent.extend(scored)

    def values(self) -> dict[str, dict[str, float]]:
        """Current values: ``{metric name: {window: value}}``, windows "all" and the rolling size; nothing
        before the first scored prediction (River's metrics say 0.0 then, which reads as a real figure).

        >>> Evaluation("binary", ("Accuracy",)).values()
        {}
        """
        if self.window and not any(prediction is not None or proba for _, prediction, proba in self.recent):
            return {}  # (the first kept prediction is almost always scored: this stops there)
        out: dict[str, dict[str, float]] = {}
        for tracked in self.tracked:
            out[tracked.name] = {"all": float(tracked.metric.get())}
            if self.window:
                out[tracked.name][str(self.window)] = self._rolling(tracked)
        return out

    def bigger_is_better(self, name: str) -> bool:
        return next((bool(getattr(t.metric, "bigger_is_better", True)) for t in self.tracked if t.name == name), True)

    def _rolling(self, tracked: Tracked) -> float:
        """River's metric over the kept predictions, with the same rules as :meth:`update`."""
        metric = _build(tracked.name)
        if tracked.wants_proba:
            for y, _, proba in self.recent:
                if proba:
                    metric.update(y, proba)
        else:
            for y, prediction, _ in self.recent:
                if prediction is not None:
                    metric.update(y, prediction)
        return float(metric.get())

    def __getstate__(self) -> dict[str, Any]:
        return {"task": self.task, "tracked": self.tracked, "window": self.window, "recent": list(self.recent)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "window" not in state:  # written before rolling windows were kept as predictions
            state = _from_rolling_metrics(state)
        self.task, self.tracked, self.window = state["task"], state["tracked"], state["window"]
        self.recent = deque(state["recent"], maxlen=self.window or 1)
        self._bind()


def _from_rolling_metrics(state: dict[str, Any]) -> dict[str, Any]:
    """An older snapshot's evaluation: overall metrics kept, the rolling window starts empty."""
    overall = [Tracked(t.name, t.metric, t.wants_proba) for t in state["tracked"] if t.window == "all"]
    windows = [int(t.window) for t in state["tracked"] if t.window != "all"]
    return {"task": state["task"], "tracked": overall, "window": windows[0] if windows else 0, "recent": []}


class RollingValue:
    """One metric over the last ``window`` predictions, kept current event by event.

    For the guard, which must see a dip of the rolling metric while it lasts, not only when the
    window is read: it costs an update and a revert per event, so only the guarded metric has one.

    >>> evaluation = Evaluation("binary", ("Accuracy",), window=2)
    >>> evaluation.update(True, True, {True: 0.9, False: 0.1})
    >>> rolling = RollingValue(evaluation, "Accuracy")
    >>> rolling.update(True, False, {True: 0.4, False: 0.6})
    >>> rolling.get()
    0.5
    """

    def __init__(self, evaluation: Evaluation, name: str) -> None:
        tracked = next(t for t in evaluation.tracked if t.name == name)
        self.metric: Any = utils.Rolling(_build(name), window_size=evaluation.window or 1)
        self.wants_proba = tracked.wants_proba
        for y, prediction, proba in evaluation.recent:
            self.update(y, prediction, proba)

    def update(self, y: Any, prediction: Any, proba: dict[Any, float] | None) -> None:
        if self.wants_proba:
            if proba:
                self.metric.update(y, proba)
        elif prediction is not None:
            self.metric.update(y, prediction)

    def get(self) -> float:
        return float(self.metric.get())


def _batch_update(metric: Any, wants_proba: bool) -> BatchUpdate:
    """How a batch updates ``metric``: by counts, by one running-mean loop, or event by event.

    Only River's own classes qualify (their ``update`` not overridden, a plain confusion matrix or
    ``stats.Mean``); metrics given probabilities are not counted (a dict is no confusion-matrix key).
    """
    kind, base, given = type(metric), river_metrics.base, _probas if wants_proba else _labels
    if not wants_proba and kind.update in (base.ClassificationMetric.update, base.BinaryMetric.update) \
            and type(getattr(metric, "cm", None)) is river_metrics.ConfusionMatrix:
        return partial(_by_counts, metric)
    if kind.update is base.MeanMetric.update and type(getattr(metric, "_mean", None)) is stats.Mean:
        if kind is river_metrics.LogLoss and wants_proba:
            return partial(_by_log_loss, metric)
        return partial(_by_running_mean, metric, given)
    return partial(_one_by_one, metric.update, given)


def _labels(scored: list[Scored]) -> list[tuple[Any, Any]]:
    """What a label metric is given: (label, predicted label), when there was a prediction."""
    return [(y, prediction) for y, prediction, _ in scored if prediction is not None]


def _probas(scored: list[Scored]) -> list[tuple[Any, Any]]:
    """What a probability metric is given: (label, probabilities), when there were some."""
    return [(y, proba) for y, _, proba in scored if proba]


def _by_counts(metric: Any, scored: list[Scored]) -> None:
    """A confusion matrix only adds weights: adding ``n`` once is adding 1.0 ``n`` times, exactly
    (whole numbers below 2**53), and the pairs come in their first-seen order, as the matrix's keys did."""
    matrix = metric.cm
    for (y, prediction), n in Counter(map(_LABEL_PAIR, scored)).items():
        if prediction is not None:
            metric.update(y, prediction, float(n))
            matrix.n_samples += n - 1  # counts updates, not weight


def _by_running_mean(metric: Any, given: Callable[[list[Scored]], list[tuple[Any, Any]]], scored: list[Scored]) -> None:
    """``stats.Mean.update`` with weight 1, the same operations in the same order, in one loop."""
    loss, mean = metric._eval, metric._mean
    n, value = mean.n, mean._mean
    for y, what in given(scored):
        n += 1.0
        value += (1.0 / n) * (loss(y, what) - value)
    mean.n, mean._mean = n, value


def _by_log_loss(metric: Any, scored: list[Scored]) -> None:
    """:func:`_by_running_mean` with LogLoss's own loss written in (River's ``LogLoss._eval``: the true
    class's probability clamped to [1e-15, 1 - 1e-15], its negative log): the default binary metric, and
    the loss's three calls cost more than the rest of scoring."""
    mean, log, low, high = metric._mean, math.log, 1e-15, 1 - 1e-15
    n, value = mean.n, mean._mean
    for y, _, proba in scored:
        if not proba:
            continue
        p_true = proba.get(True, 0.0) if isinstance(proba, dict) else proba
        if p_true > high:  # River's clamp, max(min(p, high), low), without its two calls
            p_true = high
        elif p_true < low:
            p_true = low
        n += 1.0
        value += (1.0 / n) * ((-log(p_true) if y else -log(1 - p_true)) - value)
    mean.n, mean._mean = n, value


def _one_by_one(update: Callable[[Any, Any], None], given: Callable[[list[Scored]], list[tuple[Any, Any]]],
                scored: list[Scored]) -> None:
    for y, what in given(scored):
        update(y, what)


def _track(task: Task, name: str) -> Tracked:
    metric = _build(name)
    return Tracked(name, metric, task in ("binary", "multiclass") and not metric.requires_labels)


def _build(name: str) -> Any:
    factory = getattr(river_metrics, name, None)
    if not isinstance(factory, type) or not issubclass(factory, river_metrics.base.Metric):
        raise MetricError(f"unknown metric {name!r}: use a class of river.metrics, such as Accuracy or MAE")
    return factory()
