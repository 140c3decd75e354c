"""Fixtures: a real Tansu broker and a real Redis server for the session, started on free ports."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis
import redis.cluster
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from learner.local.servers import Broker, RedisServer
from learner.state.control import ControlPlane
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore
from stream import Admin, BatchConsumer
from tests import system_tools

SIGNING_KEY = "test-signing-key"
_names = itertools.count()
LOG_TAIL = 60  # lines of a service's log a failure's message ends with


def pytest_runtest_setup(item: pytest.Item) -> None:
    system_tools.check(item, system_tools.in_ci())


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with Broker() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        _redis_url[:] = [server.url]
        yield server


@dataclass
class Stack:
    """One test's names on the shared broker and Redis: its own topics and model name."""

    broker: Broker
    redis: RedisServer
    name: str
    partitions: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Where the service reaches Redis, when not where the test does (through a proxy, with TLS, ...).
    service_redis: list[str] = field(default_factory=list)
    #: librdkafka properties of every client, the service's and the test's (TLS, ...).
    kafka: dict[str, str] = field(default_factory=dict)
    #: How the test's own Redis client connects (TLS files, a password), and whether to a Cluster.
    store_options: dict[str, object] = field(default_factory=dict)
    cluster: bool = False
    #: How the service gets its librdkafka properties, when not as --kafka-config pairs of ``kafka``.
    service_kafka: list[str] | None = None

    def client(self, **more: object) -> dict[str, object]:
        return {"bootstrap.servers": self.bootstrap, **self.kafka, **more}

    bootstrap_override: str | None = None

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_override or self.broker.bootstrap_servers

    @property
    def input(self) -> str:
        return f"{self.name}.in"

    @property
    def output(self) -> str:
        return f"{self.name}.out"

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def store(self, key: str | None = SIGNING_KEY) -> SnapshotStore:
        factory = redis.cluster.RedisCluster if self.cluster else redis.Redis
        client = factory.from_url(self.redis.url, **self.store_options)
        return SnapshotStore(client, self.name, Signer(key.encode() if key else None))

    def produce(self, values: list[bytes], keys: list[bytes | None] | None = None, partition: int | None = None) -> None:
        producer = Producer(self.client(**{"linger.ms": 5}))
        for value, key in zip(values, keys or [None] * len(values), strict=True):
            if partition is None:
                producer.produce(self.input, value, key)
            else:
                producer.produce(self.input, value, key, partition=partition)
        assert producer.flush(30) == 0

    def read(self, topic: str, count: int, timeout: float = 180.0,
             until: Callable[[list[Message]], bool] | None = None) -> list[Message]:
        """Read from the start of every partition of ``topic`` until ``count`` messages (and ``until``)."""
        consumer = Consumer(self.client(**{"group.id": f"reader-{self.name}", "enable.auto.commit": False}))
        try:
            deadline = time.monotonic() + timeout
            while not (partitions := Admin(self.client()).topic_partitions().get(topic)):
                assert time.monotonic() < deadline, f"topic {topic} never appeared"
                time.sleep(0.1)
            consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
            out: list[Message] = []
            done = until or (lambda _: True)
            while (len(out) < count or not done(out)) and time.monotonic() < deadline:
                out.extend(m for m in consumer.consume(1000, 0.2) if m.error() is None)
            assert len(out) >= count, f"{topic}: {len(out)} messages after {timeout}s, expected {count}"
            return out
        finally:
            consumer.close()

    def read_all(self, topic: str, timeout: float = 180.0) -> list[Message]:
        """Every message ``topic`` holds now: up to each partition's end offset, as a fetch gives it."""
        probe = BatchConsumer(self.client(**{"group.id": f"ends-{self.name}", "enable.auto.commit": False}), [topic])
        try:
            partitions = Admin(self.client()).topic_partitions()[topic]
            ends = probe.true_ends([(topic, partition) for partition in range(partitions)])
        finally:
            probe.close()
        return self.read(topic, sum(ends.values()), timeout)

    def read_nowait(self, topic: str, settle: float = 0.5) -> list[Message]:
        """Whatever ``topic`` holds now (for topics that should stay empty)."""
        consumer = Consumer(self.client(**{"group.id": f"peek-{self.name}", "enable.auto.commit": False}))
        try:
            partitions = Admin(self.client()).topic_partitions().get(topic)
            if not partitions:
                return []
            consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
            return [m for m in consumer.consume(1000, settle) if m.error() is None]
        finally:
            consumer.close()

    def run_args(self, *extra: str) -> list[str]:
        redis_args = self.service_redis or ["--redis-url", self.redis.url]
        kafka_args = self.service_kafka if self.service_kafka is not None else [
            arg for key, value in self.kafka.items() for arg in ("--kafka-config", f"{key}={value}")]
        return [sys.executable, "-m", "learner", "run", "--bootstrap-servers", self.bootstrap, *kafka_args, *redis_args,
                "--name", self.name, "--input-topic", self.input, "--output-topic", self.output,
                "--dlq-topic", self.dlq, *extra]

    def start(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``learner run`` as users do: a separate process."""
        with open(Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.name}-{len(self.processes)}.log", "wb") as log:
            process = subprocess.Popen(self.run_args(*extra), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY,
                                            "PYTHONFAULTHANDLER": "1", **(env or {})})
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
        """SIGTERM, and its exit code; a service that does not stop fails the test with where each of its
        threads stood (:meth:`threads`)."""
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the service did not stop within {timeout:g}s: {self.threads(process)}") from None

    def threads(self, process: subprocess.Popen[bytes]) -> str:
        """Make a stuck service and its children (its gateway, a snapshot's writer) print every thread's
        stack into its log (SIGABRT: their fault handlers dump them), and say it for a failure's message:
        the stacks first, then the log's end, so that a report that cuts a long message keeps them."""
        try:
            root = psutil.Process(process.pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:  # it exited meanwhile: its log says how
            family = []
        for member in family:  # frozen first: one's death must not move the others
            with suppress(psutil.Error):  # gone already
                member.suspend()
        for member in reversed(family):  # then one at a time, children first, so that their stacks do not mix
            with suppress(psutil.Error):  # gone already, or it would not stop
                member.send_signal(signal.SIGABRT)
                member.resume()
                member.wait(10)
        lines = self.log(self.processes.index(process)).splitlines()
        first = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), len(lines))
        stacks = "\n".join(line for line in lines[first:] if not line.startswith("Extension modules"))
        return (f"its threads:\n{stacks or '(no thread dump in its log)'}\nits log before them (the end):\n"
                + "\n".join(lines[max(0, first - LOG_TAIL):first]))

    def wait_learned(self, offset_total: int, timeout: float = 180.0) -> None:
        """Wait until the head snapshot's offsets add up to ``offset_total``."""
        store = self.store()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head = store.head()
            if head is not None and sum(store.meta(head).offsets.values()) >= offset_total:
                return
            time.sleep(0.1)
        raise AssertionError(f"no snapshot reached {offset_total} events within {timeout}s")

    def wait_done(self, events: int, timeout: float = 240.0) -> None:
        """Wait until the running service has learned up to ``events`` input offsets in all.

        Its status says so, not a snapshot: periodic snapshots land on batch boundaries, rarely
        on the very last event; a clean stop then writes the snapshot that holds them all.
        """
        self.wait_status(lambda status: status["events_done"] >= events, timeout)

    def wait_status(self, check: Callable[[dict], bool], timeout: float = 120.0) -> dict:
        """The running service's published status, once ``check`` holds (read from Redis directly)."""
        control = ControlPlane(self.store())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = control.service_status()
            if status and check(shown := status.to_json()):
                return shown
            time.sleep(0.05)
        raise AssertionError(f"status never matched; last: {control.service_status()}")

    def wait_for_log(self, text: str, index: int = -1, timeout: float = 180.0) -> None:
        """Wait until the log of a started service says ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.log(index):
            assert time.monotonic() < deadline, f"service never logged {text!r}:\n{self.log(index)}"
            assert self.processes[index].poll() is None, f"service exited:\n{self.log(index)}"
            time.sleep(0.05)

    def log(self, index: int = -1) -> str:
        return (Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.name}-{index % len(self.processes)}.log").read_text()

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


_redis_url: list[str] = []


@contextmanager
def make_named_store(name: str) -> Iterator[SnapshotStore]:
    """A store for a model name chosen by the test (its keys are deleted afterwards)."""
    client = redis.Redis.from_url(_redis_url[0])
    store = SnapshotStore(client, f"{name}-{os.getpid()}-{next(_names)}", Signer(SIGNING_KEY.encode()))
    try:
        yield store
    finally:
        for key in client.scan_iter(f"{store.keys.prefix}*"):
            client.delete(key)


def make_stack(broker: Broker, redis_server: RedisServer, partitions: int = 1, bootstrap: str | None = None,
               kafka: dict[str, str] | None = None) -> Stack:
    """A model name and its topics; ``bootstrap`` and ``kafka``: where and how clients reach the broker."""
    stack = Stack(broker, redis_server, f"t{os.getpid()}-{next(_names)}", partitions, kafka=dict(kafka or {}))
    stack.bootstrap_override = bootstrap
    Admin(stack.client()).ensure({stack.input: partitions})
    return stack


@pytest.fixture
def stack(broker: Broker, redis_server: RedisServer) -> Iterator[Stack]:
    """A single-partition input topic and a fresh model name."""
    made = make_stack(broker, redis_server)
    yield made
    made.cleanup()
