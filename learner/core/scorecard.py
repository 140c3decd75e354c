"""Everything kept about the predictions a model made: its online evaluation and its drift detectors.

They travel together because they describe the same events: the gateway updates them as it
publishes each prediction, hands a copy over at each snapshot barrier (so a snapshot's
scorecard covers exactly the events its offsets cover), and a restore or a rollback brings back
the scorecard of the version it restores; alarms after a rollback describe the model that is
served, not the branch that was discarded.

>>> from river import datasets
>>> card = Scorecard.new("binary", ("Accuracy",), drift_window=0)  # scoring a model that always says True
>>> for x, y in datasets.Phishing().take(200):
...     drifts = card.observe(x)
...     drift = card.score(y, True, {True: 0.6, False: 0.4})
>>> round(card.evaluation.values()["Accuracy"]["all"], 3)
0.475
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learner.core.drift import Detection, InputDrift, PerformanceDrift
from learner.core.evaluation import Evaluation
from learner.core.live_pairing import LivePairing
from learner.core.models import Task

__all__ = ["Scorecard"]


@dataclass
class Scorecard:
    """The online evaluation and the drift detectors of one model lineage."""

    evaluation: Evaluation
    performance: PerformanceDrift
    inputs: InputDrift | None
    #: A challenger's pairs with its champion (README "Experiments"); None for a champion (and in
    #: snapshots written before challengers existed, through this class default).
    pairing: LivePairing | None = None

    @classmethod
    def new(cls, task: Task, metrics: tuple[str, ...] = (), drift_window: int = 5000,
            drift_warmup: int | None = None) -> Scorecard:
        return cls(Evaluation(task, metrics), PerformanceDrift(task, drift_warmup),
                   InputDrift(drift_window) if drift_window else None)

    @classmethod
    def of(cls, evaluation: Evaluation, drift_window: int, drift_warmup: int | None = None) -> Scorecard:
        """A scorecard around an evaluation restored from a snapshot that kept no detectors."""
        return cls(evaluation, PerformanceDrift(evaluation.task, drift_warmup),
                   InputDrift(drift_window) if drift_window else None)

    @property
    def task(self) -> Task:
        return self.evaluation.task

    def score(self, y: Any, prediction: Any, proba: dict[Any, float] | None) -> Detection | None:
        """Score one prediction against its label; a performance drift alarm if this one raised it."""
        self.evaluation.update(y, prediction, proba)
        return self.performance.update(y, prediction)

    def observe(self, x: dict[str, Any]) -> list[Detection]:
        """Watch one event's features for input drift."""
        return self.inputs.update(x) if self.inputs is not None else []

    def observe_batch(self, xs: list[dict[str, Any]]) -> list[Detection]:
        """Watch a batch of events' features, in order (only the sampled ones are looked at)."""
        return self.inputs.update_batch(xs) if self.inputs is not None else []
