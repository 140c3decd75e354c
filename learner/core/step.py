"""The learning step: predict, then learn. Pure: no I/O, no clock, no Kafka, no Redis.

Everything the service promises about learning (prequential order, the same predictions as River's
own loop, bad labels never reaching the model) lives here, so it is tested without a broker.
Scoring the predictions is :class:`learner.core.evaluation.Evaluation`'s job; :func:`prequential`
shows the three together, in the order the service runs them.

>>> from river import datasets
>>> from learner.core.evaluation import Evaluation
>>> from learner.core.models import build_model
>>> step = LearningStep(build_model("logreg"))
>>> evaluation = Evaluation(step.task, ("Accuracy",))
>>> for x, y in datasets.Phishing():
...     prediction, proba = prequential(step, evaluation, x, y)
>>> step.learned, round(evaluation.values()["Accuracy"]["all"], 4)
(1250, 0.8928)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from river import base

from learner.core.evaluation import Evaluation
from learner.core.items import EventItem, Item, LabelItem
from learner.core.labels import LabelJoin, Lost
from learner.core.models import ModelKind, Task, kind_of
from learner.core.predictions import Prediction, label_of

__all__ = ["ItemOutcome", "ItemsDone", "Join", "LabelOutcome", "LabelRejected", "LearningStep", "Outcome", "Probabilities",
           "prequential"]

#: River's class probabilities as it returned them (a dict, a Counter), unconverted; None when it had none.
Probabilities = Mapping[Any, float] | None

#: What :meth:`LearningStep.process_batch` gives per event: the class probabilities alone (a
#: classifier whose label is its most probable class: the label is left to the caller, off the
#: model's core), a ``(prediction, probabilities or None)`` pair, or why the event was refused.
#: River's own types, unconverted: :mod:`learner.core.predictions` makes them plain.
Outcome = Probabilities | Prediction | str

#: A label's outcome in a batch with a labels topic: None (joined, or waiting for its event), or
#: ``(kind, reason)`` when it is lost.
LabelOutcome = tuple[str, str] | None

#: Per item of a batch with a labels topic: an event's outcome, or a label's.
ItemOutcome = Outcome | LabelOutcome

#: A label joined with its event: (index of the item it happened at, the outcome of the prediction,
#: the label, milliseconds it waited).
Join = tuple[int, Probabilities | Prediction, Any, int]


class LabelRejected(ValueError):
    """The label cannot be learned by this kind of model; the event is dead-lettered."""


#: What :meth:`LearningStep.process_items` gives for a batch of events and labels: per item, the
#: event's outcome, or for a label None (joined, or waiting for its event) or ``(kind, reason)``
#: (lost); the joins, as ``(index of the item they happened at, the outcome of the prediction,
#: the label, milliseconds it waited)``; and the early labels that expired without their event.
ItemsDone = tuple[list[ItemOutcome], list[Join], list[Lost]]


class LearningStep:
    """One model, stepped one event at a time: predict, then learn (see :class:`ModelKind` for which)."""

    def __init__(self, model: base.Estimator, learned: int = 0) -> None:
        self.model: Any = model  # River's estimators are duck-typed: learn_one, predict_*_one, score_one
        self.kind: ModelKind = kind_of(model)
        self.task: Task = self.kind.task
        self.learned = learned
        self.learning = True
        self._predict: Callable[[dict[str, Any], Any], Prediction] = getattr(self, "_" + self.kind.predicts)

    def process(self, x: dict[str, Any], y: Any) -> Prediction:
        """Predict ``x``, then learn it when the model learns such events.

        Returns the prediction and, for classifiers with probabilities, the class probabilities.
        """
        if y is not None:
            self._check_label(y)
        prediction = self._predict(x, y)
        if self.learning and self.kind.learns(y is not None):
            if self.kind.learns_unlabelled:
                self.model.learn_one(x)
            else:
                self.model.learn_one(x, y)
            self.learned += 1
        return prediction

    def process_batch(self, events: list[dict[str, Any]]) -> list[Outcome]:
        """:meth:`process` over validated events (``{"x": ..., "y": ...}``), in order.

        An event River refuses gets the reason instead of a prediction, and the batch goes on.
        For a classifier whose label is its most probable class, the loop is River's own
        (``predict_proba_one`` then ``learn_one``) and the outcome is the probabilities alone:
        this is where the service spends most of its time, so nothing else is done here.

        >>> from learner.core.models import build_model
        >>> step = LearningStep(build_model("logreg"))
        >>> first, refused, last = step.process_batch([{"x": {"a": 1.0}, "y": True}, {"x": {"a": "?"}, "y": True},
        ...                                             {"x": {"a": 2.0}}])
        >>> first, refused[:39], step.learned
        ({False: 0.5, True: 0.5}, 'the model rejected the event: TypeError', 1)
        """
        results: list[Outcome] = []
        loop = self._probabilities_loop if self.kind.predicts == "proba" else self._process_loop
        while len(results) < len(events):
            try:
                loop(events, results)
            except LabelRejected as error:
                results.append(str(error))
            except Exception as error:  # River refused this event; the batch goes on
                results.append(f"the model rejected the event: {type(error).__name__}: {error}")
        return results

    def process_items(self, items: list[Item], join: LabelJoin) -> ItemsDone:
        """Events and labels, in the merged order (see :mod:`learner.core.labels`).

        An event (:class:`~learner.core.items.EventItem`) is predicted, and learned at once when it
        carries its label; without one its features wait in ``join``. A label
        (:class:`~learner.core.items.LabelItem`) learns the features its event was predicted with.
        """
        if self.kind.predicts == "proba" and not self.kind.learns_unlabelled:
            return self._probability_items(items, join)
        outcomes: list[ItemOutcome] = []
        joins: list[Join] = []
        lost: list[Lost] = []
        for index, item in enumerate(items):
            lost += join.advance(item["t"])
            try:
                if "l" in item:
                    outcomes.append(self._label_item(index, item, join, joins))
                else:
                    outcomes.append(self._event_item(index, item, join, joins))
            except LabelRejected as error:
                if "l" in item:
                    join.counts["received"] += 1
                    join.counts["rejected"] += 1
                outcomes.append(str(error) if "l" not in item else ("rejected", str(error)))
            except Exception as error:  # River refused this event; the batch goes on
                reason = f"the model rejected the event: {type(error).__name__}: {error}"
                outcomes.append(reason if "l" not in item else ("rejected", reason))
        return outcomes, joins, lost

    def _probability_items(self, items: list[Item], join: LabelJoin) -> ItemsDone:
        """:meth:`process_items` for a classifier whose label is its most probable class: the same
        rules, in one loop (this is the model's core with a labels topic, as
        :meth:`_probabilities_loop` is without one), the label left to the caller."""
        predict, learn, learning = self.model.predict_proba_one, self.model.learn_one, self.learning
        advance, arrive, label = join.advance, join.arrive, join.label
        outcomes: list[ItemOutcome] = []
        joins: list[Join] = []
        lost: list[Lost] = []
        append, joined, learned = outcomes.append, joins.append, 0
        try:
            for index, item in enumerate(items):
                ts = item["t"]
                if gone := advance(ts):
                    lost += gone
                try:
                    if "l" in item:
                        y, source = item["y"], item.get("s")
                        done = label(item["l"], y, ts, (source[0], source[1]) if source else None)
                        if done is None:  # early: waiting for its event
                            append(None)
                        elif isinstance(done, Lost):
                            append((done.kind, done.reason))
                        else:
                            if learning:
                                learn(done.x, y)
                                learned += 1
                            joined((index, done.outcome, y, done.waited_ms))
                            append(None)
                        continue
                    x = item["x"]
                    proba = predict(x)
                    y = item.get("y")
                    if y is not None:
                        if learning:
                            learn(x, y)
                            learned += 1
                    elif (early := arrive(item["k"], x, proba, ts)) is not None:  # its label came first
                        if learning:
                            learn(x, early.y)
                            learned += 1
                        joined((index, proba, early.y, early.waited_ms))
                    append(proba)
                except Exception as error:  # River refused this item; the batch goes on
                    reason = f"the model rejected the event: {type(error).__name__}: {error}"
                    append(("rejected", reason) if "l" in item else reason)
        finally:
            self.learned += learned
        return outcomes, joins, lost

    def _event_item(self, index: int, item: EventItem, join: LabelJoin, joins: list[Join]
               ) -> Outcome:
        x, y = item["x"], item.get("y")
        if y is not None:
            prediction = self.process(x, y)
            return prediction[1] if self.kind.predicts == "proba" else prediction
        prediction = self.process(x, None)  # learned here only by detectors that learn every event
        outcome = prediction[1] if self.kind.predicts == "proba" else prediction
        early = join.arrive(item["k"], x, outcome, item["t"])
        if early is not None:  # its label came first: learn it now
            self._learn_label(x, early.y)
            joins.append((index, outcome, early.y, early.waited_ms))
        return outcome

    def _label_item(self, index: int, item: LabelItem, join: LabelJoin, joins: list[Join]
               ) -> LabelOutcome:
        y = item["y"]
        self._check_label(y)
        source = item.get("s")
        done = join.label(item["l"], y, item["t"], (source[0], source[1]) if source else None)
        if done is None:
            return None  # early: waiting for its event
        if isinstance(done, Lost):
            return (done.kind, done.reason)
        self._learn_label(done.x, y)
        joins.append((index, done.outcome, y, done.waited_ms))
        return None

    def _learn_label(self, x: dict[str, Any], y: Any) -> None:
        if self.learning and not self.kind.learns_unlabelled:  # a detector learned it already
            self.model.learn_one(x, y)
            self.learned += 1

    def _check_label(self, y: Any) -> None:
        if self.task == "regression" and (type(y) is bool or type(y) is str):
            raise LabelRejected(f"label {y!r} is not a number, and the model is a regressor")

    def _probabilities_loop(self, events: list[dict[str, Any]], results: list[Outcome]) -> None:
        """Continue the batch where ``results`` ends; an outcome is appended once the event is learned.

        The same rule as :meth:`ModelKind.learns`, for a classifier: labelled events are learned.
        """
        predict, learn, append = self.model.predict_proba_one, self.model.learn_one, results.append
        learned, learning = 0, self.learning
        try:
            for event in itertools.islice(events, len(results), None):
                x = event["x"]
                proba = predict(x)
                y = event.get("y")
                if y is not None and learning:
                    learn(x, y)
                    learned += 1
                append(proba)
        finally:
            self.learned += learned

    def _process_loop(self, events: list[dict[str, Any]], results: list[Outcome]) -> None:
        process, append = self.process, results.append
        for event in itertools.islice(events, len(results), None):
            append(process(event["x"], event.get("y")))

    def _proba(self, x: dict[str, Any], _y: Any) -> Prediction:
        proba = self.model.predict_proba_one(x)
        return label_of(proba), proba

    def _label_proba(self, x: dict[str, Any], _y: Any) -> Prediction:
        return self.model.predict_one(x), self.model.predict_proba_one(x)

    def _label(self, x: dict[str, Any], _y: Any) -> Prediction:
        return self.model.predict_one(x), None

    def _value(self, x: dict[str, Any], _y: Any) -> Prediction:
        return self.model.predict_one(x), None

    def _score(self, x: dict[str, Any], _y: Any) -> Prediction:
        return self.model.score_one(x), None

    def _label_score(self, x: dict[str, Any], y: Any) -> Prediction:
        """A supervised anomaly detector scores the label itself: nothing to score without one."""
        return (None if y is None else self.model.score_one(x, y)), None

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "learned": self.learned}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["learned"])  # type: ignore[misc]


def prequential(step: LearningStep, evaluation: Evaluation, x: dict[str, Any], y: Any) -> Prediction:
    """Predict, score that prediction against ``y`` (when there is one), learn: the service's order."""
    prediction, proba = step.process(x, y)
    if y is not None:
        evaluation.update(y, prediction, dict(proba) if proba is not None else None)
    return prediction, proba
