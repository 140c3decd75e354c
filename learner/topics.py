"""Every Kafka topic and consumer-group name the service derives, named in one place.

The twin of :mod:`learner.state.keys` for Kafka. The topics a user names (input, output, labels)
come from the settings; these are the ones derived from them or from the model's name, so that
an ACL on the broker can be written from this page: ``learner.<name>.*`` for the service's own
topics and groups, ``<input>.dlq`` for the dead letters unless ``--dlq-topic`` names one.

>>> names = TopicNames("fraud")
>>> names.group("all"), names.group("serve"), names.replicas, names.status_reader
('learner.fraud', 'learner.fraud.serve', 'learner.fraud.replicas', 'learner.fraud.status')
>>> names.group("challenger", "trees"), names.scores
('learner.fraud.challenger.trees', 'learner.fraud.scores')
>>> dead_letter_topic("payments")
'payments.dlq'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PREFIX", "TopicNames", "dead_letter_topic"]

#: Every topic and group the service names for itself starts with this.
PREFIX = "learner."


def dead_letter_topic(input_topic: str) -> str:
    """Where rejected input goes unless ``--dlq-topic`` says otherwise."""
    return f"{input_topic}.dlq"


@dataclass(frozen=True)
class TopicNames:
    """The topic and group names of one model."""

    name: str

    @property
    def base(self) -> str:
        return f"{PREFIX}{self.name}"

    def group(self, role: str, challenger: str | None = None) -> str:
        """The consumer group of a role: serve replicas share one of their own (the learner joins none,
        it assigns itself every partition, but commits its offsets under this group for lag tools; a
        challenger does the same under one of its own)."""
        if challenger is not None:
            return f"{self.base}.challenger.{challenger}"
        return f"{self.base}.serve" if role == "serve" else self.base

    @property
    def scores(self) -> str:
        """What the model scored, event by event, while it has challengers (one partition)."""
        return f"{self.base}.scores"

    @property
    def replicas(self) -> str:
        """The serve replicas' heartbeats (a replica never writes Redis), read by ``learner status``."""
        return f"{self.base}.replicas"

    @property
    def status_reader(self) -> str:
        """The group ``learner status`` reads the heartbeats under (it commits nothing)."""
        return f"{self.base}.status"
