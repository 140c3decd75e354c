"""The guard (README "Monitoring", opt-in with ``--guard-margin``): stop bad learning by itself.

When the rolling value of the first online metric is worse than the one recorded in the newest
pinned snapshot by more than the margin, the service stops learning, rolls back to that snapshot
and keeps predicting, until an operator runs ``learner resume``. "Worse" follows River's
``bigger_is_better``: lower for Accuracy, higher for LogLoss or MAE.

>>> guard = Guard(margin=0.05, metric="Accuracy", window="1000", bigger_is_better=True)
>>> guard.tripped_by({"Accuracy": {"1000": 0.93}}, reference=0.95)
False
>>> guard.tripped_by({"Accuracy": {"1000": 0.85}}, reference=0.95)
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ArmedGuard", "Guard"]


@dataclass(frozen=True)
class Guard:
    """The rule: which metric and window, how far it may fall, and which direction is better."""

    margin: float
    metric: str
    window: str
    bigger_is_better: bool

    def tripped_by(self, values: dict[str, dict[str, float]], reference: float) -> bool:
        """Whether the current ``values`` are worse than ``reference`` by more than the margin."""
        current = values.get(self.metric, {}).get(self.window)
        if current is None:
            return False
        drop = reference - current if self.bigger_is_better else current - reference
        return drop > self.margin

    def reference(self, metrics: dict[str, dict[str, float]]) -> float | None:
        """The value this guard compares with, from a snapshot's recorded metrics."""
        return metrics.get(self.metric, {}).get(self.window)


@dataclass(frozen=True, slots=True)
class ArmedGuard:
    """What the guard compares with: its rule, the reference value, and the pinned version it came from."""

    rule: Guard
    reference: float
    version: int
