"""What Kafka still retains of a model's input (and labels) between two positions, read again in the
service's order: the input a backtest replays (README "Experiments").

Every partition is read from its start offset up to (not including) its stop offset, and the
messages go through the service's timestamp merge (:mod:`stream.merge`), started from the start
version's marks and given the recorded places of late messages, with one difference: a partition
counts as read to its end only once it reaches its stop offset. Nothing depends on timing, so two
backtests over the same range step the same items in the same order; with a labels topic it is the
order the live service learned in. Without one the live service learned the partitions in the order
they arrived, which nothing records: the backtest orders them by timestamp (on one partition the two
are the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Message

from learner.core.positions import Position
from learner.errors import LearnerError
from learner.runtime.gateway.merged_input import LABELS_FIRST
from learner.runtime.shared.intake import Intake, Reader
from stream import BatchConsumer
from stream.merge import Key, TimestampMerge

__all__ = ["Range", "RetainedInput", "RetentionError"]

TP = tuple[str, int]


class RetentionError(LearnerError):
    """The input Kafka still retains no longer reaches back to where the replay must start."""


@dataclass(frozen=True)
class Range:
    """Where each partition starts and stops (next offsets)."""

    start: dict[TP, int]
    stop: dict[TP, int]

    @property
    def events(self) -> dict[TP, int]:
        """Messages to read per partition."""
        return {tp: max(0, self.stop[tp] - offset) for tp, offset in self.start.items()}

    @classmethod
    def between(cls, partitions: dict[TP, tuple[int, int]], start: Position, stop: Position | None,
                since: str) -> Range:
        """From ``start`` (a partition it lacks: its first retained offset, which must be 0) to ``stop``
        (a partition it lacks: where it starts; None: each partition's end). ``partitions``: each
        partition's (first retained, end) offsets; ``since`` names the start in the error.

        >>> Range.between({("in", 0): (0, 90)}, {("in", 0): 40}, {("in", 0): 70}, "version 3").events
        {('in', 0): 30}
        >>> Range.between({("in", 0): (50, 90)}, {("in", 0): 40}, None, "version 3")
        Traceback (most recent call last):
        ...
        learner.ops.retained.RetentionError: the retained input no longer reaches back to version 3: in[0] begins at offset 50...
        """
        first: dict[TP, int] = {}
        last: dict[TP, int] = {}
        for tp, (low, high) in sorted(partitions.items()):
            begin = start.get(tp, 0)
            if low > begin:
                raise RetentionError(f"the retained input no longer reaches back to {since}: {tp[0]}[{tp[1]}] begins "
                                     f"at offset {low}, and the replay must start at {begin}")
            end = high if stop is None else stop.get(tp, begin)
            first[tp], last[tp] = begin, max(begin, min(end, high))
        return cls(first, last)


class RetainedInput:
    """Batches of decoded items over a :class:`Range`, in the merged order."""

    def __init__(self, consumer: BatchConsumer, max_bytes: int, span: Range, input_topic: str,
                 labels_topic: str | None, marks: dict[TP, int], decided: dict[tuple[str, int, int], Key]) -> None:
        self.consumer, self.span = consumer, span
        self.reader = Reader(max_bytes, self._dead, labels_topic)
        self.input_topic, self.labels_topic = input_topic, labels_topic
        ranks = {input_topic: LABELS_FIRST + 1, **({labels_topic: LABELS_FIRST} if labels_topic else {})}
        self.merge = TimestampMerge(ranks, idle_after=0.0)
        self.merge.assign(sorted(span.start), marks, now=0.0)
        self.merge.decided(decided)
        self._next = dict(span.start)
        self._paused: set[TP] = set()
        #: Messages that are not valid events or labels (the live service dead-lettered them).
        self.invalid = 0

    def batches(self, size: int, timeout: float = 30.0) -> Iterator[Intake]:
        """Read everything in the range, ``size`` messages at a time; ``timeout``: seconds without any
        message while some are still due (the broker is away) before giving up."""
        reading = {tp for tp, count in self.span.events.items() if count}
        done = [tp for tp in self.span.start if tp not in reading]
        for tp in done:
            self.merge.caught_up(tp, True)
        self.consumer.pause(done)
        while reading:
            messages = self.consumer.consume(size, timeout)
            if not messages and (stalled := sorted(self._paused & reading)):
                self.consumer.resume(stalled)  # paused ahead of a partition that has finished since: read on
                self._paused -= set(stalled)
                continue
            if not messages:
                missing = ", ".join(f"{t}[{p}]" for t, p in sorted(reading))
                raise LearnerError(f"no message from Kafka for {timeout:g}s while {missing} still had some to replay")
            finished = self._add(messages, reading)
            if finished:
                self.consumer.pause(finished)
            self._pace(reading)
            released = self.merge.release(now=1.0)  # partitions at their stop are idle: nothing waits for them
            if released:
                yield self._intake(released)

    def _add(self, messages: list[Message], reading: set[TP]) -> list[TP]:
        finished = []
        for message in messages:
            tp = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            if tp not in reading or offset >= self.span.stop[tp]:
                continue
            self.merge.add(message)
            self._next[tp] = offset + 1
        for tp in list(reading):
            if self._next[tp] >= self.span.stop[tp]:
                reading.discard(tp)
                self.merge.caught_up(tp, True)
                finished.append(tp)
        return finished

    def _pace(self, reading: set[TP]) -> None:
        """Pause a partition far ahead of the others in time (its messages wait in the merge)."""
        if full := (set(self.merge.overfull()) & reading) - self._paused:
            self.consumer.pause(sorted(full))
            self._paused |= full
        if low := self._paused & (set(self.merge.drained()) | (self._paused - reading)):
            self.consumer.resume(sorted(low & reading))
            self._paused -= low

    def _dead(self, _message: Message, _reason: str, _kind: str) -> None:
        self.invalid += 1

    def _intake(self, released: list[tuple[Key, Message]]) -> Intake:
        if self.labels_topic:
            return self.reader.merged(released)
        return self.reader.events([message for _, message in released], self.input_topic)
