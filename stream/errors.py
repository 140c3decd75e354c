"""The errors the stream layer raises, translated from confluent-kafka at the boundary.

    StreamError
    ├── BrokerUnavailable   the bootstrap servers did not answer
    ├── TopicMissing        a topic the service reads does not exist
    └── DeliveryFailed      the broker refused or lost a produced message

Each carries a message fit for one line on a terminal.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

__all__ = ["BrokerUnavailable", "DeliveryFailed", "StreamError", "TopicMissing", "unreachable"]


class StreamError(Exception):
    """Base of every error raised by the stream package."""


class BrokerUnavailable(StreamError):
    """The Kafka bootstrap servers could not be reached."""


class TopicMissing(StreamError):
    """A topic the caller needs does not exist on the broker."""


class DeliveryFailed(StreamError):
    """A produced message was not delivered; outputs since the last snapshot are not safe."""


def unreachable(bootstrap: str, error: KafkaException | KafkaError) -> BrokerUnavailable:
    """The one way a failed metadata request is said: which servers, and librdkafka's reason."""
    reason = error.args[0] if isinstance(error, KafkaException) and error.args else error
    text = reason.str() if isinstance(reason, KafkaError) else str(reason)
    return BrokerUnavailable(f"cannot reach Kafka at {bootstrap}: {text}")
