"""A consumer that stopped fetching while messages wait for it: noticed, said, and restarted.

librdkafka's consumer, with partitions the application assigned itself, can stop fetching for good
after the broker comes back from an outage (librdkafka issue 5153, still open): it reports no error,
``consume`` returns nothing, and the lag computed from its cached watermarks stays frozen at the
last fetch. Nothing else notices: the stream just stops. So a program that has asked for messages
and got none for :data:`STALL_AFTER` seconds asks the broker where its partitions end. A partition
whose end is past the application's position has messages that are not coming: it is sought to
that same position, which restarts its fetch without skipping or repeating a message.

A partition the application paused (a merge that holds one side back) is not fetching on purpose,
and is left alone. End offsets can only understate (some brokers answer with the first offset of
the last batch plus one), so a partition is never restarted without a message waiting.

>>> stalled(ends={("in", 0): 120, ("in", 1): 80, ("in", 2): 9},
...         positions={("in", 0): 100, ("in", 1): 80, ("in", 2): 5}, paused={("in", 2)})
{('in', 0): 100}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Set

from confluent_kafka import KafkaException

from stream.consumer import BatchConsumer
from stream.errors import StreamError

__all__ = ["STALL_AFTER", "FetchWatch", "stalled"]

log = logging.getLogger(__name__)

#: Seconds of empty-handed consumes before the broker is asked whether messages wait.
STALL_AFTER = 30.0

Partition = tuple[str, int]


def stalled(ends: Mapping[Partition, int], positions: Mapping[Partition, int],
            paused: Set[Partition]) -> dict[Partition, int]:
    """The partitions to restart, each with the position to restart it at: those with a message
    waiting at or after the position, and not paused by the application."""
    return {tp: at for tp, at in positions.items() if tp not in paused and ends.get(tp, -1) > at}


class FetchWatch:
    """Times the consumer's empty-handed stretch; past ``after`` seconds, looks and restarts (once
    per ``after`` seconds at most, and only while the broker answers: an outage is not a stall).

    It is told only in the program's periodic report, never per ``consume``: the count of messages
    consumed so far, and whether work is in flight. Work in flight can mean the program did not ask
    for messages, so its silence is not the consumer's; with none, the program was asking.
    """

    def __init__(self, consumer: BatchConsumer, after: float = STALL_AFTER) -> None:
        self.consumer, self.after = consumer, after
        self.since = self.looked = time.monotonic()
        self.count = 0  # messages consumed, as of the last report that saw the count move
        self.restarts = 0

    def check(self, now: float, consumed: int, busy: bool, broker_answers: bool) -> None:
        """At a report: ``consumed`` messages so far, ``busy`` with work in flight. Look, if the
        consumer has been silent long enough; restart what is stuck."""
        if consumed != self.count or busy:
            self.count, self.since = consumed, now
        if not broker_answers or now - self.since < self.after or now - self.looked < self.after:
            return
        self.looked = now
        positions = self.consumer.positions()
        try:
            ends = {tp: self.consumer.end_offset(*tp, timeout=2.0) for tp in positions}
        except StreamError:
            return  # the broker stopped answering meanwhile: an outage, not a stall
        for (topic, partition), at in sorted(stalled(ends, positions, self.consumer.paused).items()):
            log.warning("%s[%d]: nothing fetched for %.0fs though %d messages wait from offset %d: restarting "
                        "its fetch there (librdkafka can stop fetching after a broker outage)", topic, partition,
                        now - self.since, ends[(topic, partition)] - at, at)
            try:
                self.consumer.seek(topic, partition, at)
            except KafkaException as error:  # a group took the partition away meanwhile: not ours to restart
                log.warning("%s[%d]: fetch not restarted: %s", topic, partition, error.args[0].str())
                continue
            self.restarts += 1
