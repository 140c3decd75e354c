"""Dead letters (README "Input events"): the raw bytes of a bad message, with why and where it came from."""

from __future__ import annotations

from collections import Counter

from confluent_kafka import Message

from stream.producer import AsyncProducer

__all__ = ["DeadLetters"]


class DeadLetters:
    """Send rejected messages to the dead-letter topic, unchanged, with explanatory headers."""

    def __init__(self, producer: AsyncProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self.count = 0
        #: Dead letters sent, by kind (a bounded name the caller gives: for metrics).
        self.kinds: Counter[str] = Counter()

    def send(self, message: Message, reason: str, kind: str) -> None:
        """Dead-letter ``message``; the reason travels in the ``error`` header, its kind in ``error.kind``."""
        self.send_value(message.value() or b"", message.key(), reason, kind, str(message.topic()),
                        message.partition(), message.offset())

    def send_value(self, value: bytes, key: bytes | None, reason: str, kind: str, topic: str, partition: int | None,
                   offset: int | None) -> None:
        """Dead-letter a message that is no longer at hand, from what is known of it."""
        self.count += 1
        self.kinds[kind] += 1
        headers: list[tuple[str, str | bytes | None]] = [
            ("error", reason.encode()),
            ("error.kind", kind.encode()),
            ("source.topic", topic.encode()),
            ("source.partition", str(partition).encode()),
            ("source.offset", str(offset).encode()),
        ]
        self._producer.produce(self.topic, value, key, headers=headers)
