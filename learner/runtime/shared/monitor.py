"""Prometheus metrics (README "Monitoring"): what every program that reads the input reports, on one
explicit registry per process; each role declares its own on top (:mod:`learner.runtime.model.metrics`,
:mod:`learner.runtime.replica.metrics`). Label values are bounded (model name, outcome, kind, window).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.codec import KINDS

__all__ = ["DEAD_LETTER_KINDS", "LATENCY_BUCKETS", "OUTCOMES", "StreamMetrics"]

OUTCOMES = ("consumed", "predicted", "learned", "dead_lettered")
#: The kinds of dead letters (README "Input events"): what a message can be wrong with, what the model
#: refuses, and labels that never joined their event.
DEAD_LETTER_KINDS = (*KINDS, "rejected", "label_duplicate", "label_expired", "label_unknown", "label_rejected")
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
        self.dead_letters = Counter("learner_dead_letters", "Dead letters by kind (the reason itself is in the "
                                    "message's error header)", ["model", "kind"], registry=r)
        for outcome in OUTCOMES:
            self.events.labels(model, outcome)
        for kind in DEAD_LETTER_KINDS:
            self.dead_letters.labels(model, kind)
        self._totals: dict[str, int] = {}

    def observe_totals(self, consumed: int, predicted: int, dead_lettered: int,
                       dead_letters: Mapping[str, int] | None = None) -> None:
        """Totals since the start (counted where the events are read), folded into the counters; dead
        letters also by kind."""
        self._count("consumed", consumed)
        self._count("predicted", predicted)
        self._count("dead_lettered", dead_lettered)
        for kind, total in (dead_letters or {}).items():
            self._grow(self.dead_letters.labels(self.model, kind), "dead:" + kind, total)

    def _count(self, outcome: str, total: int) -> None:
        """Counters only grow: add what the total grew by since the last report."""
        self._grow(self.events.labels(self.model, outcome), outcome, total)

    def _grow(self, counter: Counter, key: str, total: int) -> None:
        delta = total - self._totals.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        self._totals[key] = max(total, self._totals.get(key, 0))
