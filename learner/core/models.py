"""Model presets and model specs: what ``--model`` accepts.

A spec is either a preset name (``learner models`` lists them) or ``package.module:callable``
returning a River estimator, so teams can ship their own pipelines without forking the service.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from river import anomaly, base, compose, forest, linear_model, preprocessing, tree

Task = Literal["binary", "multiclass", "regression", "anomaly"]


class ModelSpecError(ValueError):
    """``--model`` names nothing we can build."""


@dataclass(frozen=True)
class Preset:
    """A named, documented River pipeline."""

    build: Callable[[], base.Estimator]
    description: str


def _numeric_and_categorical(numeric: base.Transformer) -> base.Transformer:
    """Scale numbers, one-hot encode strings: events may carry both."""
    return (compose.SelectType(numbers.Number) | numeric) + (
        compose.SelectType(str) | preprocessing.OneHotEncoder()
    )


def binary() -> base.Estimator:
    return _numeric_and_categorical(preprocessing.StandardScaler()) | linear_model.LogisticRegression()


def logreg() -> base.Estimator:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def multiclass() -> base.Estimator:
    return _numeric_and_categorical(preprocessing.StandardScaler()) | tree.HoeffdingTreeClassifier()


def regression() -> base.Estimator:
    return _numeric_and_categorical(preprocessing.StandardScaler()) | linear_model.LinearRegression()


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
    learner.core.models.ModelSpecError: unknown model 'nope': use a preset (binary, logreg, multiclass, tree, regression, anomaly, forest) or package.module:callable
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


def task_of(model: base.Estimator) -> Task:
    """What kind of predictions the model makes, which decides the prediction message and metrics."""
    if isinstance(model, base.AnomalyDetector):
        return "anomaly"
    if isinstance(model, base.Classifier):
        final = model[-1] if isinstance(model, compose.Pipeline) else model
        return "multiclass" if getattr(final, "_multiclass", False) else "binary"
    if isinstance(model, base.Regressor):
        return "regression"
    raise ModelSpecError(f"{type(model).__name__} is neither a classifier, a regressor nor an anomaly detector")
