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
from learner.runtime.shared.monitor import DEAD_LETTER_KINDS
from stream import Admin
from tests.conftest import Stack, make_named_store, make_stack
from tests.test_rollback import learner

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
                     metric: metrics.base.Metric) -> tuple[float, Any, list[Any]]:
    """River's progressive_val_score with moment = the event's time, delay = its label's: the final
    metric, the model, and the prediction of each question in the order its answer came."""
    stream = [({**x, "__t": STEP_MS * i, "__d": STEP_MS * delays[i]}, y) for i, (x, y) in enumerate(data)]
    model = compose.Discard("__t", "__d") | build_model(spec)
    answered = [state["Prediction"] for state in evaluate.iter_progressive_val_score(
        stream, model, metric, moment=lambda x: x["__t"], delay=lambda x, y: x["__d"], step=1,
        yield_predictions=True)]
    return metric.get(), model, answered


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

    expected, reference, answered = river_with_delay(spec, data, delays, getattr(metrics, metric)())
    # prediction for prediction: River's answers come in the labels' due order (ties by event)
    due = [i for _, i in sorted((i + d, i) for i, d in enumerate(delays))]
    published = {p["id"]: p for p in predictions}
    field = "proba" if metric == "LogLoss" else "prediction"
    for i, answer in zip(due, answered, strict=True):
        river_said = {str(k).lower(): v for k, v in answer.items()} if field == "proba" else answer
        assert published[i][field] == river_said, (i, published[i][field], river_said)
    state = stack.store().load(stack.store().head()).state
    assert state.learned == len(data)
    assert state.scorecard.evaluation.values()[metric]["all"] == expected
    assert status["labels"]["joined"] == len(data) and status["labels"]["waiting"] == 0
    # the final model is River's, and each prediction was made before the labels due after it
    probe = data[0][0]
    if spec == "regression":
        assert state.model.predict_one(probe) == reference.predict_one(probe)
    else:
        assert state.model.predict_proba_one(probe) == reference.predict_proba_one(probe)
    assert [p["id"] for p in predictions] == list(range(len(data)))


def test_a_replayed_rollback_learns_both_topics_again_in_the_same_order(labelled: Stack) -> None:
    """A rollback with --replay restores the version's waiting features and reads both topics again
    from its offsets: the final model and metric are those of a run never rolled back (River's)."""
    stack = labelled
    data, delays = list(datasets.Phishing())[:600], [50] * 600
    # Both topics are written whole before any service reads them, so that no partition is ever read to its
    # end while the other can still bring an earlier message: the order is the logs' alone, never "late"
    # (README "Delayed labels"). Sending the second half to a running service would race the two topics'
    # fetches: their historical timestamps are far behind the allowance, so the first to come would go first.
    produce_delayed(stack, data, delays, start=1_000_000)
    common = ("--model", "logreg", "--labels-topic", labels_topic(stack), "--metric", "LogLoss",
              "--snapshot-every-events", "0", "--snapshot-every-seconds", "0")
    first = stack.start(*common, "--stop-after-events", "300")
    assert first.wait(120) == 0, stack.log()
    version = stack.store().head()
    assert version is not None and 0 < stack.store().load(version).state.learned < 600
    service = stack.start(*common)  # resumes from that version and learns the rest
    stack.wait_status(lambda s: s["events_learned"] >= 600)
    assert learner(stack, "rollback", "--to", str(version), "--replay").returncode == 0
    stack.wait_status(lambda s: s["rollbacks"] == 1 and s["model_version"] == version)
    stack.wait_status(lambda s: s["events_learned"] >= 600 and s["labels"]["waiting"] == 0)
    assert stack.stop(service) == 0

    expected, reference, _ = river_with_delay("logreg", data, delays, metrics.LogLoss())
    state = stack.store().load(stack.store().head()).state
    assert state.learned == 600  # what came after the version learned again, once
    assert state.scorecard.evaluation.values()["LogLoss"]["all"] == expected
    assert state.model.predict_proba_one(data[0][0]) == reference.predict_proba_one(data[0][0])


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
    # Event 9 (at +60 s) went once the labels topic was idle: a label stamped before it is now late.
    producer.produce(labels_topic(stack), orjson.dumps({"id": "late", "y": 1.0}), timestamp=t0 + 55_000)
    assert producer.flush(30) == 0
    assert stack.wait_status(lambda s: s["labels"]["late"] == 1)["labels"]["received"] == len(labels) + 1
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
    assert {key: r["error.kind"] for key, r in reasons.items()} == {
        0: "label_duplicate", "ghost": "label_unknown", 2: "label_rejected", 1: "label_expired", "?": "invalid_json"}
    assert {r["error.kind"] for r in reasons.values()} <= set(DEAD_LETTER_KINDS)  # each a series of its own
    assert all(r["source.offset"].isdigit() for r in reasons.values())
    state = stack.store().load(stack.store().head()).state
    assert state.learned == 2  # the two joins; nothing else was learned
    assert state.scorecard.evaluation.tracked[0].metric._mean.n == 2  # the metric scores joined labels only


class DelayedProducer:
    """Events without labels on the input topic and their labels DELAY events later on the labels
    topic, at a steady rate, both stamped with the time they are sent, until told to finish."""

    DELAY = 50

    def __init__(self, stack: Stack, per_second: int) -> None:
        import threading

        self.stack, self.per_second, self.sent, self.labelled = stack, per_second, 0, 0
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        import time

        from river.datasets import synth

        producer = Producer(self.stack.client(**{"linger.ms": 5}))
        rows = iter(synth.Agrawal(seed=2))
        ys: list[bool] = []
        started = time.monotonic()
        while not self._finish.is_set() or self.labelled < self.sent:
            if not self._finish.is_set():
                x, y = next(rows)
                producer.produce(self.stack.input, orjson.dumps({"id": self.sent, "x": {**x, "i": self.sent}}),
                                 str(self.sent).encode())
                ys.append(bool(y))
                self.sent += 1
            if self.labelled < self.sent - (0 if self._finish.is_set() else self.DELAY):
                producer.produce(labels_topic(self.stack), orjson.dumps({"id": self.labelled, "y": ys[self.labelled]}),
                                 str(self.labelled).encode())
                self.labelled += 1
            if self.sent % 100 == 0:
                producer.poll(0)
                if not self._finish.is_set():
                    time.sleep(max(0.0, self.sent / self.per_second - (time.monotonic() - started)))
        producer.flush(30)

    def finish(self) -> int:
        """Stop sending events, send every label still due; how many events (all labelled) were sent."""
        self._finish.set()
        self._thread.join(60)
        return self.sent


def test_kill_minus_nine_with_two_topics_loses_and_doubles_nothing(broker: object, redis_server: object) -> None:
    """Steady producers on both topics, 3 partitions each, kill -9 at random moments: every event is
    predicted, and learned exactly once, with its own label, by the lineage."""
    from tests.test_crash import kill_repeatedly

    stack = make_stack(broker, redis_server, partitions=3)  # type: ignore[arg-type]
    Admin(stack.client()).ensure({labels_topic(stack): 3})
    args = ("--model", "tests.models:tally", "--labels-topic", labels_topic(stack), "--snapshot-every-events", "700",
            "--snapshot-every-seconds", "0", "--batch-size", "200", "--lease-ttl", "2")
    try:
        feeder = DelayedProducer(stack, per_second=1000)
        learned_at_kill = kill_repeatedly(stack, args, kills=5, seed=4)
        sent = feeder.finish()
        assert learned_at_kill == sorted(learned_at_kill) and learned_at_kill[-1] < sent, learned_at_kill
        final = stack.start(*args)
        stack.wait_status(lambda s: s["events_learned"] >= sent, timeout=120)
        assert stack.stop(final) == 0

        ids = set(range(sent))
        outputs = {orjson.loads(m.value())["id"] for m in stack.read(
            stack.output, sent, until=lambda ms: {orjson.loads(m.value())["id"] for m in ms} >= ids)}
        assert outputs == ids
        state = stack.store().load(stack.store().head()).state
        seen = state.model.seen
        assert state.learned == sent and len(seen) == sent and set(seen.values()) == {1}
        assert state.labels.waiting == 0
    finally:
        stack.cleanup()


def test_role_learn_with_delayed_labels_learns_the_same_and_publishes_nothing(labelled: Stack) -> None:
    """--role learn: the same model and online metric as --role all (River with delay), no predictions."""
    stack = labelled
    data = list(datasets.Phishing())[:400]
    delays = [30] * len(data)
    produce_delayed(stack, data, delays, start=1_000_000)
    service = stack.start("--role", "learn", "--model", "logreg", "--labels-topic", labels_topic(stack),
                          "--metric", "Accuracy", "--snapshot-every-events", "0", "--snapshot-every-seconds", "0")
    stack.wait_status(lambda s: s["events_learned"] >= len(data))
    assert stack.stop(service) == 0
    expected, reference, _ = river_with_delay("logreg", data, delays, metrics.Accuracy())
    state = stack.store().load(stack.store().head()).state
    assert state.scorecard.evaluation.values()["Accuracy"]["all"] == expected
    assert state.model.predict_proba_one(data[0][0]) == reference.predict_proba_one(data[0][0])
    assert stack.read_nowait(stack.output) == []
    assert stack.store().redis.hget(stack.store().keys.live, "meta") is not None  # published for replicas


def test_a_late_label_is_recorded_and_a_replay_learns_it_where_the_first_run_did(labelled: Stack) -> None:
    """A label that reaches the service after later events were applied (stamped before them, sent
    after them) is applied late; where it went is kept in Redis, and a replayed rollback puts it in
    the same place: the model ends exactly as it was, not as the logs' timestamps alone would make it."""
    stack, start = labelled, 1_000_000
    data = list(datasets.Phishing())[:200]
    producer = Producer(stack.client(**{"linger.ms": 5}))
    for i, (x, _) in enumerate(data[:100]):
        producer.produce(stack.input, orjson.dumps({"id": i, "x": x}), timestamp=start + STEP_MS * i)
    for i in range(90):  # each label 10 events late
        producer.produce(labels_topic(stack), orjson.dumps({"id": i, "y": data[i][1]}), timestamp=start + STEP_MS * (i + 10))
    assert producer.flush(30) == 0
    service = stack.start("--model", "logreg", "--labels-topic", labels_topic(stack),
                          "--snapshot-every-events", "0", "--snapshot-every-seconds", "0")
    stack.wait_status(lambda s: s["events_done"] >= 100 and s["labels"]["joined"] >= 90)
    version = int(learner(stack, "snapshot").stdout.split()[-1])
    for i, (x, _) in enumerate(data[100:], start=100):
        producer.produce(stack.input, orjson.dumps({"id": i, "x": x}), timestamp=start + STEP_MS * i)
    assert producer.flush(30) == 0
    stack.wait_status(lambda s: s["events_done"] >= 200)
    # The labels of events 90..189, stamped when they fell due (before events 100..199), sent now: late.
    for i in range(90, 190):
        producer.produce(labels_topic(stack), orjson.dumps({"id": i, "y": data[i][1]}), timestamp=start + STEP_MS * (i + 10))
    assert producer.flush(30) == 0
    stack.wait_status(lambda s: s["labels"]["joined"] >= 190)
    assert stack.store().late.load(), "the late labels were recorded"
    first = stack.store().load(int(learner(stack, "snapshot").stdout.split()[-1])).state

    assert learner(stack, "rollback", "--to", str(version), "--replay").returncode == 0
    stack.wait_status(lambda s: s["rollbacks"] == 1 and s["model_version"] == version)
    stack.wait_status(lambda s: s["events_learned"] >= 190 and s["labels"]["waiting"] == 10)
    replayed = stack.store().load(int(learner(stack, "snapshot").stdout.split()[-1])).state
    assert stack.stop(service) == 0
    assert replayed.learned == first.learned == 190
    for x, _ in data[:20]:
        assert replayed.model.predict_proba_one(x) == first.model.predict_proba_one(x)
    assert replayed.scorecard.evaluation.values() == first.scorecard.evaluation.values()


def test_a_restart_with_the_labels_read_to_their_end_serves_at_once(labelled: Stack) -> None:
    """After a restart, a labels topic with nothing new (read to its end before the stop) holds the
    events back for no longer than a quiet partition does: the events are served without a label."""
    stack = labelled
    producer = Producer(stack.client(**{"linger.ms": 5}))
    for i in range(50):
        producer.produce(stack.input, orjson.dumps({"id": i, "x": {"a": float(i)}}))
        producer.produce(labels_topic(stack), orjson.dumps({"id": i, "y": i % 2 == 0}))
    assert producer.flush(30) == 0
    args = ("--model", "logreg", "--labels-topic", labels_topic(stack), "--snapshot-every-seconds", "0")
    service = stack.start(*args)
    stack.wait_status(lambda s: s["events_done"] >= 50 and s["labels"]["received"] >= 50)
    assert stack.stop(service) == 0  # a final snapshot at both topics' ends
    for i in range(50, 80):
        producer.produce(stack.input, orjson.dumps({"id": i, "x": {"a": float(i)}}))
    assert producer.flush(30) == 0
    service = stack.start(*args)
    stack.wait_status(lambda s: s["events_done"] >= 80 and s["labels"]["waiting"] == 30)
    assert stack.stop(service) == 0


def test_the_late_log_keeps_the_current_lineages_place_for_each_message(redis_server: object) -> None:
    """A deposed writer (an older lease epoch) may have recorded a message too: the newest epoch's place wins."""
    with make_named_store("late") as store:
        assert store.late.load() == {}
        store.late.record([(("t.labels", 0, 5), (100, 1, 0, 7, 1)), (("t.labels", 1, 2), (100, 1, 0, 7, 2))], epoch=2)
        store.late.record([(("t.labels", 0, 5), (90, 1, 0, 3, 1))], epoch=1)  # the deposed writer, later
        assert store.late.load() == {("t.labels", 0, 5): (100, 1, 0, 7, 1), ("t.labels", 1, 2): (100, 1, 0, 7, 2)}
