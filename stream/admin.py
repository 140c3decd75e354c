"""Topic checks and creation, so a missing topic is one clear line rather than a silent stall."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream.errors import BrokerUnavailable, StreamError
from stream.kafkalog import LIBRDKAFKA


def topic_partitions(bootstrap_servers: str, timeout: float = 10.0) -> dict[str, int]:
    """Topics on the broker with their partition counts."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap_servers}: {error.args[0].str()}") from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items() if not topic.error}


def ensure_topics(bootstrap_servers: str, topics: dict[str, int], timeout: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet (name -> partitions); returns those it created."""
    missing = {name: n for name, n in topics.items() if name not in topic_partitions(bootstrap_servers, timeout)}
    if not missing:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA})
    futures = admin.create_topics([NewTopic(name, n, 1) for name, n in missing.items()], operation_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another process won the race
                raise StreamError(f"cannot create topic {name!r}: {error.args[0].str()}") from None
    return sorted(missing)
