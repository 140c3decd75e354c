"""Predictions onto the output topic, one at a time: the encoding every producing role shares.

The gateway's own loop for ``--role all`` inlines this (it is the service's hottest loop); the
labels path and the serve replica use it as it is.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from learner.core.predictions import plain, plain_proba
from stream import AsyncProducer, encode_prediction

__all__ = ["PredictionSink", "event_id"]


def event_id(message: Message, given: Any) -> Any:
    """The id a prediction carries: the event's own, else where it came from."""
    return given if given is not None else f"{message.topic()}:{message.partition()}:{message.offset()}"


class PredictionSink:
    """Encode and produce predictions of one model to one topic, keyed like their events."""

    def __init__(self, producer: AsyncProducer, topic: str, name: str) -> None:
        self.producer, self.topic, self.name = producer, topic, name

    def send(self, message: Message, given_id: Any, prediction: Any, proba: Any, version: int, learned: int,
             ts: float) -> None:
        key = event_id(message, given_id)
        try:
            value = encode_prediction(key, prediction, proba, self.name, version, learned, ts)
        except TypeError:  # NumPy scalars and the like: made plain only when the encoder refuses them
            value = encode_prediction(key, plain(prediction), plain_proba(proba), self.name, version, learned, ts)
        try:
            self.producer.produce_fast(self.topic, value, message.key())
        except BufferError:  # the local queue is full: wait for the broker to drain it
            self.producer.produce(self.topic, value, message.key())
