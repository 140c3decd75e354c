"""Several partitions (of one or more topics) in one deterministic order: by timestamp.

Two topics consumed side by side (input events and their delayed labels) have no defined
interleaving: the bytes arrive when they arrive. To make a replay, or a restart after a crash,
apply them in the same order as the first time, messages are released in the order of their
**key** ``(timestamp, topic rank, partition, offset)``, a function of the logs alone:

- the timestamp is the message's Kafka timestamp, made monotone per partition (a message earlier
  than the one before it in its partition counts as that one's time: Kafka orders a partition by
  offset, and a producer's clock may step back);
- on equal timestamps the topic with the smaller rank goes first (labels before events: a label
  due at the moment of a question is revealed before it, as River's ``simulate_qa`` does), then
  the partition, then the offset.

A message is released once no other partition can still bring one with a smaller key: every
partition either has a message buffered with a larger key, cannot go below its monotone mark, or is
**idle** (read up to its end, and quiet for ``idle_after`` seconds). The idle rule is what keeps a
quiet topic from holding the stream forever, and what makes the order depend on timing after all:
a message that arrives on an idle partition with a key smaller than one already released is
**late**; it is released at once and counted. Without late messages the order is the logs' own.

>>> from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
>>> def message(topic, offset, ms):
...     return Message(topic=topic, partition=0, offset=offset, timestamp=(TIMESTAMP_CREATE_TIME, ms))
>>> merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5)
>>> merge.assign([("labels", 0), ("events", 0)], now=0.0)
>>> for m in [message("events", 0, 100), message("events", 1, 200), message("labels", 0, 150)]:
...     merge.add(m)
>>> [(m.topic(), m.offset()) for _, m in merge.release(now=0.1)]  # labels may still bring one before 200
[('events', 0), ('labels', 0)]
>>> [(m.topic(), m.offset()) for _, m in merge.release(now=0.2)]
[]
>>> merge.caught_up(("labels", 0), True)
>>> [(key, m.offset()) for key, m in merge.release(now=1.0)]  # labels idle: events go on
[((200, 1, 0, 1), 1)]
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Keyed", "TimestampMerge"]

#: (topic, partition)
TP = tuple[str, int]
#: Monotone timestamp (ms), topic rank, partition, offset.
Key = tuple[int, int, int, int]
NO_MARK = -(2**62)


class Keyed(Protocol):
    """What the merge needs of a message (confluent-kafka's Message has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass
class _Partition:
    rank: int
    mark: int = NO_MARK  # the monotone timestamp of the last message released (and of the last arrived)
    arrived_mark: int = NO_MARK
    buffer: deque[tuple[Key, Any]] = field(default_factory=deque)
    last_arrival: float = 0.0
    at_end: bool = False


class TimestampMerge:
    """Buffers messages per partition and releases them in key order (see the module's docstring)."""

    def __init__(self, ranks: dict[str, int], idle_after: float, buffer_limit: int = 50_000) -> None:
        self.ranks, self.idle_after, self.buffer_limit = ranks, idle_after, buffer_limit
        self.partitions: dict[TP, _Partition] = {}
        self.late = 0
        self._released: Key | None = None
        self._polled = 0.0

    def assign(self, partitions: list[TP], marks: dict[TP, int] | None = None, now: float = 0.0) -> None:
        """Start with these partitions; ``marks``: their monotone timestamps at the starting position."""
        for tp in partitions:
            mark = (marks or {}).get(tp, NO_MARK)
            self.partitions[tp] = _Partition(self.ranks[tp[0]], mark, mark, last_arrival=now)

    def add(self, message: Any, now: float | None = None) -> None:
        """Buffer one message (in its partition's offset order, as the consumer hands them out)."""
        tp = (message.topic(), message.partition())
        part = self.partitions[tp]
        kind, stamp = message.timestamp()
        ts = max(stamp if kind else NO_MARK, part.arrived_mark)
        part.arrived_mark = ts
        key = (ts, part.rank, tp[1], message.offset())
        if self._released is not None and key < self._released and not part.buffer:
            self.late += 1  # after its partition went idle: released now, out of the logs' order
            key = (self._released[0], *key[1:])
        part.buffer.append((key, message))
        part.at_end = False
        if now is not None:
            part.last_arrival = now

    def caught_up(self, tp: TP, at_end: bool) -> None:
        """Say whether ``tp`` has been read up to its end (its high watermark)."""
        self.partitions[tp].at_end = at_end

    def polled(self, now: float) -> None:
        """The consumer was asked for messages now: a pause in asking does not make partitions idle."""
        if now - self._polled > self.idle_after / 2:
            for part in self.partitions.values():
                part.last_arrival = max(part.last_arrival, now)
        self._polled = now

    def release(self, now: float, limit: int = 1 << 30) -> list[tuple[Key, Any]]:
        """The messages that can go now, in key order (at most ``limit``), each with its key."""
        heads = [(part.buffer[0][0], tp) for tp, part in self.partitions.items() if part.buffer]
        heapq.heapify(heads)
        blocking = [(part.mark, part.rank, tp[1]) for tp, part in self.partitions.items()
                    if not part.buffer and not (part.at_end and now - part.last_arrival >= self.idle_after)]
        floor = min(blocking) if blocking else None
        out: list[tuple[Key, Any]] = []
        while heads and len(out) < limit:
            key, tp = heads[0]
            if floor is not None and key[:3] >= floor:
                break  # a partition with nothing buffered may still bring a smaller key
            part = self.partitions[tp]
            _, message = part.buffer.popleft()
            part.mark = key[0]
            self._released = key
            out.append((key, message))
            if part.buffer:
                heapq.heapreplace(heads, (part.buffer[0][0], tp))
            else:
                heapq.heappop(heads)
                if not (part.at_end and now - part.last_arrival >= self.idle_after):
                    candidate = (part.mark, part.rank, tp[1])
                    floor = candidate if floor is None else min(floor, candidate)
        return out

    def marks(self) -> dict[TP, int]:
        """Each partition's monotone timestamp as of its last released message (kept in a snapshot)."""
        return {tp: part.mark for tp, part in self.partitions.items() if part.mark != NO_MARK}

    def buffered(self) -> int:
        return sum(len(part.buffer) for part in self.partitions.values())

    def overfull(self) -> list[TP]:
        """Partitions whose buffer is over the limit (pause them: another one holds the stream back)."""
        return [tp for tp, part in self.partitions.items() if len(part.buffer) > self.buffer_limit]

    def drained(self) -> list[TP]:
        """Partitions whose buffer is low again (resume them)."""
        return [tp for tp, part in self.partitions.items() if len(part.buffer) < self.buffer_limit // 2]

    def clear(self, marks: dict[TP, int]) -> None:
        """Forget everything buffered (a seek): start again from these marks."""
        for tp, part in self.partitions.items():
            part.buffer.clear()
            part.mark = part.arrived_mark = marks.get(tp, NO_MARK)
        self._released = None

