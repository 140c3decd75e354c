"""An asynchronous producer whose failures are never silent.

Delivery reports come back only for failures (``delivery.report.only.error``), so the hot path pays
no Python callback per message; a failure is remembered and raised at the next ``check()``, before
the caller can take a snapshot that claims those outputs were written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.errors import DeliveryFailed, unreachable
from stream.kafkalog import LIBRDKAFKA, ErrorTrap

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
    # A message is retried until the broker takes it, however long it is away (a rolling restart, a
    # partition): the caller waits when the queue is full, and a snapshot waits for its outputs.
    "message.timeout.ms": 0,
    "delivery.report.only.error": True,
    "logger": LIBRDKAFKA,
}


class AsyncProducer:
    """Produce without waiting; ``flush`` before a snapshot makes everything so far durable."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._bootstrap = str(config.get("bootstrap.servers"))
        self._protocol = config.get("security.protocol")
        self._errors = ErrorTrap()
        self._producer = Producer({**_DEFAULTS, "error_cb": self._errors, **config, "on_delivery": self._delivered})
        self._failure: str | None = None
        self.failed = 0
        #: The raw ``produce`` for the hot path: the caller handles BufferError (by calling ``produce``).
        self.produce_fast = self._producer.produce

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: list[tuple[str, str | bytes | None]] | None = None, timestamp: int | None = None,
                partition: int | None = None) -> None:
        """Queue one message (to ``partition``, else where the partitioner puts it); when the local queue
        is full, wait for the broker to drain it."""
        extra: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
        if partition is not None:
            extra["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, **extra)
                return
            except BufferError:
                # Serving deliveries frees the queue (messages are retried until the broker takes them).
                # A short wait: only failed deliveries are reported, so poll() seldom returns early,
                # and a long one would let a small queue drain and sit idle for most of it.
                self._producer.poll(0.01)

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

    def wait(self, timeout: float) -> None:
        """Serve delivery reports for up to ``timeout`` seconds (returns early on one)."""
        self._producer.poll(timeout)

    def outstanding(self) -> int:
        """Messages produced and not yet acknowledged by the broker (serving delivery reports first)."""
        self._producer.poll(0)
        self.check()
        return len(self._producer)

    def ping(self, timeout: float = 5.0) -> None:
        """Raise BrokerUnavailable (or BrokerRefused) unless the broker answers a metadata request."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as error:
            self._producer.poll(0.1)
            raise unreachable(self._bootstrap, error, self._protocol, self._errors.last) from None

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            self._failure = f"delivery to {message.topic()} failed: {error.str()}"
