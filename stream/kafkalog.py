"""librdkafka's own log, routed through Python logging.

By default librdkafka writes to stderr from its own threads, whenever it likes: a connection
refusal can land after the service has printed its one-line error and be the last thing a user
sees, and it ignores ``--log-level`` and ``--log-format json``. Given a ``logger``, confluent-kafka
queues those lines and emits them through it when the client is polled, so they take the
service's format and level, and a process that has given up does not keep talking.
"""

from __future__ import annotations

import logging

__all__ = ["LIBRDKAFKA"]

#: The logger every client in ``stream`` hands to confluent-kafka.
LIBRDKAFKA = logging.getLogger("stream.librdkafka")
