"""Two models compared on exactly the same events: a per-event loss, and a paired test on it.

Two online metrics over different events say little: one model may simply have met easier
events. Compared on the same events, each event's difference of losses (the challenger's minus the
champion's) removes what the events have in common, and the mean of those differences has a
confidence interval from the central limit theorem (a paired z-interval: with the thousands of
events a stream brings, the t and normal quantiles agree to the third digit). It is a fixed-horizon
interval: read once at the end of a backtest it holds at its confidence level; a process that checks
it continuously and acts on the first crossing needs a test that stays valid when peeked at.

The loss follows the first metric the model is scored by, so that the interval speaks of the figure
the user reads: 0/1 error for accuracy-like metrics, log loss for LogLoss and CrossEntropy, absolute
error for MAE, squared error for MSE and RMSE. A metric with no per-event form (ROCAUC, F1,
MacroF1) is compared through the 0/1 error (classifiers) or the absolute error (regressors), and
the interval says which loss it is about. An anomaly score has no loss: nothing is tested.

On real data (the Phishing dataset, prequentially): logistic regression against a constant
prediction (its first answer is none: that event is not paired), per-event 0/1 error; negative
means the challenger errs less:

>>> from river import datasets, dummy, linear_model, preprocessing
>>> champion = dummy.NoChangeClassifier()
>>> challenger = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> loss, paired = loss_for("binary", ("Accuracy",)), PairedDifference()
>>> for x, y in datasets.Phishing():
...     theirs, ours = champion.predict_one(x), challenger.predict_one(x)
...     paired.add(loss.of(y, ours, None), loss.of(y, theirs, None))
...     champion.learn_one(x, y)
...     challenger.learn_one(x, y)
>>> interval = paired.interval(loss.name)
>>> interval.paired, interval.metric, round(interval.value, 3), interval.low < interval.value < interval.high < 0
(1249, 'error rate', -0.378, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, NamedTuple

from learner.core.models import Task

__all__ = ["CONFIDENCE", "MIN_DISCORDANT", "Interval", "Loss", "PairedDifference", "loss_for", "shown", "verdict"]

#: The default confidence level of the interval.
CONFIDENCE = 0.95
_SMALLEST = 1e-15  # a probability of 0 for the true class is taken as this (log loss stays finite)


class Loss(NamedTuple):
    """A per-event loss (smaller is better): its name, and the loss of one prediction (None: not scored)."""

    name: str
    of: Callable[[Any, Any, Any], float | None]


def _zero_one(y: Any, prediction: Any, _proba: Any) -> float | None:
    return None if prediction is None else float(prediction != y)


def _log_loss(y: Any, _prediction: Any, proba: Any) -> float | None:
    if not proba:
        return None
    return -math.log(min(1.0, max(_SMALLEST, float(proba.get(y, 0.0)))))


def _absolute(y: Any, prediction: Any, _proba: Any) -> float | None:
    return None if prediction is None else abs(float(y) - float(prediction))


def _squared(y: Any, prediction: Any, _proba: Any) -> float | None:
    return None if prediction is None else (float(y) - float(prediction)) ** 2


def loss_for(task: Task, metrics: tuple[str, ...]) -> Loss | None:
    """The per-event loss that speaks for the first of ``metrics`` (see the module's docstring).

    >>> loss_for("binary", ("LogLoss",)).name, loss_for("regression", ("RMSE",)).name
    ('log loss', 'squared error')
    >>> loss_for("multiclass", ("MacroF1",)).name, loss_for("anomaly", ("ROCAUC",))
    ('error rate', None)
    """
    first = metrics[0] if metrics else ""
    if task == "anomaly":
        return None
    if task == "regression":
        if first in ("MSE", "RMSE"):
            return Loss("squared error", _squared)
        return Loss("absolute error", _absolute)
    if first in ("LogLoss", "CrossEntropy"):
        return Loss("log loss", _log_loss)
    return Loss("error rate", _zero_one)


@dataclass(frozen=True)
class Interval:
    """The mean paired difference of losses (challenger minus champion) and its confidence interval."""

    metric: str
    value: float
    low: float
    high: float
    confidence: float
    paired: int
    #: The sample variance of the differences, and how many were not 0: what a sequential test
    #: (:mod:`learner.core.auto_promotion`) needs beside the mean.
    variance: float = 0.0
    discordant: int = 0

    def to_dict(self) -> dict[str, Any]:
        """For JSON: bounds that do not exist yet (fewer than two events paired) are null.

        >>> Interval("error rate", 0.0, -math.inf, math.inf, 0.95, 1).to_dict()["low"] is None
        True
        """
        return {"metric": self.metric, "value": self.value, "low": _finite(self.low), "high": _finite(self.high),
                "confidence": self.confidence, "paired": self.paired, "variance": self.variance,
                "discordant": self.discordant}


def _finite(bound: float) -> float | None:
    return bound if math.isfinite(bound) else None


def verdict(low: float | None, high: float | None) -> str:
    """What an interval of loss differences says, in words (smaller losses are better).

    >>> verdict(-0.02, -0.01), verdict(-0.01, 0.02), verdict(0.01, 0.02), verdict(None, None)
    ('better', 'no clear difference', 'worse', 'too few events')
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "too few events"
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "no clear difference"


#: Events on which the two losses must differ before an interval is given: with fewer, the normal
#: approximation says nothing true (two models that agree on all but three events are not "better"
#: at 95% because those three went one way).
MIN_DISCORDANT = 10


def shown(difference: dict[str, Any] | None) -> tuple[str, str, str]:
    """A difference (as :meth:`Interval.to_dict` gives it) as a table shows it: value, interval, verdict.

    >>> shown({"metric": "error rate", "value": -0.25, "low": -0.3, "high": -0.2})
    ('-0.2500 (error rate)', '[-0.3000, -0.2000]', 'better')
    >>> shown({"metric": "error rate", "value": 0.0, "low": None, "high": None}), shown(None)
    (('+0.0000 (error rate)', '—', 'too few events'), ('—', '—', 'no per-event loss'))
    """
    if difference is None:
        return "—", "—", "no per-event loss"
    low, high = difference["low"], difference["high"]
    says = verdict(low, high)
    return (f"{difference['value']:+.4f} ({difference['metric']})",
            "—" if says == "too few events" else f"[{low:+.4f}, {high:+.4f}]", says)


class PairedDifference:
    """Running mean and variance (Welford) of per-event loss differences; pickled with its owner.

    >>> few = PairedDifference()
    >>> for ours, theirs in [(0.0, 1.0)] * 3 + [(0.0, 0.0)] * 500:
    ...     few.add(ours, theirs)
    >>> few.interval("error rate").to_dict()["low"] is None  # three discordant events: no interval yet
    True
    """

    #: Events whose two losses differed (a class default: objects pickled before it existed have none).
    discordant = 0

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.discordant = 0

    def add(self, challenger: float | None, champion: float | None) -> None:
        """One event both scored; an event either could not score is left out of the pair."""
        if challenger is None or champion is None:
            return
        difference = challenger - champion
        self.n += 1
        self.discordant += difference != 0
        delta = difference - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (difference - self.mean)

    def interval(self, metric: str, confidence: float = CONFIDENCE) -> Interval:
        """The interval at ``confidence``: infinitely wide until ``MIN_DISCORDANT`` events had different losses
        (and exactly 0 when, over two events or more, none had)."""
        n, variance = self.n, self._m2 / (self.n - 1) if self.n >= 2 else 0.0
        if n >= 2 and self.discordant == 0:  # the same loss on every event: no difference, exactly
            return Interval(metric, 0.0, 0.0, 0.0, confidence, n)
        if n < 2 or self.discordant < MIN_DISCORDANT:
            return Interval(metric, self.mean, -math.inf, math.inf, confidence, n, variance, self.discordant)
        half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(variance / n)
        return Interval(metric, self.mean, self.mean - half, self.mean + half, confidence, n, variance, self.discordant)
