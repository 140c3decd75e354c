"""kill -9 at random moments: the model ends exactly as if never interrupted, and no event lacks a prediction."""

from __future__ import annotations

import random
import threading
import time

import orjson
import pytest
from confluent_kafka import Producer
from river import datasets

from learner.core.models import build_model
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def events(count: int, seed: int) -> list[dict]:
    stream = datasets.synth.Agrawal(seed=seed).take(count)
    return [{"id": f"e{i}", "x": x, "y": bool(y)} for i, (x, y) in enumerate(stream)]


def produce_steadily(stack: Stack, values: list[bytes], per_second: int) -> threading.Thread:
    """Feed the input topic at a steady rate in the background, so kills land mid-stream."""

    def feed() -> None:
        producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
        started = time.monotonic()
        for i, value in enumerate(values):
            producer.produce(stack.input, value)
            if i % 100 == 0:
                producer.poll(0)
                time.sleep(max(0.0, i / per_second - (time.monotonic() - started)))
        producer.flush(30)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def test_kill_minus_nine_loses_and_doubles_nothing(stack: Stack) -> None:
    rng = random.Random(7)
    all_events = events(36_000, seed=1)
    feeder = produce_steadily(stack, [orjson.dumps(e) for e in all_events], per_second=2000)
    args = ("--model", "logreg", "--snapshot-every-events", "700", "--snapshot-every-seconds", "0.5", "--batch-size", "200")
    learned_at_kill = []
    for _ in range(5):
        service = stack.start(*args)
        stack.wait_for_log("streaming")
        time.sleep(rng.uniform(0.2, 1.2))
        service.kill()
        service.wait()
        head = stack.store().head()
        learned_at_kill.append(stack.store().meta(head).events_learned if head else 0)
    feeder.join()
    mid_stream = [n for n in learned_at_kill if 0 < n < len(all_events)]
    assert len(mid_stream) >= 3 and mid_stream == sorted(mid_stream), learned_at_kill

    final = stack.start(*args)
    stack.wait_for_log("streaming")  # the last kill may have come after the end: the head is complete already
    stack.wait_learned(len(all_events))
    assert stack.stop(final) == 0

    ids = {e["id"] for e in all_events}

    def every_id(messages: list) -> bool:
        return {orjson.loads(m.value())["id"] for m in messages} >= ids

    outputs = {orjson.loads(m.value())["id"] for m in stack.read(stack.output, len(ids), until=every_id)}
    assert outputs == ids

    meta, state = stack.store().load(stack.store().head())
    assert meta.events_learned == state["learned"] == len(all_events)
    uninterrupted = build_model("logreg")
    for e in all_events:
        uninterrupted.learn_one(e["x"], e["y"])
    recovered = state["model"]
    assert recovered["LogisticRegression"].weights == uninterrupted["LogisticRegression"].weights
    for e in events(200, seed=99):
        assert recovered.predict_proba_one(e["x"]) == uninterrupted.predict_proba_one(e["x"])
