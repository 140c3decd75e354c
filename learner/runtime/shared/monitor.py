"""Prometheus metrics (README "Monitoring"): every metric declared here, on one explicit registry.

Label values are bounded (model name, outcome, kind, window). The gateway counts what it sees
(consumed, predicted, dead-lettered, latency, lag) and reports totals every second; the model
process owns the rest (learned, version, snapshots, lease) and folds the gateway's report in.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from learner.core.labels import COUNTS as LABEL_OUTCOMES
from learner.runtime.gateway.protocol import Report

__all__ = ["Monitor"]

OUTCOMES = ("consumed", "predicted", "learned", "dead_lettered")
DRIFT_KINDS = ("performance", "input")
REDIS_OPERATIONS = ("lease", "poll", "snapshot", "reply", "audit", "position", "load", "guard")
LABEL_DELAY_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 21_600.0, 86_400.0, 604_800.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Monitor:
    """The service's metrics, and the totals last reported by the gateway."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        r, m = self.registry, model
        self.events = Counter("learner_events", "Input events by outcome", ["model", "outcome"], registry=r)
        self.latency = Histogram("learner_event_latency_seconds", "From the input's Kafka timestamp to its "
                                 "prediction being produced", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("learner_consumer_lag", "Messages behind the end of each input partition",
                         ["model", "partition"], registry=r)
        self.version = Gauge("learner_model_version", "Snapshot version the model descends from", ["model"], registry=r)
        self.metric = Gauge("learner_metric", "Online metric, prequential", ["model", "name", "window"], registry=r)
        self.drift = Counter("learner_drift_detected", "Drift detections", ["model", "kind"], registry=r)
        self.snapshot_seconds = Histogram("learner_snapshot_seconds", "Snapshot duration (pause + background write)",
                                          ["model"], registry=r)
        self.snapshot_pause = Histogram("learner_snapshot_pause_seconds", "Time the stream waited for a snapshot",
                                        ["model"], registry=r)
        self.snapshot_bytes = Gauge("learner_snapshot_bytes", "Size of the last snapshot", ["model"], registry=r)
        self.lease_held = Gauge("learner_lease_held", "1 while this process holds the model's lease", ["model"], registry=r)
        self.guard_tripped = Gauge("learner_guard_tripped", "1 while learning is stopped by the guard", ["model"], registry=r)
        self.redis_up = Gauge("learner_redis_up", "1 while Redis answers this process, 0 during an outage", ["model"],
                              registry=r)
        self.redis_errors = Counter("learner_redis_errors", "Redis operations that failed, by operation",
                                    ["model", "operation"], registry=r)
        self.labels = Counter("learner_labels", "Labels from the labels topic, and waiting features, by what "
                              "became of them", ["model", "outcome"], registry=r)
        self.labels_waiting = Gauge("learner_labels_waiting", "Events whose features wait for their label", ["model"],
                                    registry=r)
        self.label_delay = Histogram("learner_label_delay_seconds", "From an event's prediction to its label "
                                     "(stream time)", ["model"], buckets=LABEL_DELAY_BUCKETS, registry=r)
        self.merge_late = Counter("learner_merge_late", "Events and labels that came after their partition was "
                                  "taken for idle (--merge-wait), applied out of the logs' order", ["model"], registry=r)
        self.model_seconds = Counter("learner_model_seconds", "Seconds the model process spent in the learning "
                                     "step (River's predict and learn); its rate is the model's utilisation",
                                     ["model"], registry=r)
        self.reload_seconds = Histogram("learner_reload_seconds", "Serve replica: reading, verifying and unpickling "
                                        "a new model (off the hot path)", ["model"], registry=r)
        self.reload_failures = Counter("learner_reload_failures", "Serve replica: new models that did not load "
                                       "(the one at hand is served on)", ["model"], registry=r)
        self.versions_behind = Gauge("learner_versions_behind", "Serve replica: versions in the history newer than "
                                     "the one it serves", ["model"], registry=r)
        self.served_learned = Gauge("learner_served_learned", "Serve replica: events learned by the model it serves",
                                    ["model"], registry=r)
        self.live_published = Counter("learner_live_published", "Learner: live models published for serve replicas",
                                      ["model"], registry=r)
        for outcome in OUTCOMES:
            self.events.labels(m, outcome)
        for kind in DRIFT_KINDS:
            self.drift.labels(m, kind)
        for operation in REDIS_OPERATIONS:
            self.redis_errors.labels(m, operation)
        for outcome in LABEL_OUTCOMES:
            self.labels.labels(m, outcome)
        self.merge_late.labels(m)
        self.model = model
        self._totals: dict[str, int] = {}
        self._model_seconds = 0.0
        self.gateway: Report | None = None  # the gateway's last report

    def observe_gateway(self, report: Report) -> None:
        """Fold in the gateway's once-a-second report (totals since it started)."""
        self.gateway = report
        self._count("consumed", report.consumed)
        self._count("predicted", report.predicted)
        self._count("dead_lettered", report.dead_lettered)
        for seconds in report.latencies:
            self.latency.labels(self.model).observe(seconds)
        if report.late > self._totals.get("late", 0):
            self.merge_late.labels(self.model).inc(report.late - self._totals.get("late", 0))
            self._totals["late"] = report.late
        for partition, lag in report.lag.items():
            self.lag.labels(self.model, str(partition)).set(lag)
        for name, windows in report.metrics.items():
            for window, value in windows.items():
                self.metric.labels(self.model, name, window).set(value)

    def observe_totals(self, consumed: int, predicted: int, dead_lettered: int) -> None:
        """A serve replica's totals since it started (it has no gateway to report them)."""
        self._count("consumed", consumed)
        self._count("predicted", predicted)
        self._count("dead_lettered", dead_lettered)

    def observe_follower(self, version: int | None, learned: int | None, behind: int, failures: int,
                         redis_up: bool) -> None:
        """A serve replica's model: the version and events learned it serves, how far behind, failed reloads."""
        m = self.model
        if version is not None and learned is not None:
            self.version.labels(m).set(version)
            self.served_learned.labels(m).set(learned)
        self.versions_behind.labels(m).set(behind)
        if failures > self._totals.get("reload_failures", 0):
            self.reload_failures.labels(m).inc(failures - self._totals.get("reload_failures", 0))
            self._totals["reload_failures"] = failures
        self.redis_up.labels(m).set(1 if redis_up else 0)

    def observe_learned(self, total: int, model_seconds: float) -> None:
        self._count("learned", total)
        if model_seconds > self._model_seconds:
            self.model_seconds.labels(self.model).inc(model_seconds - self._model_seconds)
            self._model_seconds = model_seconds

    def _count(self, outcome: str, total: int) -> None:
        """Counters only grow: add what the total grew by since the last report."""
        delta = total - self._totals.get(outcome, 0)
        if delta > 0:
            self.events.labels(self.model, outcome).inc(delta)
        self._totals[outcome] = max(total, self._totals.get(outcome, 0))

    def observe_labels(self, counts: dict[str, int], waiting: int, delays_ms: list[int]) -> None:
        """Fold in the join's totals, its waiting events, and the label delays since the last call."""
        for outcome, total in counts.items():
            self._count_label(outcome, total)
        self.labels_waiting.labels(self.model).set(waiting)
        for delay in delays_ms:
            self.label_delay.labels(self.model).observe(delay / 1000)

    def _count_label(self, outcome: str, total: int) -> None:
        delta = total - self._totals.get("label:" + outcome, 0)
        if delta > 0:
            self.labels.labels(self.model, outcome).inc(delta)
        self._totals["label:" + outcome] = max(total, self._totals.get("label:" + outcome, 0))

    def observe_snapshot(self, seconds: float, size: int) -> None:
        self.snapshot_seconds.labels(self.model).observe(seconds)
        self.snapshot_bytes.labels(self.model).set(size)
