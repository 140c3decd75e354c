"""The fetch watch on a real broker: what it restarts, that a restart neither skips nor repeats a
message, and what it leaves alone (a partition paused on purpose, one that is caught up).

The librdkafka stall it is for cannot be caused on demand (it follows a broker outage, rarely), so
the watch is driven here as it would be once a consumer has been silent for its whole period.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from learner.local.servers import Broker
from stream import Admin, BatchConsumer, FetchWatch

pytestmark = pytest.mark.integration

_topics = itertools.count()


@pytest.fixture
def topic(broker: Broker) -> str:
    name = f"fetch-watch-{os.getpid()}-{next(_topics)}"
    Admin({"bootstrap.servers": broker.bootstrap_servers}).ensure({name: 2})
    return name


@pytest.fixture
def consumer(broker: Broker, topic: str, request: pytest.FixtureRequest) -> Iterator[BatchConsumer]:
    """Partitions assigned by the program (the gateway), or by the group (a serve replica) when the
    test asks (joining a group takes the broker about 20 s)."""
    made = BatchConsumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": topic}, [topic])
    made.start(join_group=getattr(request, "param", False))
    yield made
    made.close()


def produce(broker: Broker, topic: str, partition: int, values: range) -> None:
    """One message per request: each its own batch, so that the broker's end offsets are exact."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for value in values:
        producer.produce(topic, str(value).encode(), partition=partition)
        producer.flush(30)


def take(consumer: BatchConsumer, count: int) -> list[tuple[int, int]]:
    """(partition, offset) of the next ``count`` messages."""
    out: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while len(out) < count:
        assert time.monotonic() < deadline, f"{len(out)} of {count} messages"
        out.extend((m.partition(), m.offset()) for m in consumer.consume(count - len(out), 0.2))
    return out


def looked(consumer: BatchConsumer) -> FetchWatch:
    """A watch that looks now, as after a whole period of empty-handed consumes."""
    watch = FetchWatch(consumer, after=0.0)
    watch.check(time.monotonic(), consumed=0, busy=False, broker_answers=True)
    return watch


@pytest.mark.parametrize("consumer", [False, True], ids=["assigned", "in a group"], indirect=True)
def test_a_restart_neither_skips_nor_repeats(broker: Broker, topic: str, consumer: BatchConsumer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    for partition in (0, 1):
        produce(broker, topic, partition, range(40))
    first = take(consumer, 30)
    positions = consumer.positions()
    assert positions and all(0 < at < 40 for at in positions.values())
    with caplog.at_level(logging.WARNING, logger="stream.fetch_watch"):
        watch = looked(consumer)
    assert watch.restarts == len(positions)  # every partition read from has messages waiting
    assert all("restarting its fetch" in record.message for record in caplog.records)
    rest = take(consumer, 80 - len(first))
    for partition in (0, 1):
        assert [o for p, o in first + rest if p == partition] == list(range(40))


def test_paused_and_caught_up_partitions_are_left_alone(broker: Broker, topic: str, consumer: BatchConsumer) -> None:
    for partition in (0, 1):
        produce(broker, topic, partition, range(5))
    take(consumer, 10)
    assert looked(consumer).restarts == 0  # caught up: nothing waits
    produce(broker, topic, 0, range(5, 10))
    consumer.pause([(topic, 0)])
    assert looked(consumer).restarts == 0  # paused by the application: not a stall
    consumer.resume([(topic, 0)])
    assert sorted(take(consumer, 5)) == [(0, offset) for offset in range(5, 10)]
    assert not consumer.paused


def test_an_outage_is_not_a_stall(broker: Broker, topic: str, consumer: BatchConsumer) -> None:
    produce(broker, topic, 0, range(5))
    take(consumer, 1)
    watch = FetchWatch(consumer, after=0.0)
    watch.check(time.monotonic(), consumed=0, busy=False, broker_answers=False)
    assert watch.restarts == 0


class _Revoked:
    """A consumer whose group took its partition away between the look and the restart (only the
    watch's logic is under test: the race cannot be caused on demand on a real broker)."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()

    def positions(self) -> dict[tuple[str, int], int]:
        return {("in", 0): 3}

    def end_offset(self, topic: str, partition: int, timeout: float) -> int:
        return 9

    def seek(self, topic: str, partition: int, offset: int) -> None:
        raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))


def test_a_partition_taken_away_meanwhile_is_said_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    watch = FetchWatch(_Revoked(), after=0.0)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="stream.fetch_watch"):
        watch.check(time.monotonic(), consumed=0, busy=False, broker_answers=True)
    assert watch.restarts == 0 and "in[0]: fetch not restarted: Erroneous state" in caplog.text
