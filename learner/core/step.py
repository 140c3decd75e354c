"""The learning step: predict, then learn. Pure: no I/O, no clock, no Kafka, no Redis.

Everything the service promises about learning (prequential order, the same predictions as River's
own loop, bad labels never reaching the model) lives here, so it is tested without a broker.
Scoring the predictions is :class:`learner.evaluation.Evaluation`'s job; :func:`prequential` shows
the three together, in the order the service runs them.

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
from typing import Any

from river import base, compose

from learner.core.evaluation import Evaluation
from learner.core.models import Task, task_of

Prediction = tuple[Any, dict[Any, float] | None]
#: What :meth:`LearningStep.process_batch` gives per event: the class probabilities (a classifier
#: whose label is the most probable class: the label is left to the caller), a prediction and its
#: probabilities, or why the event was refused.
Outcome = dict[Any, float] | Prediction | str


class LabelRejected(ValueError):
    """The label cannot be learned by this kind of model; the event is dead-lettered."""


class LearningStep:
    """One model, stepped one event at a time: predict, then learn when there is a label."""

    def __init__(self, model: base.Estimator, learned: int = 0) -> None:
        self.model = model
        self.task: Task = task_of(model)
        self.learned = learned
        self.learning = True
        self._learn_one = model.learn_one
        self._predict = self._prediction_path()

    def _prediction_path(self) -> Any:
        """Pick the prediction path once, so the per-event path has no branches on the model kind."""
        if self.task == "anomaly":
            return self._score
        if self.task == "regression":
            return self._regress
        if _label_is_argmax(self.model):
            return self._classify
        return self._classify_with_predict_one

    def process(self, x: dict[str, Any], y: Any) -> Prediction:
        """Predict ``x``, then learn it when labelled (anomaly detectors learn every event).

        Returns the prediction and, for classifiers, the class probabilities.
        """
        if y is not None and self.task == "regression" and (type(y) is bool or type(y) is str):
            raise LabelRejected(f"label {y!r} is not a number, and the model is a regressor")
        prediction = self._predict(x)
        if self.learning:
            if y is not None:
                self._learn_one(x, y)
                self.learned += 1
            elif self.task == "anomaly":
                self._learn_one(x)
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
        loop = self._probabilities_loop if self._predict == self._classify else self._process_loop
        while len(results) < len(events):
            try:
                loop(events, results)
            except LabelRejected as error:
                results.append(str(error))
            except Exception as error:  # noqa: BLE001 - River refused this event; the batch goes on
                results.append(f"the model rejected the event: {type(error).__name__}: {error}")
        return results

    def _probabilities_loop(self, events: list[dict[str, Any]], results: list[Outcome]) -> None:
        """Continue the batch where ``results`` ends; an outcome is appended once the event is learned."""
        predict, learn, append = self.model.predict_proba_one, self._learn_one, results.append
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

    def _classify(self, x: dict[str, Any]) -> Prediction:
        proba = self.model.predict_proba_one(x)
        return (max(proba, key=proba.get) if proba else None), proba

    def _classify_with_predict_one(self, x: dict[str, Any]) -> Prediction:
        return self.model.predict_one(x), self.model.predict_proba_one(x)

    def _regress(self, x: dict[str, Any]) -> Prediction:
        return self.model.predict_one(x), None

    def _score(self, x: dict[str, Any]) -> Prediction:
        return self.model.score_one(x), None

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "learned": self.learned}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["learned"])  # type: ignore[misc]


def prequential(step: LearningStep, evaluation: Evaluation, x: dict[str, Any], y: Any) -> Prediction:
    """Predict, score that prediction against ``y`` (when there is one), learn: the service's order."""
    prediction, proba = step.process(x, y)
    if y is not None:
        evaluation.update(y, prediction, proba)
    return prediction, proba


def _label_is_argmax(model: base.Estimator) -> bool:
    """True when the model's label is River's default (the most probable class), so one call does."""
    final = model[-1] if isinstance(model, compose.Pipeline) else model
    return type(final).predict_one is base.Classifier.predict_one
