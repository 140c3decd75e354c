"""A challenger beside the champion on exactly the events both scored: both models' metrics over
those events, their number, and the paired difference of per-event losses with its interval
(:mod:`learner.core.paired`). Pure; pickled with its owner.

>>> pairing = Pairing("binary", ("Accuracy",))
>>> champion = {(0, 1): (True, True, None), (0, 2): (False, True, None)}
>>> challenger = {(0, 2): (False, False, None), (0, 3): (True, True, None)}  # (0, 3): the champion never scored it
>>> pairing.add(champion, challenger)
>>> report = pairing.report()
>>> report["paired_events"], report["champion"]["Accuracy"]["all"], report["metrics"]["Accuracy"]["all"]
(1, 0.0, 1.0)
>>> report["difference"]["metric"], report["difference"]["value"]
('error rate', -1.0)
"""

from __future__ import annotations

from typing import Any

from learner.core.contender import ScoredEvents
from learner.core.evaluation import DEFAULT_WINDOW, Evaluation
from learner.core.models import Task
from learner.core.paired import CONFIDENCE, Interval, PairedDifference, loss_for

__all__ = ["Pairing"]


class Pairing:
    """One challenger against the champion, on the events both scored."""

    def __init__(self, task: Task, metrics: tuple[str, ...], window: int = DEFAULT_WINDOW) -> None:
        self.champion = Evaluation(task, metrics, window)
        self.challenger = Evaluation(task, metrics, window)
        self.loss = loss_for(task, tuple(t.name for t in self.champion.tracked))
        self.difference = PairedDifference()
        self.paired = 0  # events both scored (the difference may leave out one a loss cannot score)

    def add(self, champion: ScoredEvents, challenger: ScoredEvents) -> None:
        """Pair what both scored in one batch (in the challenger's order); the rest is left out."""
        for key, ours in challenger.items():
            if (theirs := champion.get(key)) is not None:
                self.add_one(ours, theirs)

    def add_one(self, ours: tuple[Any, Any, Any], theirs: tuple[Any, Any, Any]) -> bool:
        """One event both scored: (label, prediction, probabilities) of each; whether it was paired
        (only when both answered: an untrained model's empty answer is none)."""
        y, prediction, proba = ours
        if prediction is None or theirs[1] is None:
            return False
        self.paired += 1
        self.challenger.update(y, prediction, dict(proba) if proba is not None else None)
        self.champion.update(theirs[0], theirs[1], dict(theirs[2]) if theirs[2] is not None else None)
        if self.loss is not None:
            self.difference.add(self.loss.of(y, prediction, proba), self.loss.of(*theirs))
        return True

    def interval(self, confidence: float = CONFIDENCE) -> Interval | None:
        """The challenger's loss minus the champion's, per paired event (None: the task has no loss)."""
        return None if self.loss is None else self.difference.interval(self.loss.name, confidence)

    def report(self, confidence: float = CONFIDENCE) -> dict[str, Any]:
        """``paired_events``, ``champion`` and ``metrics`` (as ``learner snapshots list --json`` shows
        metrics), and ``difference`` (None when the task has no per-event loss)."""
        interval = self.interval(confidence)
        return {"paired_events": self.paired, "champion": self.champion.values(), "metrics": self.challenger.values(),
                "difference": None if interval is None else interval.to_dict()}
