"""The errors the stream layer raises, translated from confluent-kafka at the boundary.

    StreamError
    ├── BrokerUnavailable   the bootstrap servers did not answer (yet): worth waiting for
    ├── BrokerRefused       the broker answered no: authentication, TLS, authorization (fix the setup)
    ├── TopicMissing        a topic the service reads does not exist
    └── DeliveryFailed      the broker refused or lost a produced message

Each carries a message fit for one line on a terminal.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

__all__ = ["BrokerRefused", "BrokerUnavailable", "DeliveryFailed", "StreamError", "TopicMissing", "unreachable"]


class StreamError(Exception):
    """Base of every error raised by the stream package."""


class BrokerUnavailable(StreamError):
    """The Kafka bootstrap servers could not be reached."""


class BrokerRefused(StreamError):
    """The broker answered, and refused: a failed authentication or TLS handshake, no authorization."""


class TopicMissing(StreamError):
    """A topic the caller needs does not exist on the broker."""


class DeliveryFailed(StreamError):
    """A produced message was not delivered; outputs since the last snapshot are not safe."""


#: librdkafka's codes for a broker that answered and refused: retrying will not help.
_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
             KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED}


def unreachable(bootstrap: str, error: KafkaException | KafkaError, protocol: str | None = None,
                cause: KafkaError | None = None) -> BrokerUnavailable | BrokerRefused:
    """The one way a failed metadata request is said: which servers, with which security protocol,
    librdkafka's reason, and the underlying client error when there was one (``cause``)."""
    reason = error.args[0] if isinstance(error, KafkaException) and error.args else error
    text = reason.str() if isinstance(reason, KafkaError) else str(reason)
    where = f"{bootstrap} (security.protocol={protocol})" if protocol else bootstrap
    if cause is not None and cause.code() in _REFUSALS:
        return BrokerRefused(f"Kafka at {where} refused the connection: {cause.str()}")
    detail = f" ({cause.str()})" if cause is not None and cause.str() not in text else ""
    return BrokerUnavailable(f"cannot reach Kafka at {where}: {text}{detail}")
