"""Prometheus metrics (README "Monitoring"): what every program that reads the input reports, on one
explicit registry per process; each role declares its own on top (:mod:`learner.runtime.model.metrics`,
:mod:`learner.runtime.replica.metrics`). Label values are bounded (model name, outcome, kind, window).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "OUTCOMES", "StreamMetrics"]

OUTCOMES = ("consumed", "predicted", "learned", "dead_lettered")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamMetrics:
    """Events by outcome, latency, lag, the version served or learned, whether Redis answers."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model = model
        self.events = Counter("learner_events", "Input events by outcome", ["model", "outcome"], registry=r)
        self.latency = Histogram("learner_event_latency_seconds", "From the input's Kafka timestamp to its "
                                 "prediction being produced", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("learner_consumer_lag", "Messages behind the end of each input partition",
                         ["model", "partition"], registry=r)
        self.version = Gauge("learner_model_version", "Snapshot version the model descends from", ["model"], registry=r)
        self.redis_up = Gauge("learner_redis_up", "1 while Redis answers this process, 0 during an outage", ["model"],
                              registry=r)
        for outcome in OUTCOMES:
            self.events.labels(model, outcome)
        self._totals: dict[str, int] = {}

    def observe_totals(self, consumed: int, predicted: int, dead_lettered: int) -> None:
        """Totals since the start (counted where the events are read), folded into the counters."""
        self._count("consumed", consumed)
        self._count("predicted", predicted)
        self._count("dead_lettered", dead_lettered)

    def _count(self, outcome: str, total: int) -> None:
        """Counters only grow: add what the total grew by since the last report."""
        self._grow(self.events.labels(self.model, outcome), outcome, total)

    def _grow(self, counter: Counter, key: str, total: int) -> None:
        delta = total - self._totals.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        self._totals[key] = max(total, self._totals.get(key, 0))
