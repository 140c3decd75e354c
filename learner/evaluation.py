"""Prequential evaluation: River metrics, overall and over a rolling window.

Each metric is updated exactly as ``river.evaluate.progressive_val_score`` updates it (the
label for label metrics, the probabilities otherwise, nothing when the model had no
prediction yet), so the service's online metric is the number an offline replay would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from river import metrics as river_metrics
from river import utils

from learner.models import Task

DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("Accuracy", "LogLoss"),
    "multiclass": ("Accuracy", "MacroF1"),
    "regression": ("MAE", "RMSE"),
    "anomaly": ("ROCAUC",),
}
DEFAULT_WINDOW = 1000


class MetricError(ValueError):
    """A ``--metric`` name that River does not have, or that does not fit the model."""


@dataclass
class Tracked:
    """One metric instance: its name, its window ("all" or the size) and whether it takes probabilities."""

    name: str
    window: str
    metric: Any
    wants_proba: bool


class Evaluation:
    """The online metrics of one model: ``update`` after predicting, before learning.

    >>> evaluation = Evaluation("binary", ("Accuracy",), window=2)
    >>> for y, label in [(True, True), (False, True), (True, True)]:
    ...     evaluation.update(y, label, {True: 0.9, False: 0.1})
    >>> evaluation.values()
    {'Accuracy': {'all': 0.666..., '2': 0.5}}
    """

    def __init__(self, task: Task, names: tuple[str, ...] = (), window: int = DEFAULT_WINDOW) -> None:
        self.task = task
        self.tracked: list[Tracked] = []
        for name in names or DEFAULT_METRICS[task]:
            wants_proba = task in ("binary", "multiclass") and not _build(name).requires_labels
            self.tracked.append(Tracked(name, "all", _build(name), wants_proba))
            if window:
                rolling = utils.Rolling(_build(name), window_size=window)
                self.tracked.append(Tracked(name, str(window), rolling, wants_proba))
        self._by_kind = (
            [t.metric.update for t in self.tracked if not t.wants_proba],
            [t.metric.update for t in self.tracked if t.wants_proba],
        )

    def update(self, y: Any, prediction: Any, proba: dict[Any, float] | None) -> None:
        """Score one prediction against its label; an empty prediction is not scored (as River does)."""
        on_label, on_proba = self._by_kind
        if prediction is not None:
            for update in on_label:
                update(y, prediction)
        if proba:
            for update in on_proba:
                update(y, proba)

    def values(self) -> dict[str, dict[str, float]]:
        """Current values: ``{metric name: {window: value}}``."""
        out: dict[str, dict[str, float]] = {}
        for tracked in self.tracked:
            out.setdefault(tracked.name, {})[tracked.window] = float(tracked.metric.get())
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"task": self.task, "tracked": self.tracked}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.task, self.tracked = state["task"], state["tracked"]
        self._by_kind = (
            [t.metric.update for t in self.tracked if not t.wants_proba],
            [t.metric.update for t in self.tracked if t.wants_proba],
        )


def _build(name: str) -> Any:
    factory = getattr(river_metrics, name, None)
    if not isinstance(factory, type) or not issubclass(factory, river_metrics.base.Metric):
        raise MetricError(f"unknown metric {name!r}: use a class of river.metrics, such as Accuracy or MAE")
    return factory()
