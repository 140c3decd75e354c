"""Reading a batch off Kafka: decode and validate each message, dead-letter the bad ones, keep the
good ones in order with what their answers will need.

One module for every program that reads the input: the gateway (the events; or events and labels
in the merged order), a serve replica, and any process that reads the topic without serving it.
What goes to the model is each item's JSON (:mod:`learner.core.items`), the event's own bytes
spliced in, never decoded and encoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Message

from learner.core.items import event_item, label_item
from learner.core.positions import Position
from stream import InvalidEvent, decode_event, decode_label
from stream.merge import Key

__all__ = ["LABEL", "Intake", "Kept", "Reader"]



class _Label:
    """The id slot of a kept label (an event's is its own id, or None when it gave none)."""

    def __repr__(self) -> str:
        return "LABEL"


LABEL: Final = _Label()

#: Per item sent to the model: its message, the event's own id (or :data:`LABEL`), its label (or None).
Kept = tuple[Message, Any, Any]


@dataclass(slots=True)
class Intake:
    """One batch, decoded: what the model gets, and what its answers are matched with."""

    items: list[bytes]
    kept: list[Kept]
    #: The events' features, for the input drift detectors.
    features: list[dict[str, Any]]
    #: Where each partition the batch touched stands after it.
    done: Position
    #: Messages consumed for it, dead letters included.
    count: int

    def payload(self) -> bytes:
        """The items as one JSON array: the model process decodes it with one ``orjson.loads``."""
        return b"[" + b",".join(self.items) + b"]"

    def events(self) -> list[dict[str, Any]]:
        """The events as a step in this process takes them (a serve replica predicts in its own process)."""
        return [{"x": x, "y": y} for x, (_, _, y) in zip(self.features, self.kept, strict=True)]


class Reader:
    """Decodes batches of one model's input, sending what is invalid to ``dead`` with the reason."""

    def __init__(self, max_bytes: int, dead: Callable[[Message, str, str], None], labels_topic: str | None = None) -> None:
        self.max_bytes, self.dead, self.labels_topic = max_bytes, dead, labels_topic

    def events(self, messages: list[Message], topic: str) -> Intake:
        """A batch of the input topic, as it came (no labels topic)."""
        items: list[bytes] = []
        kept: list[Kept] = []
        features: list[dict[str, Any]] = []
        done: dict[Any, Any] = {}
        max_bytes, dead = self.max_bytes, self.dead
        for message in messages:
            try:
                event = decode_event(message.value(), max_bytes)
            except InvalidEvent as error:
                dead(message, str(error), error.kind)
            else:
                items.append(event.raw)
                kept.append((message, event.id, event.y))
                features.append(event.x)
            done[message.partition()] = message.offset()
        return Intake(items, kept, features, {(topic, partition): offset + 1 for partition, offset in done.items()},
                      len(messages))

    def merged(self, released: list[tuple[Key, Message]]) -> Intake:
        """Events and labels in the merged order, each with its merged timestamp (see :mod:`learner.core.items`)."""
        items: list[bytes] = []
        kept: list[Kept] = []
        features: list[dict[str, Any]] = []
        done: dict[tuple[str, int], int] = {}
        max_bytes, dead, labels = self.max_bytes, self.dead, self.labels_topic
        for key, message in released:
            topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            done[(topic, partition)] = offset + 1
            try:
                if topic == labels:
                    label = decode_label(message.value(), max_bytes)
                    items.append(label_item(key[0], label.id, label.y, partition, offset))
                    kept.append((message, LABEL, label.y))
                    continue
                event = decode_event(message.value(), max_bytes)
            except InvalidEvent as error:
                dead(message, str(error), error.kind)
                continue
            items.append(event_item(key[0], event.id if event.id is not None else f"{topic}:{partition}:{offset}",
                                    event.raw))
            kept.append((message, event.id, event.y))
            features.append(event.x)
        return Intake(items, kept, features, done, len(released))
