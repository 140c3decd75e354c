"""Scoring the predictions a model made: its online metrics, drift, the guard's rolling value, and
the count of events learned that each prediction carries.

Pure, and owned by no I/O class: the gateway process runs it beside publishing (the model process
never waits for it), a backtest could run it over a topic it reads. One :class:`Scoring` per
lineage; a rollback hands it the scorecard of the version it restores (:meth:`use`), and a snapshot
barrier takes a copy of exactly the events answered so far (:meth:`copy_card`).

>>> from learner.core.models import build_model, kind_of
>>> from learner.core.scorecard import Scorecard
>>> kind = kind_of(build_model("logreg"))
>>> scoring = Scoring(Scorecard.new("binary", ("Accuracy",), drift_window=0), kind)
>>> scoring.score([(True, True, {True: 0.9, False: 0.1}), (True, False, {True: 0.2, False: 0.8})]) is None
True
>>> scoring.card.evaluation.values()["Accuracy"]["all"], scoring.learns(True), scoring.learns(False)
(0.5, True, False)
"""

from __future__ import annotations

import copy
from typing import Any

from learner.core.drift import Detection
from learner.core.evaluation import RollingValue, Scored
from learner.core.guard import ArmedGuard
from learner.core.models import ModelKind
from learner.core.scorecard import Scorecard

__all__ = ["GUARD_EVERY", "GuardWatch", "Scoring"]

#: Labelled events between two guard checks: a dip of the rolling metric is shorter than a batch.
GUARD_EVERY = 100


class GuardWatch:
    """The guarded metric's rolling value, kept current event by event while the guard is armed."""

    def __init__(self, armed: ArmedGuard, scorecard: Scorecard) -> None:
        self.armed = armed
        self.value = RollingValue(scorecard.evaluation, armed.rule.metric)
        self.countdown = GUARD_EVERY

    def update(self, y: Any, prediction: Any, proba: Any) -> float | None:
        """Score one labelled event; every GUARD_EVERY, the value when it crossed the margin."""
        self.value.update(y, prediction, proba)
        self.countdown -= 1
        if self.countdown:
            return None
        self.countdown = GUARD_EVERY
        rule, current = self.armed.rule, self.value.get()
        return current if rule.tripped_by({rule.metric: {rule.window: current}}, self.armed.reference) else None


class Scoring:
    """The scorecard of one lineage, kept current prediction by prediction."""

    def __init__(self, card: Scorecard, kind: ModelKind) -> None:
        self.drifts: list[Detection] = []
        self.guard: GuardWatch | None = None
        self.use(card, kind)

    def use(self, card: Scorecard, kind: ModelKind) -> None:
        """Score from this scorecard on (a start, or a rollback); the guard is re-armed by its owner."""
        self.card, self.kind, self.guard = card, kind, None
        self._update, self._drift = card.evaluation.update_batch, card.performance.update_batch
        self.learns_unlabelled = kind.learns_unlabelled

    def arm(self, armed: ArmedGuard | None) -> None:
        """Watch the guarded metric against ``armed`` (None: stop watching)."""
        self.guard = None if armed is None else GuardWatch(armed, self.card)

    def learns(self, labelled: bool) -> bool:
        """Whether the model learned an event (labelled ones, and every event for some detectors):
        how much the ``learned`` count of the next prediction grows, while learning is on."""
        return labelled or self.learns_unlabelled

    def score(self, scored: list[Scored]) -> float | None:
        """Score a batch's predictions against their labels, in order; the guarded value when the guard
        trips on one (once: the guard is disarmed until its owner re-arms it). Each part keeps its own
        state, so scoring them part after part is scoring them event after event."""
        self._update(scored)
        self.drifts += self._drift(scored)
        if (guard := self.guard) is not None:
            for y, prediction, proba in scored:
                if (current := guard.update(y, prediction, proba)) is not None:
                    self.guard = None
                    return current
        return None

    def observe(self, features: list[dict[str, Any]]) -> None:
        """Watch a batch's features for input drift."""
        self.drifts += self.card.observe_batch(features)

    def take_drifts(self) -> list[Detection]:
        drifts, self.drifts = self.drifts, []
        return drifts

    def copy_card(self) -> Scorecard:
        """A copy of the scorecard as it stands: a snapshot's, which must not count later events."""
        return copy.deepcopy(self.card)
