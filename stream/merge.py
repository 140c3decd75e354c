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
partition either has a message buffered with a larger key, cannot go below its monotone mark, or
has been read to its end and

- **is behind the clock**: with ``allowance_ms``, a partition read to its end is taken to bring
  nothing stamped earlier than ``allowance_ms`` before now (its next message is still in flight
  for at most that long: the producer's linger, the network, the broker). A quiet partition then
  holds a message back by ``allowance_ms`` past its timestamp at most, not until every partition
  has passed it;
- or is **idle**: quiet for ``idle_after`` seconds (the rule that holds whatever the clocks say).

These rules are what keep a quiet topic from holding the stream, and what make the order depend on
timing after all: a message that arrives with a key smaller than one already released is **late**
(it came more than ``allowance_ms`` after its timestamp, or after its partition went idle). It is
released at once, ordered right after the last message released, and counted; its new key is
returned by :meth:`TimestampMerge.decisions` so that it can be kept, and given back to
:meth:`TimestampMerge.decided` before a replay, which then puts it where the first run did.
Without late messages the order is the logs' own.

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

With an allowance, a partition read to its end holds back only what is stamped within the
allowance of now (``clock_ms``, the wall clock in ms):

>>> merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5, allowance_ms=20)
>>> merge.assign([("labels", 0), ("events", 0)], now=0.0)
>>> merge.add(message("events", 0, 100))
>>> merge.caught_up(("labels", 0), True)
>>> merge.release(now=0.01, clock_ms=110), merge.wake_in(clock_ms=110)  # labels may still bring 100..110
([], 0.011)
>>> [(key, m.offset()) for key, m in merge.release(now=0.021, clock_ms=121)]
[((100, 1, 0, 0), 0)]
>>> merge.add(message("labels", 0, 90))  # stamped before what was released: late
>>> [(key, m.topic()) for key, m in merge.release(now=0.03, clock_ms=130)], merge.late
([((100, 1, 0, 0, 1), 'labels')], 1)
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Keyed", "TimestampMerge"]

#: (topic, partition)
TP = tuple[str, int]
#: Monotone timestamp (ms), topic rank, partition, offset; a late message's is the key of the
#: message it goes right after, and a count (the late messages after that one, in arrival order).
Key = tuple[int, ...]
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
    next_offset: int = 0  # of the next message to arrive (at least)


class TimestampMerge:
    """Buffers messages per partition and releases them in key order (see the module's docstring)."""

    def __init__(self, ranks: dict[str, int], idle_after: float, allowance_ms: int | None = None,
                 buffer_limit: int = 50_000) -> None:
        self.ranks, self.idle_after, self.allowance_ms, self.buffer_limit = ranks, idle_after, allowance_ms, buffer_limit
        self.partitions: dict[TP, _Partition] = {}
        self.late = 0
        self._released: Key | None = None
        self._polled = 0.0
        self._decided: dict[tuple[str, int, int], Key] = {}  # (topic, partition, offset) -> its key
        self._decisions: list[tuple[tuple[str, int, int], Key]] = []

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
        offset = message.offset()
        key: Key = (ts, part.rank, tp[1], offset)
        if self._decided and (decided := self._decided.pop((tp[0], tp[1], offset), None)) is not None:
            key = decided  # late in the first run: where it went then
        else:
            floor = part.buffer[-1][0] if part.buffer else self._released  # what it must not go before
            if floor is not None and key < floor:
                # Late: right after ``floor``'s message (its key and a count: late keys stay five long).
                self.late += 1
                key = (*floor[:4], floor[4] + 1 if len(floor) > 4 else 1)
                self._decisions.append(((tp[0], tp[1], offset), key))
        part.buffer.append((key, message))
        part.next_offset = message.offset() + 1
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

    def release(self, now: float, limit: int = 1 << 30, clock_ms: int | None = None) -> list[tuple[Key, Any]]:
        """The messages that can go now, in key order (at most ``limit``), each with its key.

        ``now``: a monotonic clock (seconds), for idleness; ``clock_ms``: the wall clock (ms), for
        the allowance.
        """
        heads = [(part.buffer[0][0], tp) for tp, part in self.partitions.items() if part.buffer]
        heapq.heapify(heads)
        behind = None if self.allowance_ms is None or clock_ms is None else clock_ms - self.allowance_ms
        blocking = [f for tp, part in self.partitions.items() if not part.buffer
                    and (f := self._floor(tp, part, now, behind)) is not None]
        floor = min(blocking) if blocking else None
        out: list[tuple[Key, Any]] = []
        while heads and len(out) < limit:
            key, tp = heads[0]
            if floor is not None and key >= floor:
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
                if (candidate := self._floor(tp, part, now, behind)) is not None:
                    floor = candidate if floor is None else min(floor, candidate)
        return out

    def _floor(self, tp: TP, part: _Partition, now: float, behind: int | None) -> Key | None:
        """The smallest key an empty partition can still bring; None: it holds nothing back (idle)."""
        if not part.at_end:
            return (part.mark, part.rank, tp[1], part.next_offset)
        if now - part.last_arrival >= self.idle_after:
            return None
        return (part.mark if behind is None else max(part.mark, behind), part.rank, tp[1], part.next_offset)

    def wake_in(self, clock_ms: int) -> float | None:
        """Seconds until the allowance alone could release the first message buffered (None: no
        message is buffered, or there is no allowance)."""
        if self.allowance_ms is None:
            return None
        first = min((part.buffer[0][0][0] for part in self.partitions.values() if part.buffer), default=None)
        return None if first is None else max(0.0, (first + self.allowance_ms + 1 - clock_ms) / 1000)

    def decisions(self) -> list[tuple[tuple[str, int, int], Key]]:
        """The late messages' keys given since the last call, as ``((topic, partition, offset), key)``."""
        taken, self._decisions = self._decisions, []
        return taken

    def decided(self, decisions: dict[tuple[str, int, int], Key]) -> None:
        """Keys given to late messages in an earlier run: a replay gives them the same."""
        self._decided.update(decisions)

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
        self._decisions.clear()

