"""River estimators made for the tests, loaded by the service as ``--model tests.models:<name>``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from river import base


class Tally(base.Classifier):
    """Learns nothing but how many times it learned each event (by its ``i`` feature, else all its features).

    Its final state does not depend on the order of the events, so it checks exactly-once learning
    over several partitions, whose interleaving no one defines: every count must be exactly 1.
    """

    def __init__(self) -> None:
        self.seen: Counter[Any] = Counter()

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.seen[x["i"] if "i" in x else tuple(sorted(x.items()))] += 1

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return {False: 0.5, True: 0.5}


def tally() -> Tally:
    return Tally()


class ConstantTrue(base.Classifier):
    """Always says True, learns nothing: a challenger that is clearly worse than a real model."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return {False: 0.0, True: 1.0}


def constant_true() -> ConstantTrue:
    return ConstantTrue()


class CountingMajority(base.Classifier):
    """Counts how many times it learned each event (by its ``i`` feature) and predicts the class it
    learned most often so far: a model whose every answer and whose final state say exactly what it
    learned, in what order (promotion: nothing lost, nothing learned twice across the switch)."""

    def __init__(self) -> None:
        self.seen: Counter[Any] = Counter()
        self.classes: Counter[Any] = Counter()

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.seen[x["i"]] += 1
        self.classes[y] += 1

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        total = sum(self.classes.values())
        return {c: n / total for c, n in self.classes.items()} if total else {}


def counting_majority() -> CountingMajority:
    return CountingMajority()


class SignOfA(base.Classifier):
    """Says whether feature ``a`` is positive, learns nothing: its answer to an event does not depend on the
    order events come in, so its per-event losses can be computed offline whatever the partitions did."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        positive = x["a"] > 0
        return {positive: 1.0, not positive: 0.0}


def sign_of_a() -> SignOfA:
    return SignOfA()
