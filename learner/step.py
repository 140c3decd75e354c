"""The learning step: predict, evaluate, learn. Pure: no I/O, no clock, no Kafka, no Redis.

Everything the service promises about learning (prequential order, the same predictions as River's
own loop, bad labels never reaching the model) lives here, so it is tested without a broker.

>>> from river import datasets
>>> from learner.models import build_model
>>> step = LearningStep(build_model("logreg"))
>>> for x, y in datasets.Phishing():
...     prediction, proba = step.process(x, y)
>>> step.learned, round(step.evaluation.values()["Accuracy"]["all"], 4)
(1250, 0.8928)
"""

from __future__ import annotations

from typing import Any

from river import base, compose

from learner.evaluation import Evaluation
from learner.models import Task, task_of


class LabelRejected(ValueError):
    """The label cannot be learned by this kind of model; the event is dead-lettered."""


class LearningStep:
    """One model and its online evaluation, stepped one event at a time."""

    def __init__(self, model: base.Estimator, metrics: tuple[str, ...] = (), window: int = 1000,
                 learned: int = 0, evaluation: Evaluation | None = None) -> None:
        self.model = model
        self.task: Task = task_of(model)
        self.evaluation = evaluation or Evaluation(self.task, metrics, window)
        self.learned = learned
        self.learning = True
        self._bind()

    def _bind(self) -> None:
        """Pick the prediction path once, so the per-event path has no branches on the model kind."""
        model = self.model
        self._learn_one = model.learn_one
        if self.task == "anomaly":
            self._predict = self._score
        elif self.task == "regression":
            self._predict = self._regress
        elif _label_is_argmax(model):
            self._predict = self._classify
        else:
            self._predict = self._classify_with_predict_one

    def process(self, x: dict[str, Any], y: Any) -> tuple[Any, dict[Any, float] | None]:
        """Predict ``x``; when labelled (or unsupervised), evaluate that prediction, then learn.

        Returns the prediction and, for classifiers, the class probabilities.
        """
        if y is not None and self.task == "regression" and (type(y) is bool or type(y) is str):
            raise LabelRejected(f"label {y!r} is not a number, and the model is a regressor")
        prediction, proba = self._predict(x)
        if y is not None:
            self.evaluation.update(y, prediction, proba)
            if self.learning:
                self._learn_one(x, y)
                self.learned += 1
        elif self.task == "anomaly" and self.learning:
            self._learn_one(x)
            self.learned += 1
        return prediction, proba

    def _classify(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float]]:
        proba = self.model.predict_proba_one(x)
        return (max(proba, key=proba.get) if proba else None), proba

    def _classify_with_predict_one(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float]]:
        return self.model.predict_one(x), self.model.predict_proba_one(x)

    def _regress(self, x: dict[str, Any]) -> tuple[Any, None]:
        return self.model.predict_one(x), None

    def _score(self, x: dict[str, Any]) -> tuple[Any, None]:
        return self.model.score_one(x), None

    def state(self) -> dict[str, Any]:
        """What a snapshot must hold to continue exactly where this step is."""
        return {"model": self.model, "evaluation": self.evaluation, "learned": self.learned}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LearningStep:
        """Rebuild a step from ``state()``, as restored from a snapshot."""
        return cls(state["model"], learned=state["learned"], evaluation=state["evaluation"])

    def __getstate__(self) -> dict[str, Any]:
        return self.state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], learned=state["learned"], evaluation=state["evaluation"])  # type: ignore[misc]


def _label_is_argmax(model: base.Estimator) -> bool:
    """True when the model's label is River's default (the most probable class), so one call does."""
    final = model[-1] if isinstance(model, compose.Pipeline) else model
    return type(final).predict_one is base.Classifier.predict_one
