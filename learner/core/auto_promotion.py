"""When a champion promotes a challenger by itself (``--auto-promote``, README "Experiments").

A champion that checks its challengers' paired differences every few seconds and acts on the first
one that looks better is peeking: a fixed-horizon interval read again and again crosses zero by
chance sooner or later, even between two identical models. The rule here uses a *confidence
sequence* instead, an interval that holds at its confidence level at every moment at once, however
often it is read: the normal-mixture boundary (Robbins), with the differences' sample variance in
place of a known one, which makes it an asymptotic confidence sequence (Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas, *Time-uniform central limit theory and asymptotic confidence sequences*, 2024).
For a mean difference ``m`` over ``n`` events with sample variance ``s²``, and ``V = n·s²``::

    m ± sqrt((V + ρ) · ln((V + ρ) / (ρ · α²))) / n

``α`` is one minus the confidence; ``ρ = s² · min_paired`` makes the sequence tightest about where
a decision becomes possible. It is wider than the fixed-horizon interval of
:mod:`learner.core.paired` (the price of being allowed to look at every moment) and narrows as
events accumulate.

A challenger qualifies when at least ``min_paired`` events are paired, at least ``MIN_DISCORDANT``
of them had different losses, and the whole sequence lies below ``-margin`` (its loss is lower than
the champion's by more than the margin, in the loss's units). Of several, the one with the lowest
mean difference is chosen.

On real data (Phishing, prequentially): logistic regression against a constant prediction, 0/1
error; the sequence is wider than the one-off interval but clearly below zero, so it qualifies:

>>> from river import datasets, dummy, linear_model, preprocessing
>>> from learner.core.paired import PairedDifference, loss_for
>>> champion = dummy.NoChangeClassifier()
>>> challenger = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> loss, paired = loss_for("binary", ("Accuracy",)), PairedDifference()
>>> for x, y in datasets.Phishing():
...     theirs, ours = champion.predict_one(x), challenger.predict_one(x)
...     paired.add(loss.of(y, ours, None), loss.of(y, theirs, None))
...     champion.learn_one(x, y)
...     challenger.learn_one(x, y)
>>> once = paired.interval(loss.name).to_dict()
>>> rule = PromotionRule(margin=0.05, confidence=0.95, min_paired=500)
>>> low, high = rule.bounds(once)
>>> round(once["low"], 3), round(once["high"], 3), round(low, 3), round(high, 3)
(-0.41, -0.346, -0.43, -0.326)
>>> rule.choose({"logreg": once, "same": {**once, "value": 0.0}}).challenger
'logreg'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from learner.core.paired import CONFIDENCE, MIN_DISCORDANT

__all__ = ["Choice", "PromotionRule"]


@dataclass(frozen=True)
class Choice:
    """The challenger to promote, and the comparison that qualified it."""

    challenger: str
    metric: str
    value: float
    low: float
    high: float
    paired: int

    def describe(self) -> str:
        """One line for the log and the audit.

        >>> Choice("c", "error rate", -0.2, -0.25, -0.15, 1000).describe()
        'mean difference -0.2000 (error rate) over 1,000 paired events, confidence sequence [-0.2500, -0.1500]'
        """
        return (f"mean difference {self.value:+.4f} ({self.metric}) over {self.paired:,} paired events, "
                f"confidence sequence [{self.low:+.4f}, {self.high:+.4f}]")


@dataclass(frozen=True)
class PromotionRule:
    """The options of ``--auto-promote``: margin (loss units), confidence level, paired events needed."""

    margin: float = 0.0
    confidence: float = CONFIDENCE
    min_paired: int = 1000

    def bounds(self, difference: Mapping[str, Any]) -> tuple[float, float]:
        """The confidence sequence at this moment, for a difference as :meth:`Interval.to_dict` gives it
        (infinite until ``MIN_DISCORDANT`` events differed; exactly 0 when none did).

        >>> PromotionRule().bounds({"value": 0.0, "paired": 5000, "variance": 0.0, "discordant": 0})
        (0.0, 0.0)
        >>> PromotionRule().bounds({"value": -0.5, "paired": 5, "variance": 0.3, "discordant": 5})
        (-inf, inf)
        """
        n, mean = int(difference.get("paired") or 0), float(difference.get("value") or 0.0)
        variance, discordant = float(difference.get("variance") or 0.0), int(difference.get("discordant") or 0)
        if n >= 2 and discordant == 0:
            return 0.0, 0.0
        if n < 2 or discordant < MIN_DISCORDANT or variance <= 0.0:
            return -math.inf, math.inf
        alpha = 1.0 - self.confidence
        rho = variance * max(self.min_paired, 1)
        spread = n * variance + rho
        half = math.sqrt(spread * math.log(spread / (rho * alpha * alpha))) / n
        return mean - half, mean + half

    def qualifies(self, challenger: str, difference: Mapping[str, Any] | None) -> Choice | None:
        """The choice this challenger would be, or None when it does not qualify (see the module's docstring)."""
        if not difference or int(difference.get("paired") or 0) < self.min_paired:
            return None
        low, high = self.bounds(difference)
        if not high < -self.margin:
            return None
        return Choice(challenger, str(difference.get("metric", "")), float(difference["value"]), low, high,
                      int(difference["paired"]))

    def choose(self, differences: Mapping[str, Mapping[str, Any] | None]) -> Choice | None:
        """The qualifying challenger with the lowest mean difference, if any (``differences`` by challenger)."""
        qualified = [c for name, d in sorted(differences.items()) if (c := self.qualifies(name, d)) is not None]
        return min(qualified, key=lambda choice: choice.value, default=None)
