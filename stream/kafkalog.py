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


class Throttle(logging.Filter):
    """At most one line per client and kind of librdkafka message (``FAIL``, ``REQTMOUT``, ...) every
    ``REPEAT_AFTER`` seconds, the next one saying how many were held back.

    While a broker is down librdkafka tries again many times a second, per connection, and logs
    each try: a 15 s outage was 600 lines. Debug lines (``--kafka-config debug=...``) all pass.

    >>> throttle, record = Throttle(), lambda: logging.makeLogRecord(
    ...     {"msg": "%s [%s] %s", "args": ("FAIL", "rdkafka#producer-1", "Connect failed"), "levelno": 40})
    >>> [throttle.filter(record()) for _ in range(3)]
    [True, False, False]
    """

    REPEAT_AFTER = 30.0

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[object, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno < logging.INFO or not isinstance(args, tuple) or len(args) != 3:
            return True
        key, now = (args[0], args[1], record.levelno), time.monotonic()
        last, held = self._last.get(key, (-self.REPEAT_AFTER, 0))
        if now - last < self.REPEAT_AFTER:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.args = (*args[:2], f"{args[2]} ({held} more like it in the last {now - last:.0f}s not shown)")
        return True


LIBRDKAFKA.addFilter(Throttle())


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
