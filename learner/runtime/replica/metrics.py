"""A serve replica's metrics, on top of what every reading program reports (README "Monitoring")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from learner.runtime.shared.monitor import StreamMetrics

__all__ = ["ReplicaMetrics"]


class ReplicaMetrics(StreamMetrics):
    """What a replica reports: the model it serves, how far behind the head, its reloads."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        r = self.registry
        self.reload_seconds = Histogram("learner_reload_seconds", "Serve replica: reading, verifying and unpickling "
                                        "a new model (off the hot path)", ["model"], registry=r)
        self.reload_failures = Counter("learner_reload_failures", "Serve replica: new models that did not load "
                                       "(the one at hand is served on)", ["model"], registry=r)
        self.versions_behind = Gauge("learner_versions_behind", "Serve replica: versions in the history newer than "
                                     "the one it serves", ["model"], registry=r)
        self.served_learned = Gauge("learner_served_learned", "Serve replica: events learned by the model it serves",
                                    ["model"], registry=r)

    def observe_follower(self, version: int | None, learned: int | None, behind: int, failures: int,
                         redis_up: bool) -> None:
        """The model it serves: the version and events learned, how far behind, failed reloads."""
        m = self.model
        if version is not None and learned is not None:
            self.version.labels(m).set(version)
            self.served_learned.labels(m).set(learned)
        self.versions_behind.labels(m).set(behind)
        self._grow(self.reload_failures.labels(m), "reload_failures", failures)
        self.redis_up.labels(m).set(1 if redis_up else 0)
