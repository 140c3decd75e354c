"""Everything that talks Kafka: a batch consumer, an asynchronous producer, codecs, dead letters.

This package knows nothing of River, models or Redis: it moves validated events in and
encoded bytes out, so that it can be tested (and reused) on its own.
"""

from stream.admin import Admin
from stream.codec import Event, InvalidEvent, Label, decode_event, decode_label, encode_prediction
from stream.consumer import BatchConsumer
from stream.deadletter import DeadLetters
from stream.errors import BrokerUnavailable, DeliveryFailed, StreamError, TopicMissing
from stream.fetch_watch import FetchWatch
from stream.producer import AsyncProducer

__all__ = [
    "Admin",
    "AsyncProducer",
    "BatchConsumer",
    "BrokerUnavailable",
    "DeadLetters",
    "DeliveryFailed",
    "Event",
    "FetchWatch",
    "InvalidEvent",
    "Label",
    "StreamError",
    "TopicMissing",
    "decode_event",
    "decode_label",
    "encode_prediction",
]
