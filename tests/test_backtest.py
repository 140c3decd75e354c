"""``learner backtest`` through the real broker and Redis: a replay from a version equals River run
offline over the same retained events (inline and delayed labels), the live column is what the live
lineage scored, and the live model's Redis keys are untouched."""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from river import datasets, evaluate, metrics

from learner.core.models import build_model
from learner.state.control import ControlPlane
from stream import Admin
from tests.conftest import Stack, make_stack
from tests.models import CountingMajority
from tests.test_challengers import challenger, rows_of, wait_challenger
from tests.test_labels import (  # noqa: F401 (a fixture)
    DelayedProducer,
    labelled,
    labels_topic,
    produce_delayed,
    river_with_delay,
)
from tests.test_rollback import learner

pytestmark = pytest.mark.integration

DATA = list(datasets.Phishing())[:600]


def backtest(stack: Stack, *args: str) -> dict[str, Any]:
    done = learner(stack, "backtest", "--bootstrap-servers", stack.bootstrap, "--input-topic", stack.input, "--json",
                   *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def keys_of(stack: Stack) -> dict[bytes, Any]:
    """Every Redis key of the model, with its serialized value."""
    client = redis.Redis.from_url(stack.redis.url)
    return {key: client.dump(key) for key in client.scan_iter(f"{stack.store().keys.prefix}*")}


def accuracy(pairs: Iterator[tuple[Any, Any]]) -> float:
    metric = metrics.Accuracy()
    for y, prediction in pairs:
        metric.update(y, prediction)
    return float(metric.get())


def test_a_backtest_with_delayed_labels_equals_river_offline(labelled: Stack) -> None:  # noqa: F811
    stack = labelled
    delays = [50] * len(DATA)
    produce_delayed(stack, DATA, delays, start=1_000_000)
    service = stack.start("--model", "logreg", "--labels-topic", labels_topic(stack), "--metric", "Accuracy",
                          "--snapshot-every-events", "200", "--snapshot-every-seconds", "0")
    stack.wait_status(lambda s: s["events_learned"] >= len(DATA))
    assert stack.stop(service) == 0
    store = stack.store()
    first = store.versions()[0]
    position = store.meta(first).position()
    e0, l0 = position[(stack.input, 0)], position.get((labels_topic(stack), 0), 0)
    assert 0 < l0 < e0 < len(DATA)
    before = keys_of(stack)

    report = backtest(stack, "--labels-topic", labels_topic(stack), "--from-version", str(first), "--until", "now",
                      "--model", "logreg", "--model", "tests.models:constant_true")
    assert keys_of(stack) == before  # nothing written under the live name
    assert report["from_version"] == first and report["events"] == len(DATA) - e0

    # The live column: the live lineage's answers from the version on (labels l0.. in their due order).
    _, _, answered = river_with_delay("logreg", DATA, delays, metrics.Accuracy())
    assert report["live"]["metrics"]["Accuracy"]["all"] == accuracy(
        (DATA[i][1], answered[i]) for i in range(l0, len(DATA)))
    # A fresh spec: River over the events from the version on (labels of earlier events find nothing).
    fresh, constant = report["models"]
    expected, _, _ = river_with_delay("logreg", DATA[e0:], delays[e0:], metrics.Accuracy())
    assert fresh["spec"] == "logreg" and fresh["all"]["Accuracy"]["all"] == expected
    assert fresh["paired_events"] == len(DATA) - e0 == constant["paired_events"]
    assert fresh["metrics"]["Accuracy"]["all"] == expected
    assert fresh["champion"]["Accuracy"]["all"] == accuracy((DATA[i][1], answered[i]) for i in range(e0, len(DATA)))
    assert constant["metrics"]["Accuracy"]["all"] == accuracy((DATA[i][1], True) for i in range(e0, len(DATA)))
    low, high = constant["difference"]["low"], constant["difference"]["high"]
    assert constant["difference"]["metric"] == "error rate" and 0 < low < high  # errs more than the live model

    forked = backtest(stack, "--labels-topic", labels_topic(stack), "--from-version", str(first), "--until", "now",
                      "--fork")["models"][0]
    assert forked["spec"] == f"fork of v{first}" and forked["paired_events"] == len(DATA) - l0
    assert forked["difference"]["value"] == forked["difference"]["low"] == 0.0  # the live model itself


def test_a_backtest_on_three_partitions_replays_what_the_live_lineage_did(broker: object, redis_server: object) -> None:
    """Events and labels arriving live on 3 partitions each (the service's merged order, late messages
    and all): from the first version to the head, the replayed live model scores exactly the events the
    lineage learned meanwhile and gets exactly as many right."""
    stack = make_stack(broker, redis_server, partitions=3)  # type: ignore[arg-type]
    Admin(stack.client()).ensure({labels_topic(stack): 3})
    try:
        service = stack.start("--model", "logreg", "--labels-topic", labels_topic(stack), "--metric", "Accuracy",
                              "--snapshot-every-events", "500", "--snapshot-every-seconds", "0")
        feeder = DelayedProducer(stack, per_second=1000)
        stack.wait_status(lambda s: s["events_learned"] >= 2500)
        sent = feeder.finish()
        stack.wait_status(lambda s: s["events_learned"] >= sent)
        assert stack.stop(service) == 0
        store = stack.store()
        first, head = store.versions()[0], store.head()
        assert head is not None and head != first
        report = backtest(stack, "--labels-topic", labels_topic(stack), "--from-version", str(first), "--fork")
    finally:
        stack.cleanup()
    start, end = store.meta(first), store.meta(head)
    learned = end.events_learned - start.events_learned
    forked = report["models"][0]
    assert forked["paired_events"] == learned > 0 and forked["difference"]["value"] == 0.0

    def right(accuracy: float, events: int) -> int:
        return round(accuracy * events)
    assert right(report["live"]["metrics"]["Accuracy"]["all"], learned) == (
        right(end.metrics["Accuracy"]["all"], end.events_learned)
        - right(start.metrics["Accuracy"]["all"], start.events_learned))


def test_an_inline_backtest_up_to_the_head_equals_river_offline(stack: Stack) -> None:
    stack.produce([orjson.dumps({"id": i, "x": x, "y": y}) for i, (x, y) in enumerate(DATA)])
    service = stack.start("--model", "logreg", "--metric", "Accuracy", "--snapshot-every-events", "200",
                          "--snapshot-every-seconds", "0", "--stop-after-events", str(len(DATA)),
                          "--batch-size", "100")  # batches end at every snapshot point: several versions
    assert service.wait(120) == 0, stack.log()
    store = stack.store()
    first, head = store.versions()[0], store.head()
    assert head is not None and head != first
    e0, end = store.meta(first).position()[(stack.input, 0)], store.meta(head).position()[(stack.input, 0)]

    report = backtest(stack, "--from-version", str(first), "--model", "logreg")
    assert report["events"] == end - e0

    live_model = copy.deepcopy(store.load(first).state.model)
    live = evaluate.progressive_val_score(DATA[e0:end], live_model, metrics.Accuracy())
    fresh = evaluate.progressive_val_score(DATA[e0:end], build_model("logreg"), metrics.Accuracy())
    assert report["live"]["metrics"]["Accuracy"]["all"] == live.get()
    model = report["models"][0]
    assert model["metrics"]["Accuracy"]["all"] == fresh.get() and model["paired_events"] == end - e0
    assert model["champion"]["Accuracy"]["all"] == live.get()


def test_a_backtest_says_in_one_line_what_it_cannot_do(stack: Stack) -> None:
    stack.produce([orjson.dumps({"id": i, "x": x, "y": y}) for i, (x, y) in enumerate(DATA[:50])])
    service = stack.start("--model", "logreg", "--stop-after-events", "50")
    assert service.wait(120) == 0, stack.log()
    for args, says in [(("--from-version", "99", "--model", "logreg"), "has no snapshot 99"),
                       (("--from-version", "1", "--model", "regression"), "cannot be compared"),
                       (("--from-time", "yesterday", "--model", "logreg"), "ISO 8601"),
                       (("--from-version", "1", "--model", "tree", "--fork"), "--fork replays version 1's own model")]:
        done = learner(stack, "backtest", "--bootstrap-servers", stack.bootstrap, "--input-topic", stack.input, *args)
        assert done.returncode in (1, 2) and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


def test_a_backtest_saved_as_a_challenger_runs_on_learning_every_event_once(stack: Stack, tmp_path: Path) -> None:
    """``--save-as``: the replayed model becomes a challenger's first snapshot at the head's offsets; run on,
    it learns every later event once (a model that counts what it learns) and pairs with the champion."""
    rows = [{"id": i, "x": {"i": i, "a": (i * 37 % 101) / 50 - 1}, "y": (i * 7) % 10 < 6} for i in range(600)]
    stack.produce([orjson.dumps(row) for row in rows[:400]])
    common = ("--model", "logreg", "--metric", "Accuracy", "--snapshot-every-events", "100",
              "--snapshot-every-seconds", "0", "--batch-size", "50")
    assert stack.start(*common, "--stop-after-events", "400").wait(120) == 0, stack.log()
    store = stack.store()
    first = store.versions()[0]
    e0 = store.meta(first).position()[(stack.input, 0)]
    before = keys_of(stack)

    report = backtest(stack, "--from-version", str(first), "--model", "tests.models:counting_majority",
                      "--save-as", "counter")
    assert report["saved"] == {"challenger": "counter", "version": 1} and report["events"] == 400 - e0
    saved = store.lineage("counter").load(1)
    assert saved.meta.events_learned == saved.state.learned == 400 - e0, (saved.meta, saved.state)
    unchanged = {k: v for k, v in keys_of(stack).items() if b"challenger" not in k and not k.endswith(b":audit")}
    assert unchanged == {k: v for k, v in before.items() if not k.endswith(b":audit")}  # and the audit says so:
    assert store.audit.entries()[-1].detail.startswith("counter: tests.models:counting_majority saved by a backtest")
    again = learner(stack, "backtest", "--bootstrap-servers", stack.bootstrap, "--input-topic", stack.input,
                    "--from-version", str(first), "--model", "logreg", "--save-as", "counter")
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already has a challenger" in again.stderr
    listed = rows_of(stack)["counter"]
    assert listed["spec"] == "tests.models:counting_majority" and listed["from_version"] == first

    stack.produce([orjson.dumps(row) for row in rows[400:]])
    champion = stack.start(*common)
    runner = challenger(stack, "counter", "--model", "tests.models:counting_majority")
    wait_challenger(stack, "counter", 600)
    paired = ControlPlane(store.lineage("counter"))
    deadline = time.monotonic() + 120
    # Every later event pairs with the champion's answer (a model that learned nothing yet answers nothing: its first).
    expected = 200 if e0 < 400 else 199
    while ((paired.service_status() or Any).pairing or {}).get("paired_events", 0) < expected:
        assert time.monotonic() < deadline, (paired.service_status(), stack.log(-1))
        time.sleep(0.05)
    assert stack.stop(runner) == 0 and stack.stop(champion) == 0
    assert "restored" in stack.log(-1) and "begins at" not in stack.log(-1)
    out = tmp_path / "counter.pkl"
    assert learner(stack, "export", "--challenger", "counter", "--out", str(out)).returncode == 0
    final: CountingMajority = pickle.loads(out.read_bytes())
    assert final.seen == {i: 1 for i in range(e0, 600)}
    assert rows_of(stack)["counter"]["paired_events"] == expected
