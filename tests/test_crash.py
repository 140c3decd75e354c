"""kill -9 at random moments: the model ends exactly as if never interrupted, and no event lacks a prediction."""

from __future__ import annotations

import random
import time

import orjson
import pytest
from river import datasets

from learner.models import build_model
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def events(count: int, seed: int) -> list[dict]:
    stream = datasets.synth.Agrawal(seed=seed).take(count)
    return [{"id": f"e{i}", "x": x, "y": bool(y)} for i, (x, y) in enumerate(stream)]


def test_kill_minus_nine_loses_and_doubles_nothing(stack: Stack) -> None:
    rng = random.Random(7)
    all_events: list[dict] = []
    args = ("--model", "logreg", "--snapshot-every-events", "700", "--batch-size", "200")
    for round_ in range(4):
        chunk = events(8000, seed=round_)
        for e in chunk:
            e["id"] = f"r{round_}-{e['id']}"
        all_events += chunk
        stack.produce([orjson.dumps(e) for e in chunk])
        service = stack.start(*args)
        time.sleep(rng.uniform(1.0, 2.5))
        service.kill()
        service.wait()

    final = stack.start(*args)
    stack.wait_learned(len(all_events))
    assert stack.stop(final) == 0

    outputs = {orjson.loads(m.value())["id"] for m in stack.read(stack.output, len(all_events))}
    assert outputs == {e["id"] for e in all_events}

    meta, state = stack.store().load(stack.store().head())
    assert meta.events_learned == state["learned"] == len(all_events)
    uninterrupted = build_model("logreg")
    for e in all_events:
        uninterrupted.learn_one(e["x"], e["y"])
    recovered = state["model"]
    assert recovered["LogisticRegression"].weights == uninterrupted["LogisticRegression"].weights
    for e in events(200, seed=99):
        assert recovered.predict_proba_one(e["x"]) == uninterrupted.predict_proba_one(e["x"])
