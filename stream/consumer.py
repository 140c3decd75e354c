"""A thin batch consumer: confluent-kafka's Consumer, with errors translated in one place.

The caller owns the offsets: partitions are positioned by ``on_assign`` (the learner seeks to the
offsets stored in its snapshot) and commits are explicit, so the committed group offsets follow
the snapshots instead of racing ahead of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream.admin import partition_counts, require_topics
from stream.errors import StreamError, unreachable
from stream.kafkalog import LIBRDKAFKA, ErrorTrap

__all__ = ["AssignHook", "BatchConsumer", "RevokeHook"]

log = logging.getLogger(__name__)

#: Called with the partitions just assigned; returns the offset to start each one at, or None
#: to use the group's committed offset (or ``auto.offset.reset``).
AssignHook = Callable[[list[tuple[str, int]]], Mapping[tuple[str, int], int | None]]
#: Called with the partitions about to be taken away, before they go.
RevokeHook = Callable[[list[tuple[str, int]]], None]

_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
    # Fetch in big chunks: the service consumes in batches and librdkafka prefetches meanwhile.
    "fetch.wait.max.ms": 50,
    "queued.min.messages": 20000,
    # When a partition's prefetch queue is over those thresholds, librdkafka (>= 2.1) postpones that
    # partition's next fetch by this much (default 1000 ms): long enough for a fast consumer to drain
    # the queue and wait, empty-handed, for a fetch that has not been sent yet. Measured on 200k
    # events at 40k events/s: 13 empty polls in 6.4 s with the default, none with 20 ms.
    "fetch.queue.backoff.ms": 20,
    # librdkafka prefetches up to 64 MB per partition by default; when the model is slower than the
    # stream that is all resident memory for nothing. 16 MB still holds tens of thousands of events.
    "queued.max.messages.kbytes": 16384,
    "logger": LIBRDKAFKA,
}


class BatchConsumer:
    """Consume batches of messages from a set of topics in one consumer group."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: list[str],
        on_assign: AssignHook | None = None,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self._errors = ErrorTrap()
        self._consumer = Consumer({**_DEFAULTS, "error_cb": self._errors, **config})
        self._bootstrap = str(config.get("bootstrap.servers"))
        self._protocol = config.get("security.protocol")
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self.assigned: set[tuple[str, int]] = set()
        self.paused: set[tuple[str, int]] = set()  # by the application, not by librdkafka
        self._topics = topics

    def start(self, join_group: bool = True, metadata_timeout: float = 10.0) -> None:
        """Check that the broker answers and the topics exist, then join the group or take every partition.

        ``join_group=False`` is for a single writer that holds a lease: it assigns itself all
        partitions at once, with no group join to wait for and no dead member's session to wait out.
        Joining the group is for prediction replicas, which share the partitions among themselves.
        """
        try:
            counts = partition_counts(self._consumer.list_topics(timeout=metadata_timeout))
        except KafkaException as error:
            raise unreachable(self._bootstrap, error, self._protocol, self._errors.last) from None
        require_topics(counts, self._topics, self._bootstrap)
        if join_group:
            self._consumer.subscribe(self._topics, on_assign=self._assigned, on_revoke=self._revoked,
                                     on_lost=self._revoked)
        else:
            everything = [TopicPartition(t, p) for t in self._topics for p in range(counts[t])]
            self._assigned(self._consumer, everything)

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages: what is already there, at once; waiting up to ``timeout``
        only when nothing is (then returning as soon as one arrives, with whatever came with it).

        A light stream never fills a batch: waiting to fill one would add the whole timeout to
        each event's latency. Per-message broker errors are raised or logged here.
        """
        try:
            messages = self._consumer.consume(max_messages, 0)
            if not messages and timeout > 0:
                messages = self._consumer.consume(1, timeout)
                if messages and max_messages > 1:
                    messages += self._consumer.consume(max_messages - 1, 0)
        except KafkaException as error:
            raise StreamError(f"consume failed: {error.args[0].str()}") from None
        for message in messages:
            if message.error() is not None:
                return self._without_errors(messages)
        return messages

    def _without_errors(self, messages: list[Message]) -> list[Message]:
        kept = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif error.fatal():
                raise StreamError(f"consumer failed: {error.str()}")
            elif error.code() != KafkaError._PARTITION_EOF:
                self._errors(error)  # logged once, not once per failed fetch
        return kept

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Move an assigned partition; the next batch starts at ``offset``."""
        self._consumer.seek(TopicPartition(topic, partition, offset))

    def commit(self, offsets: Mapping[tuple[str, int], int], asynchronous: bool = True) -> None:
        """Commit next-offsets of assigned partitions (``asynchronous=False``: wait for the broker)."""
        mine = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self.assigned]
        if mine:
            try:
                if asynchronous:
                    self._consumer.commit(offsets=mine, asynchronous=True)
                else:
                    self._consumer.commit(offsets=mine, asynchronous=False)
            except KafkaException as error:
                log.warning("offset commit failed: %s", error.args[0].str())

    def watermarks(self, topic: str, partition: int) -> tuple[int, int] | None:
        """The partition's first and end offsets as last seen in a fetch response, if known."""
        try:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        except KafkaException:
            return None
        return (int(low), int(high)) if high >= 0 else None

    def end_offset(self, topic: str, partition: int, timeout: float = 5.0) -> int:
        """The partition's end offset, asked of the broker (no assignment needed)."""
        return self.bounds(topic, partition, timeout)[1]

    def bounds(self, topic: str, partition: int, timeout: float = 5.0) -> tuple[int, int]:
        """The partition's first offset still retained and its end offset, asked of the broker."""
        try:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout,
                                                             cached=False)
        except KafkaException as error:
            raise StreamError(f"cannot read the offsets of {topic}[{partition}]: {error.args[0].str()}") from None
        return int(low), int(high)

    def true_ends(self, partitions: list[tuple[str, int]], timeout: float = 10.0) -> dict[tuple[str, int], int]:
        """Each partition's end offset, as a fetch response gives it: some brokers (Tansu 0.6) answer a
        ListOffsets request with the first offset of the last batch plus one. For a probe of its own
        (it assigns the partitions): each is read from its last batch, and the end taken from the
        high watermark the fetch brought back."""
        ends = {tp: self.bounds(*tp, timeout) for tp in partitions}
        unsure = {tp: high for tp, (low, high) in ends.items() if high > low}
        out = {tp: high for tp, (_, high) in ends.items() if tp not in unsure}
        if unsure:
            self._consumer.assign([TopicPartition(t, p, high - 1) for (t, p), high in unsure.items()])
            deadline = time.monotonic() + timeout
            while unsure and time.monotonic() < deadline:
                self.consume(1000, 0.2)
                for tp in list(unsure):
                    if (marks := self.watermarks(*tp)) is not None and marks[1] >= unsure[tp]:
                        out[tp] = marks[1]
                        del unsure[tp]
            self._consumer.unassign()
        return out | unsure

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int, timeout: float = 5.0) -> int | None:
        """The first offset whose timestamp is at or after ``timestamp_ms`` (None: no such message yet)."""
        try:
            found = self._consumer.offsets_for_times([TopicPartition(topic, partition, timestamp_ms)], timeout)
        except KafkaException as error:
            raise StreamError(f"could not look up an offset by time on {topic}[{partition}]: {error}") from None
        return found[0].offset if found and found[0].offset >= 0 else None

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self._consumer.pause([TopicPartition(t, p) for t, p in partitions])
        self.paused.update(partitions)

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        self._consumer.resume([TopicPartition(t, p) for t, p in partitions])
        self.paused.difference_update(partitions)

    def positions(self) -> dict[tuple[str, int], int]:
        """The offset of the next message ``consume`` will return, for each assigned partition it has
        returned messages of (librdkafka's application position; no broker round trip)."""
        try:
            found = self._consumer.position([TopicPartition(t, p) for t, p in sorted(self.assigned)])
        except KafkaException:
            return {}
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end as last seen in a fetch response (no broker round trip), if known."""
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        except KafkaException:
            return None
        return int(high) if high >= 0 else None

    def close(self) -> None:
        """Leave the group now, so that another member gets the partitions without waiting."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as error:
            log.warning("consumer close: %s", error)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        starts = self._on_assign(keys) if self._on_assign else {}
        for tp in partitions:
            offset = starts.get((tp.topic, tp.partition))
            if offset is not None:
                tp.offset = offset
        consumer.assign(partitions)
        self.assigned.update(keys)
        log.info("assigned %s", _describe(partitions))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if self._on_revoke:
            self._on_revoke(keys)
        self.assigned.difference_update(keys)
        self.paused.difference_update(keys)
        consumer.unassign()
        log.info("revoked %s", _describe(partitions))


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions) or "nothing"
