"""Whether the broker still answers, and how far behind the input a program is: what a producing
program checks every few seconds for ``/readyz`` and its metrics (the gateway and a serve replica alike).
"""

from __future__ import annotations

import logging

from learner.core.positions import Position
from stream import AsyncProducer, BatchConsumer
from stream.errors import StreamError

__all__ = ["BROKER_CHECK_EVERY", "BrokerWatch", "lag"]

log = logging.getLogger(__name__)

#: Seconds between two checks that the broker still answers.
BROKER_CHECK_EVERY = 5.0


class BrokerWatch:
    """Asks the broker every :data:`BROKER_CHECK_EVERY` seconds; says so once when the answer changes."""

    def __init__(self, producer: AsyncProducer, where: str, while_away: str) -> None:
        self.producer, self.where, self.while_away = producer, where, while_away
        self.ok = True
        self._asked = 0.0

    def check(self, now: float) -> bool:
        """Whether the broker answered at the last look (``now``: ``time.monotonic()``), looking again if due."""
        if now - self._asked < BROKER_CHECK_EVERY:
            return self.ok
        self._asked = now
        try:
            self.producer.ping(timeout=2.0)
            answers = True
        except StreamError:
            answers = False
        if answers != self.ok:
            log.warning("Kafka at %s %s", self.where, "answers again" if answers else f"does not answer: {self.while_away}")
        self.ok = answers
        return answers


def lag(consumer: BatchConsumer, positions: Position) -> dict[str, int]:
    """Messages behind the end of each partition read, by partition number (from cached watermarks)."""
    behind = {}
    for (topic, partition), position in positions.items():
        high = consumer.high_watermark(topic, partition)
        if high is not None:
            behind[str(partition)] = max(0, high - position)
    return behind
