"""Who serves: serve replicas announce themselves on a Kafka topic, ``learner status`` lists them.

A replica never writes to Redis, and a consumer group's members are not something every broker
describes (the embedded Tansu does not), so each replica produces a small heartbeat every few
seconds to ``learner.<name>.replicas`` (one partition, keyed by the replica), and a last one with
``stopped`` when it leaves. ``learner status`` reads the topic's tail and shows the replicas heard
from in the last :data:`FRESH` seconds, each with the version it serves. The topic is created by
the first replica (a Kafka ACL must allow it, or an operator creates it: one partition; a short
retention is enough).
"""

from __future__ import annotations

import time

import orjson

from learner.connections import Connections
from learner.core.status import Heartbeat
from learner.errors import LearnerError
from learner.settings import Settings
from learner.topics import TopicNames
from stream import AsyncProducer
from stream.errors import StreamError

__all__ = ["FRESH", "HEARTBEAT_EVERY", "heard", "registry_topic", "send"]

#: Seconds between two heartbeats of a replica.
HEARTBEAT_EVERY = 2.0
#: A replica not heard from for this long is not listed.
FRESH = 15.0
#: Messages read from the end of the topic: many heartbeats of each replica.
TAIL = 2000


def registry_topic(settings: Settings) -> str:
    return TopicNames(settings.name).replicas


def send(beat: Heartbeat, producer: AsyncProducer, topic: str) -> None:
    """Say it on the heartbeat topic, keyed by the replica (one partition: the order of its words)."""
    producer.produce(topic, orjson.dumps(beat.to_json()), beat.replica.encode())


def heard(settings: Settings, timeout: float = 3.0) -> list[Heartbeat]:
    """The replicas heard from in the last :data:`FRESH` seconds, newest word of each (none if no topic)."""
    connections = Connections(settings)
    topic = registry_topic(settings)
    try:
        counts = connections.admin().topic_partitions(timeout)
    except StreamError as error:
        raise LearnerError(f"cannot list the serve replicas: {error}") from None
    if topic not in counts:
        return []
    ends: dict[int, int] = {}
    consumer = connections.consumer([topic], group=TopicNames(settings.name).status_reader,
                                    on_assign=lambda tps: {tp: max(0, ends.get(tp[1], 0) - TAIL) for tp in tps})
    latest: dict[str, Heartbeat] = {}
    try:
        ends.update({p: consumer.end_offset(topic, p, timeout) for p in range(counts[topic])})
        consumer.start(join_group=False, metadata_timeout=timeout)
        deadline = time.monotonic() + timeout
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                try:
                    beat = Heartbeat.from_json(orjson.loads(message.value() or b"{}"))
                except (orjson.JSONDecodeError, TypeError):  # not a heartbeat: someone else's message
                    continue
                latest[beat.replica] = beat
                if int(message.offset() or 0) + 1 >= ends[int(message.partition() or 0)]:
                    remaining.discard(int(message.partition() or 0))
    finally:
        consumer.close()
    now = time.time()
    return sorted((b for b in latest.values() if not b.stopped and now - b.at <= FRESH), key=lambda b: b.replica)
