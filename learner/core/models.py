"""Model presets, model specs (what ``--model`` accepts) and what kind of estimator a model is.

A spec is either a preset name (``learner models`` lists them) or ``package.module:callable``
returning a River estimator, so teams can ship their own pipelines without forking the service.
:func:`kind_of` reads, once, how River expects the model to be called (probabilities or labels,
a value, an anomaly score with or without the label), so the per-event path never asks again.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from river import anomaly, base, compose, forest, linear_model, preprocessing, tree

from learner.errors import ModelSpecError

__all__ = ["PRESETS", "ModelKind", "Preset", "Task", "build_model", "comparable", "describe_params", "kind_of", "task_of"]

#: What the predictions are, which decides the prediction message and the default metrics.
Task = Literal["binary", "multiclass", "regression", "anomaly"]

#: How the model is asked for a prediction:
#: ``proba``: ``predict_proba_one``, the label is its most probable class (River's default);
#: ``label_proba``: ``predict_one`` (overridden) and ``predict_proba_one``;
#: ``label``: ``predict_one`` only (no probabilities: one-vs-one, output codes);
#: ``value``: a regressor's ``predict_one``;
#: ``score``: an anomaly detector's ``score_one(x)``; ``label_score``: a supervised one's ``score_one(x, y)``.
Predicts = Literal["proba", "label_proba", "label", "value", "score", "label_score"]


@dataclass(frozen=True)
class Preset:
    """A named, documented River pipeline."""

    build: Callable[[], base.Estimator]
    description: str


def _numeric_and_categorical(numeric: base.Transformer) -> base.Transformer:
    """Scale numbers, one-hot encode strings: events may carry both."""
    union: base.Transformer = (compose.SelectType(numbers.Number) | numeric) + (
        compose.SelectType(str) | preprocessing.OneHotEncoder()
    )
    return union


def binary() -> base.Estimator:
    model: base.Estimator = _numeric_and_categorical(preprocessing.StandardScaler()) | linear_model.LogisticRegression()
    return model


def logreg() -> base.Estimator:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def multiclass() -> base.Estimator:
    model: base.Estimator = _numeric_and_categorical(preprocessing.StandardScaler()) | tree.HoeffdingTreeClassifier()
    return model


def regression() -> base.Estimator:
    model: base.Estimator = _numeric_and_categorical(preprocessing.StandardScaler()) | linear_model.LinearRegression()
    return model


def anomaly_detection() -> base.Estimator:
    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)


def forest_classifier() -> base.Estimator:
    return forest.ARFClassifier(seed=42)


PRESETS: dict[str, Preset] = {
    "binary": Preset(binary, "binary classification: scaled numbers + one-hot strings | LogisticRegression"),
    "logreg": Preset(logreg, "binary classification on numeric features: StandardScaler | LogisticRegression"),
    "multiclass": Preset(multiclass, "multiclass classification: scaled numbers + one-hot strings | HoeffdingTree"),
    "tree": Preset(multiclass, "classification, binary or multiclass: scaled numbers + one-hot strings | HoeffdingTree"),
    "regression": Preset(regression, "regression: scaled numbers + one-hot strings | LinearRegression"),
    "anomaly": Preset(anomaly_detection, "anomaly detection on numeric features: MinMaxScaler | HalfSpaceTrees"),
    "forest": Preset(forest_classifier, "classification with an adaptive random forest (ARF, 10 trees)"),
}


def build_model(spec: str) -> base.Estimator:
    """Build a fresh estimator from a preset name or ``package.module:callable``.

    >>> build_model("logreg")["LogisticRegression"]
    LogisticRegression (...)
    >>> build_model("nope")
    Traceback (most recent call last):
    ...
    learner.errors.ModelSpecError: unknown model 'nope': use a preset (binary, logreg, ...) or package.module:callable
    """
    if spec in PRESETS:
        return PRESETS[spec].build()
    if ":" not in spec:
        raise ModelSpecError(
            f"unknown model {spec!r}: use a preset ({', '.join(PRESETS)}) or package.module:callable"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        factory: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ModelSpecError(f"cannot load model {spec!r}: {error}") from None
    model = factory() if callable(factory) and not isinstance(factory, base.Estimator) else factory
    if not isinstance(model, base.Estimator):
        raise ModelSpecError(f"{spec!r} returned {type(model).__name__}, not a River estimator")
    return model


@dataclass(frozen=True)
class ModelKind:
    """How a River estimator is called, and which events it learns.

    >>> kind_of(build_model("logreg"))
    ModelKind(task='binary', predicts='proba', learns_unlabelled=False)
    >>> kind_of(build_model("anomaly"))
    ModelKind(task='anomaly', predicts='score', learns_unlabelled=True)
    """

    task: Task
    predicts: Predicts
    #: Unsupervised anomaly detectors learn every event, labelled or not (the label is only scored).
    learns_unlabelled: bool

    def learns(self, labelled: bool) -> bool:
        """Whether an event is learned (when learning is on and the model accepts it): the one rule."""
        return labelled or self.learns_unlabelled


def comparable(task: Task, other: Task) -> bool:
    """Whether two models' answers compare on one stream: classifiers with classifiers (a binary one
    where the other is multiclass, or the other way round, is the user's call: it is scored as the
    other is); otherwise the tasks must match.

    >>> comparable("multiclass", "binary"), comparable("binary", "multiclass"), comparable("regression", "binary")
    (True, True, False)
    """
    classifiers = ("binary", "multiclass")
    return task == other or (task in classifiers and other in classifiers)


def kind_of(model: base.Estimator) -> ModelKind:
    """What kind of estimator ``model`` is (a pipeline is what its last step is)."""
    final = model[-1] if isinstance(model, compose.Pipeline) else model
    if isinstance(model, base.SupervisedAnomalyDetector) or isinstance(final, base.SupervisedAnomalyDetector):
        return ModelKind("anomaly", "label_score", False)
    if isinstance(model, base.AnomalyFilter) and getattr(final, "_supervised", False):
        return ModelKind("anomaly", "label_score", False)
    if isinstance(model, base.AnomalyDetector | base.AnomalyFilter):
        return ModelKind("anomaly", "score", True)
    if isinstance(model, base.Classifier):
        task: Task = "multiclass" if getattr(final, "_multiclass", False) else "binary"
        cls: Any = type(final)
        has_proba = cls.predict_proba_one is not base.Classifier.predict_proba_one
        argmax = cls.predict_one is base.Classifier.predict_one
        return ModelKind(task, "label" if not has_proba else "proba" if argmax else "label_proba", False)
    if isinstance(model, base.Regressor):
        return ModelKind("regression", "value", False)
    raise ModelSpecError(f"{type(model).__name__} is neither a classifier, a regressor nor an anomaly detector")


def task_of(model: base.Estimator) -> Task:
    """What kind of predictions the model makes, which decides the prediction message and metrics."""
    return kind_of(model).task


def describe_params(model: Any) -> dict[str, Any]:
    """The model's hyperparameters as JSON (River keeps them as given to the constructor)."""
    try:
        return orjson.loads(orjson.dumps(model._get_params(), default=repr))  # type: ignore[no-any-return]
    except (AttributeError, TypeError, orjson.JSONEncodeError):
        return {"repr": repr(model)}
