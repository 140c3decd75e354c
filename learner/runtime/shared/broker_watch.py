"""Whether the broker still answers, and how far behind the input a program is: what a producing
program checks every few seconds for ``/readyz`` and its metrics (the gateway and a serve replica alike).
"""

from __future__ import annotations

import logging
import threading

from learner.core.positions import Position
from stream import AsyncProducer, BatchConsumer
from stream.errors import StreamError

__all__ = ["BROKER_CHECK_EVERY", "BrokerWatch", "lag"]

log = logging.getLogger(__name__)

#: Seconds between two checks that the broker still answers.
BROKER_CHECK_EVERY = 5.0


class BrokerWatch:
    """Asks the broker every :data:`BROKER_CHECK_EVERY` seconds; says so once when the answer changes.

    The asking is a metadata request, a round trip that takes milliseconds on a healthy cluster
    with few topics, hundreds with many, and up to its 2 s timeout when the broker is away: it runs
    on a thread of its own, so the loop that calls :meth:`check` (the gateway's, a replica's)
    never waits for it. Every event in flight would otherwise wait with it, once every few seconds:
    the 99th percentile of the service's latency.
    """

    def __init__(self, producer: AsyncProducer, where: str, while_away: str) -> None:
        self.producer, self.where, self.while_away = producer, where, while_away
        self.ok = True
        self._asked = 0.0
        self._asking = threading.Event()  # set while a look is under way

    def check(self, now: float) -> bool:
        """Whether the broker answered at the last look (``now``: ``time.monotonic()``); a new look
        starts in the background when one is due."""
        if now - self._asked >= BROKER_CHECK_EVERY and not self._asking.is_set():
            self._asked = now
            self._asking.set()
            threading.Thread(target=self._look, daemon=True, name="broker-watch").start()
        return self.ok

    def _look(self) -> None:
        try:
            self.producer.ping(timeout=2.0)
            answers = True
        except StreamError:
            answers = False
        finally:
            self._asking.clear()
        if answers != self.ok:
            log.warning("Kafka at %s %s", self.where, "answers again" if answers else f"does not answer: {self.while_away}")
        self.ok = answers


def lag(consumer: BatchConsumer, positions: Position) -> dict[str, int]:
    """Messages behind the end of each partition read, by partition number (from cached watermarks)."""
    behind = {}
    for (topic, partition), position in positions.items():
        high = consumer.high_watermark(topic, partition)
        if high is not None:
            behind[str(partition)] = max(0, high - position)
    return behind
