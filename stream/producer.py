"""An asynchronous producer whose failures are never silent.

Delivery reports come back only for failures (``delivery.report.only.error``), so the hot path pays
no Python callback per message; a failure is remembered and raised at the next ``check()``, before
the caller can take a snapshot that claims those outputs were written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.errors import BrokerUnavailable, DeliveryFailed
from stream.kafkalog import LIBRDKAFKA

__all__ = ["AsyncProducer"]

_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 262_144,
    # Predictions are small JSON; compressing them costs CPU that the model needs. Override with
    # compression.type in the producer config when the network, not the CPU, is the constraint.
    "compression.type": "none",
    "enable.idempotence": False,
    "acks": "all",
    "delivery.report.only.error": True,
    "logger": LIBRDKAFKA,
}


class AsyncProducer:
    """Produce without waiting; ``flush`` before a snapshot makes everything so far durable."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._bootstrap = str(config.get("bootstrap.servers"))
        self._producer = Producer({**_DEFAULTS, **config, "on_delivery": self._delivered})
        self._failure: str | None = None
        self.failed = 0
        #: The raw ``produce`` for the hot path: the caller handles BufferError (by calling ``produce``).
        self.produce_fast = self._producer.produce

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        """Queue one message; when the local queue is full, wait for the broker to drain it."""
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                # Serving deliveries frees the queue; with a dead broker, messages expire after
                # message.timeout.ms and their failures surface at the next check().
                self._producer.poll(0.5)

    def poll(self) -> None:
        """Serve delivery reports without blocking."""
        self._producer.poll(0)

    def check(self) -> None:
        """Raise if any message failed since the last check."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise DeliveryFailed(failure)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued message is delivered, or raise."""
        remaining = self._producer.flush(timeout)
        self.check()
        if remaining:
            raise DeliveryFailed(f"{remaining} messages still undelivered to {self._bootstrap} after {timeout:g}s")

    def ping(self, timeout: float = 5.0) -> None:
        """Raise BrokerUnavailable unless the broker answers a metadata request."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as error:
            raise BrokerUnavailable(f"cannot reach Kafka at {self._bootstrap}: {error.args[0].str()}") from None

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            self._failure = f"delivery to {message.topic()} failed: {error.str()}"
