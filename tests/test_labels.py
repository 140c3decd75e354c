"""Delayed labels through the real broker: learned with the features that were served, in an order
that does not depend on when the bytes arrived, equal to River's own evaluation with delay."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from river import compose, datasets, evaluate, metrics

from learner.core.models import build_model
from stream import Admin
from tests.conftest import Stack, make_stack

pytestmark = pytest.mark.integration

STEP_MS = 10  # events are STEP_MS apart in time: a delay of d events is d * STEP_MS


@pytest.fixture
def labelled(broker: object, redis_server: object) -> Iterator[Stack]:
    """A one-partition input topic and a one-partition labels topic."""
    stack = make_stack(broker, redis_server)  # type: ignore[arg-type]
    Admin(stack.client()).ensure({labels_topic(stack): 1})
    yield stack
    stack.cleanup()


def labels_topic(stack: Stack) -> str:
    return f"{stack.name}.labels"


def produce_delayed(stack: Stack, data: list[tuple[dict[str, Any], Any]], delays: list[int], start: int) -> None:
    """Events without labels at ``start + STEP_MS * i``; the label of event i at the time of event
    i + delays[i], on the labels topic, in the order they fall due (River's queue order)."""
    producer = Producer(stack.client(**{"linger.ms": 5}))
    for i, (x, _) in enumerate(data):
        producer.produce(stack.input, orjson.dumps({"id": i, "x": x}), timestamp=start + STEP_MS * i)
    due = sorted((start + STEP_MS * (i + d), i) for i, d in enumerate(delays))
    for ts, i in due:
        producer.produce(labels_topic(stack), orjson.dumps({"id": i, "y": data[i][1]}), timestamp=ts)
    assert producer.flush(30) == 0


def river_with_delay(spec: str, data: list[tuple[dict[str, Any], Any]], delays: list[int],
                     metric: metrics.base.Metric) -> tuple[float, Any]:
    """River's progressive_val_score with moment = the event's time, delay = its label's."""
    stream = [({**x, "__t": STEP_MS * i, "__d": STEP_MS * delays[i]}, y) for i, (x, y) in enumerate(data)]
    model = compose.Discard("__t", "__d") | build_model(spec)
    result = evaluate.progressive_val_score(stream, model, metric, moment=lambda x: x["__t"],
                                            delay=lambda x, y: x["__d"])
    return result.get(), model


@pytest.mark.parametrize(("spec", "dataset", "metric", "delay"), [
    ("logreg", datasets.Phishing, "Accuracy", "fixed"),
    ("logreg", datasets.Phishing, "LogLoss", "random"),
    ("regression", datasets.TrumpApproval, "MAE", "fixed"),
    ("regression", datasets.TrumpApproval, "MAE", "random"),
])
def test_equal_to_river_with_delay(labelled: Stack, spec: str, dataset: type, metric: str, delay: str) -> None:
    stack = labelled
    data = list(dataset())[:600]
    rng = random.Random(5)
    delays = [50] * len(data) if delay == "fixed" else [rng.randint(1, 120) for _ in data]
    produce_delayed(stack, data, delays, start=1_000_000)
    service = stack.start("--model", spec, "--labels-topic", labels_topic(stack), "--metric", metric,
                          "--snapshot-every-events", "0", "--snapshot-every-seconds", "0")
    predictions = [orjson.loads(m.value()) for m in stack.read(stack.output, len(data))]
    status = stack.wait_status(lambda s: s["events_learned"] >= len(data))
    assert stack.stop(service) == 0

    expected, reference = river_with_delay(spec, data, delays, getattr(metrics, metric)())
    state = stack.store().load(stack.store().head()).state
    assert state["learned"] == len(data)
    assert state["scorecard"].evaluation.values()[metric]["all"] == expected
    assert status["labels"]["joined"] == len(data) and status["labels"]["waiting"] == 0
    # the final model is River's, and each prediction was made before the labels due after it
    probe = data[0][0]
    if spec == "regression":
        assert state["model"].predict_one(probe) == reference.predict_one(probe)
    else:
        assert state["model"].predict_proba_one(probe) == reference.predict_proba_one(probe)
    assert [p["id"] for p in predictions] == list(range(len(data)))


def test_the_cases_real_streams_have(labelled: Stack) -> None:
    """Joined, expired, unknown, duplicate, early, the wrong type, too many waiting: each counted; the
    labels that are lost dead-lettered with the reason and where they came from."""
    stack, t0 = labelled, 1_000_000
    producer = Producer(stack.client())
    events = [(0, t0), (1, t0), (2, t0 + 100), (5, t0 + 3_200), (6, t0 + 3_300), (7, t0 + 3_400), (8, t0 + 3_500),
              (9, t0 + 60_000)]  # the last one moves the stream's clock far ahead
    for i, ts in events:
        producer.produce(stack.input, orjson.dumps({"id": i, "x": {"a": float(i)}}), timestamp=ts)
    labels = [(0, 1.5, t0 + 1_000),      # joined
              (0, 2.5, t0 + 1_200),      # duplicate: the first one won
              ("ghost", 1.0, t0 + 2_000),  # unknown: no such event within the early window
              (5, 3.0, t0 + 3_000),      # early: its event comes 200 ms later
              (2, "high", t0 + 3_100),   # the wrong type for a regressor
              (1, 4.0, t0 + 30_000)]     # its features expired (--label-ttl 10s)
    for i, y, ts in labels:
        producer.produce(labels_topic(stack), orjson.dumps({"id": i, "y": y}), timestamp=ts)
    producer.produce(labels_topic(stack), b"not a label", timestamp=t0 + 50_000)
    assert producer.flush(30) == 0
    service = stack.start("--model", "regression", "--labels-topic", labels_topic(stack), "--label-ttl", "10s",
                          "--label-early-window", "1s", "--max-pending", "3", "--snapshot-every-seconds", "0")
    stack.read(stack.output, len(events))
    status = stack.wait_status(lambda s: s["labels"] and s["labels"]["received"] >= len(labels))
    letters = stack.read(stack.dlq, 5)
    assert stack.stop(service) == 0

    counts = status["labels"]
    assert counts["joined"] == 2 and counts["duplicate"] == 1 and counts["unknown"] == 1 and counts["early"] == 1
    assert counts["rejected"] == 1 and counts["expired"] >= 1 and counts["received"] == len(labels)
    # --max-pending 3: of 6, 7, 8 (and 2, which kept waiting), the oldest expired first
    assert counts["waiting"] <= 3
    reasons = {orjson.loads(m.value()).get("id") if m.value().startswith(b"{") else "?": dict(
        (k, v.decode()) for k, v in m.headers()) for m in letters}
    assert "duplicate label" in reasons[0]["error"] and reasons[0]["source.topic"] == labels_topic(stack)
    assert "no event with this id" in reasons["ghost"]["error"]
    assert "not a number" in reasons[2]["error"] and "expired" in reasons[1]["error"]
    assert "not valid JSON" in reasons["?"]["error"]
    assert all(r["source.offset"].isdigit() for r in reasons.values())
    state = stack.store().load(stack.store().head()).state
    assert state["learned"] == 2  # the two joins; nothing else was learned
    assert state["scorecard"].evaluation.tracked[0].metric._mean.n == 2  # the metric scores joined labels only
