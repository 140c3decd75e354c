"""Every Kafka and Redis client of the learner, built in one place from the settings.

The service's consumer and producer, the admin client, ``learner produce``, the embedded stack and
the operator commands all get their clients here, so a connection setting (a TLS file, a SASL
mechanism, a Redis timeout) applies to every one of them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from learner.errors import StateError
from learner.settings import Settings
from learner.state.failures import translate
from learner.state.snapshots import SnapshotStore
from stream import Admin, AsyncProducer, BatchConsumer
from stream.consumer import AssignHook, RevokeHook

__all__ = ["Connections", "redacted"]

#: A Redis that stops answering must surface as an error, not hang the service (and its lease).
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 10.0


def redacted(url: str) -> str:
    """A URL fit for a log line: its password replaced.

    >>> redacted("redis://learner:s3cret@redis:6379/0")
    'redis://learner:***@redis:6379/0'
    >>> redacted("redis://localhost:6379/0")
    'redis://localhost:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    netloc = f"{user}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Connections:
    """Client factories for one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- Kafka --------------------------------------------------------------------------------------

    def kafka(self) -> dict[str, Any]:
        """The librdkafka settings every client shares."""
        return {"bootstrap.servers": self.settings.bootstrap_servers, "client.id": f"learner-{self.settings.name}"}

    def admin(self) -> Admin:
        return Admin(self.kafka())

    def producer(self, **overrides: Any) -> AsyncProducer:
        return AsyncProducer({**self.kafka(), **overrides})

    def consumer(self, topics: list[str], on_assign: AssignHook | None = None, on_revoke: RevokeHook | None = None,
                 group: str | None = None) -> BatchConsumer:
        config = {**self.kafka(), "group.id": group or self.settings.consumer_group,
                  "session.timeout.ms": self.settings.session_timeout_ms}
        return BatchConsumer(config, topics, on_assign=on_assign, on_revoke=on_revoke)

    # -- Redis --------------------------------------------------------------------------------------

    def redis_factory(self) -> Callable[[], redis.Redis]:
        """A function that opens a new Redis client (a forked child needs its own connections)."""
        url = self.settings.redis_url

        def connect() -> redis.Redis:
            try:
                return redis.Redis.from_url(url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                                            socket_timeout=REDIS_SOCKET_TIMEOUT, health_check_interval=30)
            except ValueError as error:  # an unparsable URL
                raise StateError(f"--redis-url {redacted(url)}: {error}") from None

        return connect

    def redis(self) -> redis.Redis:
        """A Redis client, checked: an unreachable Redis is one clear error, not a later traceback."""
        client = self.redis_factory()()
        try:
            client.ping()
        except redis.RedisError as error:
            raise type(translate(error))(f"cannot reach Redis at {redacted(self.settings.redis_url)}: {error}") from None
        return client

    def store(self) -> SnapshotStore:
        """The snapshot store of the model these settings name."""
        return SnapshotStore(self.redis(), self.settings.name, self.settings.signer(), reconnect=self.redis_factory())

