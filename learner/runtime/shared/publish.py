"""Publishing: predictions onto the output topic and dead letters beside them, through one producer.

Every producing program shares it (the gateway of ``--role all``, a serve replica): the id rule, the
encoding, the key, what a full local queue does, and the delivery checks. Outputs are at least once:
a delivery that failed is raised by :meth:`Publisher.check`, and the snapshot barrier waits until
:meth:`Publisher.outstanding` is zero, so no snapshot covers a prediction the broker never took.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from confluent_kafka import Message

from learner.core.labels import Lost
from learner.core.predictions import plain, plain_proba
from stream import AsyncProducer, DeadLetters, encode_prediction

__all__ = ["Publisher", "event_id"]


def event_id(message: Message, given: Any) -> Any:
    """The id a prediction carries: the event's own, else where it came from."""
    return given if given is not None else f"{message.topic()}:{message.partition()}:{message.offset()}"


class Publisher:
    """The predictions of one model (keyed like their events) and its dead letters."""

    def __init__(self, producer: AsyncProducer, topic: str, dead_letter_topic: str, name: str,
                 dead_letters: bool = True) -> None:
        self.producer, self.topic, self.name = producer, topic, name
        self.dead_letters = DeadLetters(producer, dead_letter_topic)
        self.writes_dead_letters = dead_letters
        self.counted_only: Counter[str] = Counter()
        #: Dead-letter a message, with the reason and its kind (or only count it, when another process writes them).
        self.dead = self.dead_letters.send if dead_letters else self._count

    def prediction(self, message: Message, given_id: Any, prediction: Any, proba: Any, version: int, learned: int,
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

    def _count(self, _message: Message, _reason: str, kind: str) -> None:
        self.counted_only[kind] += 1

    def lost_label(self, lost: Lost, labels_topic: str) -> None:
        """An early label whose event never came: dead-lettered from what the join kept of it."""
        kind = f"label_{lost.kind}"
        if not self.writes_dead_letters:
            self.counted_only[kind] += 1
            return
        partition, offset = lost.source or (None, None)
        self.dead_letters.send_value(orjson.dumps({"id": lost.id, "y": lost.y}), None, lost.reason, kind, labels_topic,
                                     partition, offset)

    @property
    def dead_lettered(self) -> int:
        return self.dead_letters.count + self.counted_only.total()

    @property
    def dead_letter_kinds(self) -> dict[str, int]:
        """Dead letters by kind since the start (README "Input events")."""
        return dict(self.dead_letters.kinds + self.counted_only)

    def check(self) -> None:
        """Serve the producer's delivery reports; raises if one failed for good."""
        self.producer.poll()
        self.producer.check()

    def outstanding(self) -> int:
        """Messages produced and not yet acknowledged by the broker."""
        return self.producer.outstanding()
