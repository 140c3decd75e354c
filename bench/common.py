"""Shared pieces of the benchmarks: the data, the bare River loop, an embedded stack."""

from __future__ import annotations

import gc
import random
import resource
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import orjson
from confluent_kafka import Producer

from learner.core.models import build_model
from learner.local.servers import Broker, RedisServer
from learner.ops.feed import LabelDelay, Record, with_delayed_labels
from learner.runtime.shared.process import tune_for_streaming
from stream import Admin

FEATURES = 10


def make_events(count: int, seed: int = 1, features: int = FEATURES) -> list[bytes]:
    """Events with ``features`` numeric features (10) and a label from a noisy linear rule."""
    rng = random.Random(seed)
    weights = [rng.uniform(-1, 1) for _ in range(features)]
    out = []
    for i in range(count):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(features)}
        y = sum(w * v for w, v in zip(weights, x.values(), strict=True)) + rng.gauss(0, 0.5) > 0
        out.append(orjson.dumps({"id": i, "x": x, "y": y}))
    return out


def bare_river_loop(values: list[bytes], spec: str = "logreg") -> float:
    """Seconds River alone takes to predict_proba_one + learn_one the decoded events.

    The garbage collector gets the service's settings (everything alive before the loop frozen,
    young collections every 20,000 allocations): with the defaults, collections rescan the
    200k decoded events the loop holds, which the service never holds, and the reference would
    be slowed by something that is not River.
    """
    decoded = [orjson.loads(v) for v in values]
    model = build_model(spec)
    threshold = gc.get_threshold()
    tune_for_streaming()
    try:
        started = time.perf_counter()
        for event in decoded:
            model.predict_proba_one(event["x"])
            model.learn_one(event["x"], event["y"])
        return time.perf_counter() - started
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@contextmanager
def embedded_stack() -> Iterator[tuple[Broker, RedisServer]]:
    with Broker() as broker, RedisServer() as redis_server:
        yield broker, redis_server  # type: ignore[misc]


def fill_topic(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    Admin({"bootstrap.servers": bootstrap}).ensure({topic: partitions})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    for i, value in enumerate(values):
        try:
            producer.produce(topic, value, str(i).encode())
        except BufferError:  # the broker is behind: let it catch up
            producer.flush(60)
            producer.produce(topic, value, str(i).encode())
        if i % 20000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def fill_records(bootstrap: str, records: Iterable[Record], topics: dict[str, int]) -> None:
    """Produce records with their own timestamps (the merge orders by them)."""
    Admin({"bootstrap.servers": bootstrap}).ensure(topics)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    for i, record in enumerate(records):
        while True:
            try:
                producer.produce(record.topic, record.value, record.key, timestamp=record.timestamp or 0)
                break
            except BufferError:  # the broker is behind: let it catch up
                producer.flush(60)
        if i % 20000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def delayed(values: list[bytes], topic: str, delay: int) -> list[Record]:
    """The events without ``y``, each label ``delay`` events later, stamped a millisecond apart."""
    start = int(time.time() * 1000)
    clock = iter(range(start, start + 10 * len(values) + 1)).__next__
    return list(with_delayed_labels(iter(values), topic, f"{topic}.labels", LabelDelay(delay, delay),
                                    now=lambda: clock() / 1000))


def peak_rss_mb() -> float:
    """This process's peak resident memory since it last exec'd (VmHWM; ``ru_maxrss`` survives exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
