"""The gateway's input with a labels topic: events and labels, merged in timestamp order.

The order is :class:`stream.merge.TimestampMerge`'s (a function of the logs: see its docstring);
this part feeds it what the consumer hands out, tells it which partitions are read to their end
(from the fetch responses' watermarks, no round trip), and pauses a partition whose buffer runs
far ahead of the others (one quiet partition must not make the gateway hold the rest in memory).
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message

from learner.core.positions import Position
from learner.settings import Settings
from stream import BatchConsumer
from stream.merge import Key, TimestampMerge

__all__ = ["LABELS_FIRST", "MergedInput"]

#: Topic ranks: on equal timestamps a label goes before an event (as River's simulate_qa reveals it).
LABELS_FIRST = 0


class MergedInput:
    """Input events and labels of one model, in the merged order."""

    def __init__(self, settings: Settings, consumer: BatchConsumer) -> None:
        assert settings.labels_topic is not None
        self.labels_topic = settings.labels_topic
        self.consumer = consumer
        self.merge = TimestampMerge({settings.labels_topic: LABELS_FIRST, settings.input_topic: LABELS_FIRST + 1},
                                    settings.merge_wait, round(settings.merge_allowance * 1000))
        self._received: dict[tuple[str, int], int] = {}  # next offset to arrive, per partition
        self._paused: set[tuple[str, int]] = set()

    def assign(self, partitions: list[tuple[str, int]], marks: dict[tuple[str, int], int], position: Position) -> None:
        """Start with these partitions, each at ``position`` (from its beginning when absent): a partition
        that starts at its end is read to its end, with nothing received yet."""
        self.merge.assign(partitions, marks, time.monotonic())
        self._received.update((tp, offset) for tp, offset in position.items() if tp in partitions)

    def wait(self, longest: float) -> float:
        """How long to wait for new messages: at most ``longest``, less when a buffered message may
        go by the clock (the merge's allowance) before any new message comes."""
        wake = self.merge.wake_in(int(time.time() * 1000))
        return longest if wake is None else min(longest, wake)

    def take(self, messages: list[Message], limit: int) -> list[tuple[Key, Message]]:
        """Add what was consumed; what can be released now, in order, with its key."""
        now = time.monotonic()
        self.merge.polled(now)
        for message in messages:
            self.merge.add(message, now)
            self._received[(str(message.topic()), int(message.partition() or 0))] = int(message.offset() or 0) + 1
        for tp, part in self.merge.partitions.items():
            if not part.buffer:
                marks = self.consumer.watermarks(*tp)
                self.merge.caught_up(tp, marks is not None and self._received.get(tp, marks[0]) >= marks[1])
        self._pace()
        return self.merge.release(now, limit, int(time.time() * 1000))

    def _pace(self) -> None:
        full = set(self.merge.overfull()) - self._paused
        if full:
            self.consumer.pause(sorted(full))
            self._paused |= full
        low = self._paused & set(self.merge.drained())
        if low:
            self.consumer.resume(sorted(low))
            self._paused -= low

    def is_label(self, message: Any) -> bool:
        return bool(message.topic() == self.labels_topic)

    def clear(self, marks: dict[tuple[str, int], int], position: Position) -> None:
        """A seek to ``position``: drop what is buffered; every partition starts again from its mark."""
        self.merge.clear(marks)
        self._received = {tp: offset for tp, offset in position.items() if tp in self.merge.partitions}
        if self._paused:
            self.consumer.resume(sorted(self._paused))
            self._paused.clear()
