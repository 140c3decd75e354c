"""Topic checks and creation, so a missing topic is one clear line rather than a silent stall."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic  # type: ignore[attr-defined]

from stream.errors import StreamError, TopicMissing, unreachable
from stream.kafkalog import LIBRDKAFKA, ErrorTrap

__all__ = ["Admin", "partition_counts", "require_topics"]

#: librdkafka's code for a topic created meanwhile by someone else.
_TOPIC_ALREADY_EXISTS = 36


def partition_counts(metadata: ClusterMetadata) -> dict[str, int]:
    """Topics in a metadata response with their partition counts (topics in error left out)."""
    return {name: len(topic.partitions) for name, topic in metadata.topics.items() if not topic.error}


def require_topics(counts: Mapping[str, int], topics: list[str], bootstrap: str) -> None:
    """Raise TopicMissing for the first of ``topics`` the broker does not have."""
    missing = sorted(set(topics) - set(counts))
    if missing:
        raise TopicMissing(f"topic {missing[0]!r} does not exist on {bootstrap}")


class Admin:
    """Topic metadata and creation on one cluster."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._bootstrap = str(config.get("bootstrap.servers"))
        self._protocol = config.get("security.protocol")
        self._errors = ErrorTrap()
        settings: dict[str, Any] = {"logger": LIBRDKAFKA, "error_cb": self._errors, **config}
        self._admin = AdminClient(settings)

    def topic_partitions(self, timeout: float = 10.0) -> dict[str, int]:
        """Topics on the broker with their partition counts."""
        try:
            return partition_counts(self._admin.list_topics(timeout=timeout))
        except KafkaException as error:
            self._admin.poll(0.2)  # serve the client's own error reports: they say why
            raise unreachable(self._bootstrap, error, self._protocol, self._errors.last) from None

    def require(self, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
        """The partition counts of ``topics``; TopicMissing if one does not exist."""
        counts = self.topic_partitions(timeout)
        require_topics(counts, topics, self._bootstrap)
        return {topic: counts[topic] for topic in topics}

    def ensure(self, topics: Mapping[str, int], timeout: float = 10.0) -> list[str]:
        """Create the topics that do not exist yet (name -> partitions); returns those it created."""
        existing = self.topic_partitions(timeout)
        missing = {name: n for name, n in topics.items() if name not in existing}
        if not missing:
            return []
        futures = self._admin.create_topics([NewTopic(name, n, 1) for name, n in missing.items()],
                                            operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as error:
                if error.args[0].code() != _TOPIC_ALREADY_EXISTS:  # another process won the race
                    raise StreamError(f"cannot create topic {name!r}: {error.args[0].str()}") from None
        return sorted(missing)
