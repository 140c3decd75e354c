"""Every Kafka and Redis client of the learner, built in one place from the settings.

The service's consumer and producer, the admin client, ``learner produce``, the embedded stack and
the operator commands all get their clients here, so a connection setting (a TLS file, a SASL
mechanism, an ACL user, a Sentinel) applies to every one of them alike.

Kafka: any librdkafka property (``--kafka-config KEY=VALUE``, ``--kafka-config-file``), except
those the service owns (:mod:`learner.kafka_properties`). Redis: a ``redis://`` or ``rediss://``
URL (user and password in it, or ``--redis-username`` and ``--redis-password-file`` /
``LEARNER_REDIS_PASSWORD``), TLS files, a Sentinel set, or a Cluster. Secrets are never part of a
message: URLs are shown with their password replaced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import SecretStr
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from learner import kafka_properties
from learner.errors import RedisUnavailable, UsageError
from learner.settings import Settings
from learner.state.catalog import Catalog
from learner.state.failures import translate
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore
from stream import Admin, AsyncProducer, BatchConsumer
from stream.admin import require_topics
from stream.consumer import AssignHook, RevokeHook
from stream.errors import BrokerUnavailable, TopicMissing

__all__ = ["Connections", "redacted", "wait_for"]

log = logging.getLogger(__name__)

#: A Redis that stops answering must surface as an error, not hang the service (and its lease).
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 5.0
#: Backoff while waiting for a server at start-up: from this, doubling, up to the cap.
STARTUP_BACKOFF, STARTUP_BACKOFF_CAP = 0.5, 5.0


def redacted(url: str) -> str:
    """A URL fit for a log line: its password replaced.

    >>> redacted("redis://learner:s3cret@redis:6379/0")
    'redis://learner:***@redis:6379/0'
    >>> redacted("rediss://:s3cret@redis:6380")
    'rediss://:***@redis:6380'
    >>> redacted("redis://localhost:6379/0")
    'redis://localhost:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def wait_for(what: str, attempt: Callable[[], Any], timeout: float, transient: tuple[type[Exception], ...]) -> Any:
    """``attempt()`` until it works, waiting with backoff for up to ``timeout`` seconds (compose and
    Kubernetes start services in any order); the last error when the time is up. One log line."""
    deadline, backoff, announced = time.monotonic() + timeout, STARTUP_BACKOFF, False
    while True:
        try:
            return attempt()
        except transient as error:
            if time.monotonic() + backoff > deadline:
                raise
            if not announced:
                log.warning("waiting for %s: %s; trying again for up to %gs (--startup-timeout)", what, error, timeout)
                announced = True
            time.sleep(backoff)
            backoff = min(backoff * 2, STARTUP_BACKOFF_CAP)


def _secret(value: SecretStr | None, path: Path | None, option: str) -> str | None:
    """A password from its file (first line) or from the environment; None when neither is given."""
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise UsageError(f"{option} {path}: {error.strerror or error}") from None
        return lines[0].strip() if lines else ""
    return value.get_secret_value() if value is not None else None


class Connections:
    """Client factories for one set of settings (checked when built: a bad setting is one line)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._kafka = self._kafka_properties()
        self._connect = self._redis_factory()

    # -- Kafka --------------------------------------------------------------------------------------

    def _kafka_properties(self) -> dict[str, Any]:
        s = self.settings
        given = kafka_properties.merge(
            kafka_properties.read_properties(s.kafka_config_file) if s.kafka_config_file else {}, s.kafka_config)
        kafka_properties.check_owned(given)
        servers = given.pop("bootstrap.servers", None)
        if servers is not None and "bootstrap_servers" in s.model_fields_set and servers != s.bootstrap_servers:
            raise UsageError(f"--bootstrap-servers {s.bootstrap_servers} and the Kafka properties' bootstrap.servers "
                             f"{servers} differ: give one")
        chosen = servers if servers is not None and "bootstrap_servers" not in s.model_fields_set else s.bootstrap_servers
        return {"bootstrap.servers": chosen, "client.id": f"learner-{s.name}", **given}

    @property
    def bootstrap_servers(self) -> str:
        return str(self._kafka["bootstrap.servers"])

    def kafka(self) -> dict[str, Any]:
        """The librdkafka settings every client shares (the user's included)."""
        return dict(self._kafka)

    def describe_kafka(self) -> str:
        """Where Kafka is and how it is reached, for a log line (no secrets)."""
        protocol = self._kafka.get("security.protocol", "plaintext")
        return f"{self.bootstrap_servers} ({protocol})"

    def admin(self) -> Admin:
        return Admin(self.kafka())

    def producer(self, **overrides: Any) -> AsyncProducer:
        return AsyncProducer({**self.kafka(), **overrides})

    def consumer(self, topics: list[str], on_assign: AssignHook | None = None, on_revoke: RevokeHook | None = None,
                 group: str | None = None) -> BatchConsumer:
        config = {**self.kafka(), "group.id": group or self.settings.consumer_group,
                  "session.timeout.ms": self.settings.session_timeout_ms}
        return BatchConsumer(config, topics, on_assign=on_assign, on_revoke=on_revoke)

    def wait_for_kafka(self, admin: Admin | None = None, topics: tuple[str, ...] = ()) -> dict[str, int]:
        """The topics and their partitions, once the broker answers and ``topics`` exist (up to
        --startup-timeout: a job may create them after the learner starts)."""
        client = admin or self.admin()

        def attempt() -> dict[str, int]:
            counts = client.topic_partitions()
            require_topics(counts, list(topics), self.describe_kafka())
            return counts

        what = f"Kafka at {self.describe_kafka()}" + (f" and the topic {', '.join(topics)}" if topics else "")
        return dict(wait_for(what, attempt, self.settings.startup_timeout, (BrokerUnavailable, TopicMissing)))

    # -- Redis --------------------------------------------------------------------------------------

    def describe_redis(self) -> str:
        s = self.settings
        if s.redis_sentinel:
            return f"Redis master {s.redis_sentinel_master!r} of the Sentinels {s.redis_sentinel}"
        return f"Redis {'cluster ' if s.redis_cluster else ''}at {redacted(s.redis_url)}"

    def _redis_factory(self) -> Callable[[], Any]:
        """A function that opens a new Redis client (a forked child needs its own connections)."""
        s = self.settings
        common: dict[str, Any] = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                                  "socket_timeout": REDIS_SOCKET_TIMEOUT, "health_check_interval": 30}
        if s.redis_username:
            common["username"] = s.redis_username
        password = _secret(s.redis_password, s.redis_password_file, "--redis-password-file")
        if password is not None:
            common["password"] = password
        tls = {key: str(path) for key, path in (("ssl_ca_certs", s.redis_ca), ("ssl_certfile", s.redis_cert),
                                                ("ssl_keyfile", s.redis_key)) if path is not None}
        url = s.redis_url
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise UsageError(f"--redis-url {redacted(url)}: use redis://, rediss:// (TLS) or unix://")
        if tls and parts.scheme != "rediss" and not s.redis_sentinel:
            raise UsageError("--redis-ca, --redis-cert and --redis-key need a rediss:// URL (TLS)")
        if s.redis_sentinel:
            return self._sentinel_factory(common, tls, parts.scheme == "rediss", parts.path)

        def connect() -> Any:
            try:
                if s.redis_cluster:
                    return RedisCluster.from_url(url, **common, **tls)
                return redis.Redis.from_url(url, **common, **tls)
            except ValueError as error:  # an unparsable URL
                raise UsageError(f"--redis-url {redacted(url)}: {error}") from None
            except (redis.RedisError, RedisClusterException) as error:  # a cluster client connects at once
                raise translate(error) from None

        return connect

    def _sentinel_factory(self, common: dict[str, Any], tls: dict[str, str], use_tls: bool,
                          path: str) -> Callable[[], Any]:
        s = self.settings
        try:
            nodes = [(host.strip(), int(port)) for host, _, port in
                     (node.strip().rpartition(":") for node in (s.redis_sentinel or "").split(",") if node.strip())]
        except ValueError:
            raise UsageError(f"--redis-sentinel {s.redis_sentinel}: give host:port,host:port") from None
        if not nodes or any(not host for host, _ in nodes):
            raise UsageError(f"--redis-sentinel {s.redis_sentinel}: give host:port,host:port")
        own: dict[str, Any] = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT}
        if s.redis_sentinel_username:
            own["username"] = s.redis_sentinel_username
        password = _secret(s.redis_sentinel_password, s.redis_sentinel_password_file, "--redis-sentinel-password-file")
        if password is not None:
            own["password"] = password  # Sentinel's own password, apart from the master's
        master = {**common, **tls, **({"ssl": True} if use_tls else {})}
        db = int(path.strip("/") or 0) if path.strip("/").isdigit() else 0

        # Typed through Callable: redis-py types Sentinel's constructor from 8.2 on and left it
        # untyped before, and the lock's upgrade command checks both (README "Development").
        make_sentinel: Callable[..., Any] = Sentinel

        def connect() -> Any:
            return make_sentinel(nodes, sentinel_kwargs=own, **master).master_for(s.redis_sentinel_master, db=db)

        return connect

    def redis_factory(self) -> Callable[[], Any]:
        return self._connect

    def redis(self, wait: bool = False) -> Any:
        """A Redis client, checked (and, with ``wait``, waited for up to --startup-timeout)."""

        def attempt() -> Any:
            client = self._connect()
            try:
                client.ping()
            except (redis.RedisError, RedisClusterException) as error:
                problem = translate(error)
                raise type(problem)(f"cannot reach {self.describe_redis()}: {error}") from None
            return client

        if not wait:
            return attempt()
        return wait_for(self.describe_redis(), attempt, self.settings.startup_timeout, (RedisUnavailable,))

    def store(self, wait: bool = False) -> SnapshotStore:
        """The snapshot store of the lineage these settings name: the model's, or its challenger's."""
        client = self.redis(wait)
        return SnapshotStore(client, self.settings.name, Signer(self.settings.key_bytes()), reconnect=self._connect,
                             challenger=self.settings.challenger)

    def catalog(self) -> Catalog:
        """The read-only views of this Redis's models, for the dashboard (no signing key; waits for Redis)."""
        return Catalog(self.redis(wait=True))
