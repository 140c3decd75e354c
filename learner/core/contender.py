"""One model stepped over a stream beside others, each of its scored predictions kept by event, so
that two models can be paired on exactly the events both scored (:mod:`learner.core.pairing`).

A batch is what the model process gets (:class:`Batch`): the events as they came (no labels topic),
each keyed by its ``(partition, offset)``; or the merged items of events and labels, where an event
is keyed by its id (``k``, the same key its label joins on). Pure: no I/O.

>>> from learner.core.evaluation import Evaluation
>>> from learner.core.models import build_model
>>> from learner.core.step import LearningStep
>>> contender = Contender(LearningStep(build_model("logreg")), None, Evaluation("binary", ("Accuracy",)))
>>> batch = Batch([{"x": {"a": 1.0}, "y": True}, {"x": {"a": 2.0}}], keys=[(0, 7), (0, 8)])
>>> contender.step(batch)  # the unlabelled event is predicted, not scored
{(0, 7): (True, False, {False: 0.5, True: 0.5})}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learner.core.evaluation import Evaluation
from learner.core.labels import LabelJoin
from learner.core.predictions import label_of
from learner.core.step import ItemOutcome, LearningStep

__all__ = ["Batch", "Contender", "ScoredEvents"]

#: Per event scored in a batch: its key -> (label, prediction, probabilities or None).
ScoredEvents = dict[Any, tuple[Any, Any, Any]]


@dataclass(slots=True)
class Batch:
    """Decoded items of one batch; ``keys``: each event's ``(partition, offset)`` when the items are
    events as they came (None: merged items, keyed by their own ids)."""

    items: list[Any]
    keys: list[Any] | None = None


class Contender:
    """A model, the join of its delayed labels (None without a labels topic), and its evaluation."""

    def __init__(self, step: LearningStep, join: LabelJoin | None, evaluation: Evaluation) -> None:
        self.step_, self.join, self.evaluation = step, join, evaluation

    @property
    def model(self) -> Any:
        return self.step_.model

    def step(self, batch: Batch) -> ScoredEvents:
        """Predict and learn the batch in order; every prediction scored against its label, by event."""
        if batch.keys is not None:
            outcomes: list[ItemOutcome] = list(self.step_.process_batch(batch.items))
            scored = {key: (item["y"], *_split(outcome)) for key, item, outcome
                      in zip(batch.keys, batch.items, outcomes, strict=True)
                      if item.get("y") is not None and not isinstance(outcome, str)}
        else:
            assert self.join is not None, "merged items need a label join"
            outcomes, joins, _ = self.step_.process_items(batch.items, self.join)
            scored = {}
            pending = iter(joins)
            upcoming = next(pending, None)
            for index, (item, outcome) in enumerate(zip(batch.items, outcomes, strict=True)):
                if "l" not in item and item.get("y") is not None and not isinstance(outcome, str):
                    scored[item["k"]] = (item["y"], *_split(outcome))
                while upcoming is not None and upcoming[0] == index:  # labels joined at this item (as scored live)
                    _, joined, y, _ = upcoming
                    scored[item["l"] if "l" in item else item["k"]] = (y, *_split(joined))
                    upcoming = next(pending, None)
        update = self.evaluation.update
        for y, prediction, proba in scored.values():
            update(y, prediction, dict(proba) if proba is not None else None)
        return scored


def _split(outcome: Any) -> tuple[Any, Any]:
    """(prediction, probabilities) of an outcome: a pair, or a classifier's probabilities alone."""
    return outcome if isinstance(outcome, tuple) else (label_of(outcome), outcome)
