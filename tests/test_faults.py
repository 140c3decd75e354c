"""Outages of Redis and of the broker, injected for real, under a steady producer, on 3 partitions.

Each test asserts what the README's "Outages" promises: the service never exits, every input event has a
prediction, every event is learned exactly once; during a Redis outage predictions go on. The
recovery times are printed (``-s`` shows them), never asserted: BENCHMARKS.md records them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import orjson
import pytest

from learner.local.servers import Broker, RedisServer
from stream import Admin
from tests.conftest import Stack, make_stack
from tests.faults import FAULT_SECONDS, TcpProxy, through_a_fault
from tests.test_monitor import get, scrape, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aof_redis() -> Iterator[RedisServer]:
    """A Redis of these tests' own, with an append-only file synced at each write."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture
def redis_stack(broker: Broker, aof_redis: RedisServer) -> Iterator[tuple[Stack, TcpProxy]]:
    """A 3-partition stack whose service reaches Redis through a proxy."""
    stack = make_stack(broker, aof_redis, partitions=3)
    with TcpProxy(aof_redis.port) as proxy:
        stack.service_redis = ["--redis-url", f"redis://127.0.0.1:{proxy.port}/0"]
        yield stack, proxy
        stack.cleanup()


@pytest.fixture(scope="module")
def proxied_broker() -> Iterator[tuple[Broker, TcpProxy]]:
    """A broker of these tests' own that every client reaches through a proxy (it advertises the proxy)."""
    from learner.local.servers import free_port

    port = free_port()
    with Broker(advertised_port=port) as broker, TcpProxy(broker.port, port=port) as proxy:
        yield broker, proxy


@pytest.fixture
def broker_stack(proxied_broker: tuple[Broker, TcpProxy], redis_server: RedisServer) -> Iterator[tuple[Stack, Broker, TcpProxy]]:
    broker, proxy = proxied_broker
    stack = make_stack(broker, redis_server, partitions=3)
    yield stack, broker, proxy
    stack.cleanup()


def _report(what: str, recovery: object) -> None:
    print(f"\n{what}: {recovery}")  # reported, never asserted


def test_redis_killed_and_restarted_with_its_append_only_file(redis_stack: tuple[Stack, TcpProxy],
                                                              aof_redis: RedisServer) -> None:
    stack, _ = redis_stack
    recovery = through_a_fault(stack, aof_redis.kill, aof_redis.start)
    assert recovery.predicted_during > 0  # predicting needs no Redis
    _report("Redis kill -9, restart with AOF", recovery)


def _degraded(port: int) -> None:
    """While Redis is away: /readyz says what is degraded, the metrics count it."""
    code, body = wait_until(lambda: (result := get(port, "/readyz"))[0] == 503 and b"Redis" in result[1] and result,
                            timeout=30)
    assert code == 503 and body.decode().startswith("degraded: Redis unavailable"), body
    samples = scrape(port)
    model = next(labels for name, labels in samples if name == "learner_redis_up")
    assert samples[("learner_redis_up", model)] == 0


def test_redis_paused(redis_stack: tuple[Stack, TcpProxy], aof_redis: RedisServer) -> None:
    stack, _ = redis_stack
    recovery = through_a_fault(stack, aof_redis.pause, aof_redis.resume, during=_degraded)
    assert recovery.predicted_during > 0
    assert stack.log().count("Redis is unavailable") == 1  # said once, not once per retry
    assert stack.log().count("Redis answers again") == 1
    _report("Redis paused (SIGSTOP)", recovery)


def test_redis_cut_off_by_a_partition(redis_stack: tuple[Stack, TcpProxy]) -> None:
    stack, proxy = redis_stack
    recovery = through_a_fault(stack, proxy.partition, proxy.heal, during=_degraded)
    assert recovery.predicted_during > 0
    _report("Redis cut off (partition)", recovery)


def test_broker_cut_off_by_a_partition(broker_stack: tuple[Stack, Broker, TcpProxy]) -> None:
    stack, _, proxy = broker_stack
    _report("broker cut off (partition)", through_a_fault(stack, proxy.partition, proxy.heal))


def test_broker_down(broker_stack: tuple[Stack, Broker, TcpProxy]) -> None:
    """Connections refused for the whole outage: librdkafka tries again many times a second, the log
    says so a few times (the throttle in stream.kafkalog), never once per try."""
    stack, _, proxy = broker_stack
    recovery = through_a_fault(stack, proxy.refuse, proxy.heal)
    lines = [line for line in stack.log().splitlines() if "stream.librdkafka" in line]
    assert len(lines) < 30, "\n".join(lines)
    _report("broker down (connections refused)", recovery)


def test_broker_paused(broker_stack: tuple[Stack, Broker, TcpProxy]) -> None:
    """With a producer queue small enough to fill while the broker is away: the gateway waits, no crash."""
    stack, broker, _ = broker_stack
    small_queue = ("--kafka-config", "queue.buffering.max.messages=200")
    _report("broker paused (SIGSTOP)", through_a_fault(stack, broker.pause, broker.resume, args=small_queue))


def test_start_up_waits_for_redis_and_kafka(redis_server: RedisServer, aof_redis: RedisServer) -> None:
    """Compose and Kubernetes start things in any order: the service waits (one line each), then streams."""
    from learner.local.servers import free_port

    redis_port, kafka_port = free_port(), free_port()
    late_redis = RedisServer(port=redis_port)
    late_broker = Broker(port=kafka_port)
    process = subprocess.Popen([sys.executable, "-m", "learner", "run", "--bootstrap-servers", f"127.0.0.1:{kafka_port}",
                                "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--name", "late", "--input-topic",
                                "late.in", "--insecure-no-signing", "--startup-timeout", "120"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = iter(process.stdout)  # type: ignore[arg-type]
        assert "waiting for Redis" in _line_with(lines, "waiting for")
        late_redis.start()
        waiting = _line_with(lines, "waiting for")
        assert "waiting for Kafka" in waiting and "the topic late.in" in waiting  # and the topic, made after it
        late_broker.start()
        Admin({"bootstrap.servers": late_broker.bootstrap_servers}).ensure({"late.in": 1})
        assert "streaming" in _line_with(lines, "streaming")
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()  # type: ignore[union-attr]
        late_broker.stop()
        late_redis.stop()


def _line_with(lines: Iterator[str], text: str) -> str:
    """The next line of the service's output that holds ``text`` (read as it comes)."""
    for line in lines:
        if text in line:
            return line
    raise AssertionError(f"the service never said {text!r}")


def test_serve_replicas_ride_out_a_broker_partition(broker_stack: tuple[Stack, Broker, TcpProxy]) -> None:
    """Two replicas in their group, a steady producer, the broker cut off 15 s: nobody exits, every
    event gets a prediction (some twice: the group rebalances when the broker is back)."""
    from tests.test_crash import SteadyProducer, events
    from tests.test_replicas import Replicas, _snapshot, wait_for

    stack, _, proxy = broker_stack
    v1 = _snapshot(stack.store(), None, 0)
    replicas = Replicas(stack, [])
    for _ in range(2):
        replicas.start()
    wait_for(lambda: replicas.balanced(3), 60, "two replicas sharing three partitions")
    assert all(s["model_version"] == v1 for s in replicas.statuses())
    feeder = SteadyProducer(stack, events(500 * 600, seed=12), per_second=500)
    wait_for(lambda: sum(s["predicted"] for s in replicas.statuses()) >= 1000, 60, "predictions flowing")
    proxy.partition()
    time.sleep(FAULT_SECONDS)  # the fault's duration: the scenario, not a wait for a condition
    proxy.heal()
    sent = feeder.finish(at_least=feeder.sent + 1000)
    ids = {e["id"] for e in sent}
    outputs = stack.read(stack.output, len(ids), timeout=180,
                         until=lambda ms: {orjson.loads(m.value())["id"] for m in ms} >= ids)
    assert {orjson.loads(m.value())["id"] for m in outputs} >= ids
    assert all(stack.processes[i].poll() is None for i in replicas.ports), stack.log()
    for index in replicas.ports:
        assert stack.stop(stack.processes[index], timeout=60) == 0, stack.log(index)
