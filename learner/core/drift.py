"""Drift detection: on performance (a River detector on the per-event loss) and on the inputs.

Pure, like the learning step: the gateway feeds it what it already has (features, labels,
predictions) and reports what it finds.

Performance drift uses a detector that fires only when the loss *rises* (DDM on the 0/1 error of
a classifier, Page-Hinkley in "up" mode on a regressor's absolute error): a model getting better
while it warms up is not an alarm. Input drift compares tumbling windows of the features with a
reference window: numbers by mean shift (a z-test, and an effect size in reference standard
deviations, so a tiny shift on a huge window is not an alarm), strings by total variation
distance of their frequencies, and names features that appear or vanish. After a detection the
current window becomes the reference, so one change raises one alarm.

>>> detector = InputDrift(window=200, sample_every=1)
>>> found = []
>>> for i in range(1000):
...     found += detector.update({"a": float(i % 7) + (5.0 if i >= 600 else 0.0), "b": "x"})
>>> [(d.kind, d.what) for d in found]
[('input', 'a')]
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from river import drift

from learner.core.models import Task

__all__ = ["Detection", "InputDrift", "PerformanceDrift"]


@dataclass(frozen=True)
class Detection:
    """One drift alarm: what kind, what drifted, a human-readable detail, after which event, and when."""

    kind: str
    what: str
    detail: str
    event: int = 0
    at: float = field(default_factory=time.time)


class PerformanceDrift:
    """Alarms when the model's per-event loss rises."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.detector: Any = None
        if task in ("binary", "multiclass"):
            self.detector = drift.binary.DDM()
        elif task == "regression":
            self.detector = drift.PageHinkley(mode="up")
        self.seen = 0

    def update(self, y: Any, prediction: Any) -> Detection | None:
        if self.detector is None or prediction is None:
            return None
        self.seen += 1
        loss = (prediction != y) if self.task != "regression" else abs(float(prediction) - float(y))
        self.detector.update(loss)
        if self.detector.drift_detected:
            what = "error rate" if self.task != "regression" else "absolute error"
            return Detection("performance", what, f"the {what} rose", self.seen)
        return None


@dataclass
class _Feature:
    """Summary of one feature over a window: Welford mean/variance for numbers, counts for text."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    text: Counter[str] = field(default_factory=Counter)

    def add(self, value: Any) -> None:
        if type(value) is str:
            self.text[value] += 1
            return
        self.n += 1
        delta = float(value) - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (float(value) - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


class InputDrift:
    """Per-feature comparison of tumbling windows against a reference window."""

    def __init__(self, window: int = 5000, sample_every: int = 5, z: float = 5.0, effect: float = 0.5,
                 distance: float = 0.3) -> None:
        self.samples = max(10, window // sample_every)
        self.sample_every = sample_every
        self.z, self.effect, self.distance = z, effect, distance
        self.reference: dict[str, _Feature] | None = None
        self.current: dict[str, _Feature] = {}
        self.seen = self.taken = 0

    def update(self, x: dict[str, Any]) -> list[Detection]:
        self.seen += 1
        if self.seen % self.sample_every:
            return []
        for name, value in x.items():
            feature = self.current.get(name)
            if feature is None:
                feature = self.current[name] = _Feature()
            feature.add(value)
        self.taken += 1
        if self.taken < self.samples:
            return []
        found = self._compare() if self.reference is not None else []
        if self.reference is None or found:
            self.reference = self.current
        self.current, self.taken = {}, 0
        return found

    def _compare(self) -> list[Detection]:
        assert self.reference is not None
        found = []
        for name in sorted(self.reference.keys() | self.current.keys()):
            before, after = self.reference.get(name), self.current.get(name)
            if after is None:
                found.append(Detection("input", name, f"feature {name!r} vanished", self.seen))
            elif before is None:
                found.append(Detection("input", name, f"new feature {name!r}", self.seen))
            elif detail := self._shift(name, before, after):
                found.append(Detection("input", name, detail, self.seen))
        return found

    def _shift(self, name: str, before: _Feature, after: _Feature) -> str | None:
        if before.n > 1 and after.n > 1:
            spread = math.sqrt(before.variance) or 1e-12
            z = abs(after.mean - before.mean) / math.sqrt(before.variance / before.n + after.variance / after.n + 1e-24)
            if z > self.z and abs(after.mean - before.mean) / spread > self.effect:
                return f"feature {name!r}: mean {before.mean:.4g} -> {after.mean:.4g} ({z:.1f} standard errors)"
        if before.text and after.text:
            total_before, total_after = sum(before.text.values()), sum(after.text.values())
            tvd = 0.5 * sum(abs(before.text[k] / total_before - after.text[k] / total_after)
                            for k in before.text.keys() | after.text.keys())
            if tvd > self.distance:
                return f"feature {name!r}: category frequencies moved by {tvd:.2f} (total variation)"
        return None
