"""A learner's metrics (``--role all`` and ``learn``), on top of what every reading program reports.

The gateway counts what it sees (consumed, predicted, dead-lettered, latency, lag, the online
metrics) and reports totals every second; the model process owns the rest (learned, version,
snapshots, lease, guard, labels) and folds the gateway's numbers in (README "Monitoring").
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from learner.core.labels import COUNTS as LABEL_OUTCOMES
from learner.runtime.shared.monitor import StreamMetrics

__all__ = ["LearnerMetrics"]

DRIFT_KINDS = ("performance", "input")
REDIS_OPERATIONS = ("lease", "poll", "snapshot", "reply", "audit", "position", "load", "guard")
LABEL_DELAY_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 21_600.0, 86_400.0, 604_800.0)


class LearnerMetrics(StreamMetrics):
    """What a learner reports: learning, its online metrics, drift, snapshots, the lease, the guard, labels."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        r, m = self.registry, model
        self.metric = Gauge("learner_metric", "Online metric, prequential", ["model", "name", "window"], registry=r)
        self.drift = Counter("learner_drift_detected", "Drift detections", ["model", "kind"], registry=r)
        self.snapshot_seconds = Histogram("learner_snapshot_seconds", "Snapshot duration (pause + background write)",
                                          ["model"], registry=r)
        self.snapshot_pause = Histogram("learner_snapshot_pause_seconds", "Time the stream waited for a snapshot",
                                        ["model"], registry=r)
        self.snapshot_bytes = Gauge("learner_snapshot_bytes", "Size of the last snapshot", ["model"], registry=r)
        self.snapshot_failures = Counter("learner_snapshot_failures", "Snapshots that failed (Redis away or refusing, "
                                         "a state that did not pickle, fenced); retried with backoff", ["model"],
                                         registry=r)
        self.lease_held = Gauge("learner_lease_held", "1 while this process holds the model's lease", ["model"], registry=r)
        self.guard_tripped = Gauge("learner_guard_tripped", "1 while learning is stopped by the guard", ["model"], registry=r)
        self.redis_errors = Counter("learner_redis_errors", "Redis operations that failed, by operation",
                                    ["model", "operation"], registry=r)
        self.labels = Counter("learner_labels", "Labels from the labels topic, and waiting features, by what "
                              "became of them", ["model", "outcome"], registry=r)
        self.labels_waiting = Gauge("learner_labels_waiting", "Events whose features wait for their label", ["model"],
                                    registry=r)
        self.label_delay = Histogram("learner_label_delay_seconds", "From an event's prediction to its label "
                                     "(stream time)", ["model"], buckets=LABEL_DELAY_BUCKETS, registry=r)
        #: The median label delay of the newest joins, in ms (None before the first).
        self.label_delay_ms: int | None = None
        self.merge_late = Counter("learner_merge_late", "Events and labels that came after their partition was "
                                  "taken for idle (--merge-wait), applied out of the logs' order", ["model"], registry=r)
        self.model_seconds = Counter("learner_model_seconds", "Seconds the model process spent in the learning "
                                     "step (River's predict and learn); its rate is the model's utilisation",
                                     ["model"], registry=r)
        self.challenger_paired = Gauge("learner_challenger_paired_events", "Challenger: events paired with the "
                                       "champion (both answered them)", ["model", "challenger"], registry=r)
        self.challenger_metric = Gauge("learner_challenger_metric", "Challenger: an online metric over the paired "
                                       "events, for the challenger and for the champion (side)",
                                       ["model", "challenger", "side", "name", "window"], registry=r)
        self.challenger_difference = Gauge("learner_challenger_difference", "Challenger: mean per-event loss "
                                           "difference (challenger minus champion; negative: the challenger errs "
                                           "less) and its confidence interval (bound: value, low, high)",
                                           ["model", "challenger", "bound"], registry=r)
        self.live_published = Counter("learner_live_published", "Learner: live models published for serve replicas",
                                      ["model"], registry=r)
        for kind in DRIFT_KINDS:
            self.drift.labels(m, kind)
        for operation in REDIS_OPERATIONS:
            self.redis_errors.labels(m, operation)
        for outcome in LABEL_OUTCOMES:
            self.labels.labels(m, outcome)
        self.merge_late.labels(m)
        self.snapshot_failures.labels(m)
        self._model_seconds = 0.0

    def started(self, learning: bool, version: int) -> None:
        """The learner holds the lease and streams from ``version``."""
        self.lease_held.labels(self.model).set(1)
        self.guard_tripped.labels(self.model).set(0 if learning else 1)
        self.version.labels(self.model).set(version)

    def observe_pairing(self, pairing: dict[str, Any] | None) -> None:
        """A challenger's standing against its champion (labelled ``model`` and ``challenger``)."""
        if pairing is None:
            return
        model, _, challenger = self.model.partition("/")
        self.challenger_paired.labels(model, challenger).set(pairing["paired_events"])
        for side in ("metrics", "champion"):
            for name, windows in pairing[side].items():
                for window, value in windows.items():
                    self.challenger_metric.labels(model, challenger, "challenger" if side == "metrics" else "champion",
                                                  name, window).set(value)
        for bound in ("value", "low", "high"):
            if (difference := pairing.get("difference")) and difference.get(bound) is not None:
                self.challenger_difference.labels(model, challenger, bound).set(difference[bound])

    def observe_stream(self, consumed: int, predicted: int, dead_lettered: int, latencies: list[float],
                       lag: dict[str, int], metrics: dict[str, dict[str, float]], late: int,
                       dead_letters: dict[str, int] | None = None) -> None:
        """Fold in the gateway's once-a-second numbers (totals since it started, samples since the last)."""
        self.observe_totals(consumed, predicted, dead_lettered, dead_letters)
        for seconds in latencies:
            self.latency.labels(self.model).observe(seconds)
        self._grow(self.merge_late.labels(self.model), "late", late)
        for partition, behind in lag.items():
            self.lag.labels(self.model, str(partition)).set(behind)
        for name, windows in metrics.items():
            for window, value in windows.items():
                self.metric.labels(self.model, name, window).set(value)

    def observe_learned(self, total: int, model_seconds: float) -> None:
        self._count("learned", total)
        if model_seconds > self._model_seconds:
            self.model_seconds.labels(self.model).inc(model_seconds - self._model_seconds)
            self._model_seconds = model_seconds

    def observe_labels(self, counts: dict[str, int], waiting: int, delays_ms: list[int]) -> None:
        """Fold in the join's totals, its waiting events, and the label delays since the last call."""
        for outcome, total in counts.items():
            self._grow(self.labels.labels(self.model, outcome), "label:" + outcome, total)
        self.labels_waiting.labels(self.model).set(waiting)
        if delays_ms:  # the median of the joins since the last call: what ``/status`` and the dashboard show
            self.label_delay_ms = sorted(delays_ms)[len(delays_ms) // 2]
        for delay in delays_ms:
            self.label_delay.labels(self.model).observe(delay / 1000)

    def label_figures(self) -> dict[str, int]:
        """``{"delay_ms": median}`` of the newest joins, for the status; empty before the first join."""
        return {} if self.label_delay_ms is None else {"delay_ms": self.label_delay_ms}

    def observe_snapshot(self, seconds: float, size: int) -> None:
        self.snapshot_seconds.labels(self.model).observe(seconds)
        self.snapshot_bytes.labels(self.model).set(size)
