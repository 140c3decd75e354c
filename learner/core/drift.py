"""Drift detection: on performance (a River detector on the per-event loss) and on the inputs.

Pure, like the learning step: the gateway feeds it what it already has (features, labels,
predictions) and reports what it finds. Both are part of the scorecard, so they are snapshotted
and follow a rollback.

Chosen by measurement (``bench/drift.py``; BENCHMARKS.md has the tables): at most one false alarm
per 20,000 stationary events on every stream tried, and a change at event 5,000 detected within
1,000 events, with the shortest delay that allows.

**Performance drift** is River's ADWIN (``delta=1e-5``, ``clock=8``) on the loss: a classifier's 0/1
error; a regressor's absolute error divided by a scale frozen at the end of the warm-up (its mean
over the last 1,000 warm-up events) and capped at 5. ADWIN's bound assumes values of order one:
raw errors in the target's own units make it blind (small units) or trigger-happy (large ones),
a *running* scale turns every improvement into a later apparent rise, and the cap keeps a few
outliers from looking like a shift. ADWIN is two-sided: a detection is an alarm only when the
window it keeps has a higher mean than the one it dropped (the loss rose; a model getting better
is not an alarm). Nothing is fed for the first ``warmup`` events, which follow what the detector
needs (``WARMUP``): a classifier's 0/1 error needs no scale, and 1,000 events let a young model's
error settle; a regressor's scale is its mean error over events 1,001–2,000. A young model's loss
moves on its own: on a stationary stream a Hoeffding tree's error jumps once after its first splits
(one alarm, at about event 3,500 on Hyperplane), the price of seeing a change at event 5,000 at all
(a warm-up of 10,000 events, as before, saw none).

**Input drift** compares tumbling windows of sampled features with a reference window: numbers by
mean shift (more than ``z`` standard errors *and* more than ``effect`` reference standard
deviations) and by spread (standard deviation ratio beyond ``spread``, significant at ``z``);
strings by the total variation distance of their frequencies, when also significant (chi-square),
with categories rarer than 20 in both windows lumped together; features that appear or vanish
are named. A window compares only what it has at least ``min_count`` values of. After a
detection the current window becomes the reference, so one change raises one alarm.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from river import drift
from scipy.stats import chi2

from learner.core.models import Task

__all__ = ["WARMUP", "Detection", "InputDrift", "PerformanceDrift"]

#: Categories seen fewer times than this in both windows together are compared as one.
_RARE = 20
_OTHER = "\0other"


@dataclass(frozen=True)
class Detection:
    """One drift alarm: what kind, what drifted, a human-readable detail, after which event, and when."""

    kind: str
    what: str
    detail: str
    event: int = 0
    at: float = field(default_factory=time.time)


#: Events not fed to the performance detector at first, by what its loss needs (see the module's docstring).
WARMUP = {"classification": 1_000, "regression": 2_000}


class PerformanceDrift:
    """Alarms when the model's per-event loss rises (see the module's docstring).

    >>> detector = PerformanceDrift("binary", warmup=100)
    >>> alarms = [i for i in range(4000) if detector.update(True, (i % 10 != 0) if i < 2000 else (i % 2 == 0))]
    >>> 2000 < alarms[0] < 2300 and len(alarms)
    1
    >>> PerformanceDrift("binary").warmup, PerformanceDrift("regression").warmup, PerformanceDrift("regression").scale_from
    (1000, 2000, 1000)
    """

    def __init__(self, task: Task, warmup: int | None = None, delta: float = 1e-5, clock: int = 8,
                 scale_events: int = 1_000, cap: float = 5.0) -> None:
        self.task = task
        self.regression = task == "regression"
        adwin: Any = drift.ADWIN
        self.detector: Any = adwin(delta=delta, clock=clock) if task != "anomaly" else None
        self.cap, self.scale_events = cap, scale_events
        self.rewarm(warmup)
        self.scale: float | None = None if self.regression else 1.0
        self._scale_sum, self._scale_n = 0.0, 0
        # The sum and count of ADWIN's window: it only drops values when it detects (and starts
        # afresh then), so these equal its own total and width, without reading them every event.
        self._sum, self._n = 0.0, 0
        self.seen = 0

    def rewarm(self, warmup: int | None) -> None:
        """Set the warm-up (None: the task's default, ``WARMUP``); a detector past it is not changed.

        >>> detector = PerformanceDrift("regression", warmup=10_000)
        >>> detector.rewarm(None)
        >>> detector.warmup, detector.scale_from
        (2000, 1000)
        """
        if getattr(self, "seen", 0) > getattr(self, "warmup", 0):
            return  # learning from the loss already
        chosen = WARMUP["regression" if self.regression else "classification"] if warmup is None else warmup
        self.warmup = chosen
        self.scale_from = max(0, chosen - min(getattr(self, "scale_events", 1_000), max(chosen // 2, 1)))

    def update(self, y: Any, prediction: Any) -> Detection | None:
        """Feed one prediction's loss; an alarm if it raised one."""
        found = self.update_batch(((y, prediction, None),))
        return found[0] if found else None

    def update_batch(self, scored: Iterable[tuple[Any, Any, Any]]) -> list[Detection]:
        """Feed a batch's (label, prediction, ...) in order; the alarms they raised. The one loop the
        gateway runs per batch, without a call per event."""
        found: list[Detection] = []
        detector = self.detector
        if detector is None:
            return found
        feed, regression = detector.update, self.regression
        for y, prediction, _ in scored:
            if prediction is None:
                continue
            self.seen += 1
            if regression:
                if (loss := self._scaled(abs(float(prediction) - float(y)))) is None:
                    continue
            elif self.seen <= self.warmup:
                continue
            else:
                loss = 1.0 if prediction != y else 0.0
            self._sum += loss
            self._n += 1
            feed(loss)
            if detector.drift_detected and (alarm := self._alarm()) is not None:
                found.append(alarm)
        return found

    def _scaled(self, loss: float) -> float | None:
        """A regressor's absolute error in units of its warm-up error, capped; None while warming up."""
        if self.scale is None:
            if self.seen > self.scale_from:
                self._scale_sum += loss
                self._scale_n += 1
            if self.seen <= self.warmup:
                return None
            self.scale = self._scale_sum / self._scale_n if self._scale_sum > 0 else 1.0
        return min(loss / self.scale, self.cap)

    def _alarm(self) -> Detection | None:
        """ADWIN dropped part of its window: an alarm when what it kept is worse than the whole."""
        rose = self.detector.estimation > self._sum / self._n
        self._sum, self._n = 0.0, 0
        if not rose:
            return None
        what = "absolute error" if self.regression else "error rate"
        return Detection("performance", what, f"the {what} rose", self.seen)


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

    @property
    def count(self) -> int:
        return self.n + sum(self.text.values())


class InputDrift:
    """Per-feature comparison of tumbling windows against a reference window (see the module's docstring)."""

    def __init__(self, window: int = 5000, sample_every: int = 5, z: float = 5.0, effect: float = 0.25,
                 distance: float = 0.1, min_count: int = 30, spread: float = 1.5, p_max: float = 5.7e-7) -> None:
        self.samples = max(10, window // sample_every)
        self.sample_every = sample_every
        self.z, self.effect, self.distance = z, effect, distance
        self.min_count, self.spread, self.p_max = min_count, spread, p_max
        self.reference: dict[str, _Feature] | None = None
        self.current: dict[str, _Feature] = {}
        self.seen = self.taken = 0

    def update(self, x: dict[str, Any]) -> list[Detection]:
        self.seen += 1
        if self.seen % self.sample_every:
            return []
        return self._sample(x)

    def update_batch(self, xs: list[dict[str, Any]]) -> list[Detection]:
        """:meth:`update` over several events, visiting only the sampled ones (a slice, not a loop).

        >>> one, many = InputDrift(window=100, sample_every=3), InputDrift(window=100, sample_every=3)
        >>> xs = [{"a": float(i)} for i in range(1000)]
        >>> found = [(d.what, d.event) for x in xs for d in one.update(x)]
        >>> found == [(d.what, d.event) for d in many.update_batch(xs[:500]) + many.update_batch(xs[500:])]
        True
        >>> len(found), one.seen == many.seen == 1000
        (9, True)
        """
        every, found = self.sample_every, []
        first = (every - 1 - self.seen % every) % every  # the index of the next sampled event
        seen = self.seen
        for i, x in enumerate(xs[first::every]):
            self.seen = seen + first + i * every + 1
            found += self._sample(x)
        self.seen = seen + len(xs)
        return found

    def _sample(self, x: dict[str, Any]) -> list[Detection]:
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
        for name in sorted(self.reference.keys() | self.current.keys(), key=str):
            before, after = self.reference.get(name), self.current.get(name)
            if after is None:
                if before is not None and before.count >= self.min_count:
                    found.append(Detection("input", name, f"feature {name!r} vanished", self.seen))
            elif before is None:
                if after.count >= self.min_count:
                    found.append(Detection("input", name, f"new feature {name!r}", self.seen))
            elif detail := self._numbers_moved(name, before, after) or self._categories_moved(name, before, after):
                found.append(Detection("input", name, detail, self.seen))
        return found

    def _numbers_moved(self, name: str, before: _Feature, after: _Feature) -> str | None:
        if before.n < self.min_count or after.n < self.min_count:
            return None
        sd = math.sqrt(before.variance) or 1e-12
        shift = abs(after.mean - before.mean)
        z = shift / math.sqrt(before.variance / before.n + after.variance / after.n + 1e-24)
        if z > self.z and shift / sd > self.effect:
            return f"feature {name!r}: mean {before.mean:.4g} -> {after.mean:.4g} ({z:.1f} standard errors)"
        if before.variance > 0 and after.variance > 0:
            log_ratio = abs(math.log(after.variance / before.variance))
            standard_error = math.sqrt(2 / (before.n - 1) + 2 / (after.n - 1))
            if log_ratio > 2 * math.log(self.spread) and log_ratio / standard_error > self.z:
                return f"feature {name!r}: standard deviation {sd:.4g} -> {math.sqrt(after.variance):.4g}"
        return None

    def _categories_moved(self, name: str, before: _Feature, after: _Feature) -> str | None:
        total_before, total_after = sum(before.text.values()), sum(after.text.values())
        if total_before < self.min_count or total_after < self.min_count:
            return None
        pooled = before.text + after.text
        counts_before: Counter[str] = Counter()
        counts_after: Counter[str] = Counter()
        for category, count in before.text.items():
            counts_before[category if pooled[category] >= _RARE else _OTHER] += count
        for category, count in after.text.items():
            counts_after[category if pooled[category] >= _RARE else _OTHER] += count
        categories = counts_before.keys() | counts_after.keys()
        tvd = 0.5 * sum(abs(counts_before[c] / total_before - counts_after[c] / total_after) for c in categories)
        if tvd <= self.distance or len(categories) < 2:
            return None
        total, statistic = total_before + total_after, 0.0
        for category in categories:
            column = counts_before[category] + counts_after[category]
            expected_before, expected_after = column * total_before / total, column * total_after / total
            statistic += (counts_before[category] - expected_before) ** 2 / expected_before
            statistic += (counts_after[category] - expected_after) ** 2 / expected_after
        p = float(chi2.sf(statistic, len(categories) - 1))
        if p >= self.p_max:
            return None
        return f"feature {name!r}: category frequencies moved by {tvd:.2f} (total variation, p={p:.1e})"
