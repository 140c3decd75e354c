"""What River may return as a prediction, made plain: one place that knows all of it.

Measured over fifty River estimators (``tests/test_estimators.py`` runs a matrix of them):

- ``predict_proba_one`` returns a ``dict`` or a ``collections.Counter`` (ensembles, forests),
  empty before the model has learned anything, with only the classes seen so far; its values are
  floats, sometimes ints (``dummy.NoChangeClassifier``); its keys are the labels as given.
- ``predict_one`` returns ``None`` before learning (every non-linear classifier, some regressors).
- Regressors and anomaly detectors may return NumPy scalars (``linear_model.PARegressor``,
  ``ensemble.SRPRegressor``) or ints (``anomaly.HalfSpaceTrees`` before its first window).

The model process hands these over untouched (converting costs the model's core); the gateway
takes a classifier's label here and, only when the JSON encoder refuses a value, makes it plain.

>>> from collections import Counter
>>> import numpy as np
>>> label_of(Counter()), label_of({False: 0.25, True: 0.75})
(None, True)
>>> plain(np.float64(2.5)), plain_proba(Counter({"a": np.float32(0.5)}))
(2.5, {'a': 0.5})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Prediction", "label_of", "plain", "plain_proba"]

#: A prediction and, for classifiers with probabilities, the class probabilities.
Prediction = tuple[Any, "Mapping[Any, float] | None"]


def label_of(proba: Mapping[Any, float] | None) -> Any:
    """The most probable class, first on ties (River's own ``predict_one``); None when empty.

    Two classes, the common case, are compared directly: ``max`` with a key costs three times more,
    once per prediction on the gateway's core. The comparison is the one ``max`` makes.

    >>> label_of({"a": 0.5, "b": 0.5}), label_of({"a": 0.4, "b": 0.6}), label_of({"a": 0.2, "b": 0.4, "c": 0.4})
    ('a', 'b', 'b')
    """
    if proba is None:
        return None
    if len(proba) == 2:
        first, second = proba
        return second if proba[second] > proba[first] else first
    return max(proba, key=proba.__getitem__) if proba else None


def plain(value: Any) -> Any:
    """A JSON-friendly Python value: NumPy scalars to Python ones, non-finite floats to None."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item):  # a NumPy scalar
        return plain(item())
    if isinstance(value, bool | int | str):  # subclasses: an IntEnum, a str subclass
        return value
    if isinstance(value, float):
        return plain(float(value))
    return str(value)


def plain_proba(proba: Mapping[Any, Any] | None) -> dict[Any, Any] | None:
    """Class probabilities as a plain dict of plain values (keys too)."""
    if proba is None:
        return None
    return {plain(label): plain(p) for label, p in proba.items()}
