"""librdkafka's own log, routed through Python logging.

By default librdkafka writes to stderr from its own threads, whenever it likes: a connection
refusal can land after the service has printed its one-line error and be the last thing a user
sees, and it ignores ``--log-level`` and ``--log-format json``. Given a ``logger``, confluent-kafka
queues those lines and emits them through it when the client is polled, so they take the
service's format and level, and a process that has given up does not keep talking.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError

__all__ = ["LIBRDKAFKA", "ErrorTrap"]

#: The logger every client in ``stream`` hands to confluent-kafka.
LIBRDKAFKA = logging.getLogger("stream.librdkafka")


class ErrorTrap:
    """Keeps the last error a client reported (its ``error_cb``), to say *why* a request failed:
    a metadata request only says "transport failure"; the trap has "SSL handshake failed" or
    "SASL authentication error". Errors are served when the client is polled, and logged once each
    (again after ``REPEAT_AFTER`` seconds), so an outage is a line, not a flood.

    >>> trap = ErrorTrap()
    >>> trap(KafkaError(KafkaError._TRANSPORT, "broker down"))
    >>> trap.last.str()
    'broker down'
    """

    REPEAT_AFTER = 30.0

    def __init__(self) -> None:
        self.last: KafkaError | None = None
        self._logged: dict[str, float] = {}

    def __call__(self, error: KafkaError) -> None:
        if error.code() != KafkaError._ALL_BROKERS_DOWN or self.last is None:
            self.last = error
        text, now = error.str(), time.monotonic()
        if now - self._logged.get(text, -self.REPEAT_AFTER) >= self.REPEAT_AFTER:
            self._logged[text] = now
            LIBRDKAFKA.warning("%s", text)
