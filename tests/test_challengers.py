"""Challengers through the real broker and Redis: each learns the champion's stream from a version, under a
lineage of its own, exactly once across ``kill -9``, publishing nothing; the commands that manage them."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from confluent_kafka import Producer
from river import datasets, metrics

from learner.core.models import build_model
from learner.state.control import ControlPlane
from tests.conftest import Stack
from tests.test_labels import STEP_MS, labelled, labels_topic, produce_delayed, river_with_delay  # noqa: F401 (a fixture)
from tests.test_rollback import learner

pytestmark = pytest.mark.integration

DATA = list(datasets.Phishing())[:900]
ROWS = [orjson.dumps({"id": i, "x": x, "y": y}) for i, (x, y) in enumerate(DATA)]
SNAPSHOTS = ("--metric", "Accuracy", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0", "--batch-size", "50")


def challenger(stack: Stack, name: str, *args: str) -> subprocess.Popen[bytes]:
    return stack.start("--role", "challenger", "--challenger", name, *SNAPSHOTS, *args)


def priorities(process: subprocess.Popen[bytes]) -> tuple[tuple[int, int], set[tuple[int, int]]]:
    """(scheduling policy, nice) of a service's model process, and those of its children (its gateway;
    a snapshot's child, while one writes, has the model process's)."""
    model = psutil.Process(process.pid)
    return (os.sched_getscheduler(model.pid), model.nice()), {(os.sched_getscheduler(c.pid), c.nice())
                                                              for c in model.children()}


def wait_challenger(stack: Stack, name: str, done: int, timeout: float = 180.0) -> dict[str, Any]:
    """The challenger's published status, once it has done ``done`` input events."""
    control = ControlPlane(stack.store().lineage(name))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = control.service_status()
        if status is not None and status.events_done >= done:
            return status.to_json()
        time.sleep(0.05)
    raise AssertionError(f"challenger {name} never did {done} events; last: {control.service_status()}")


def rows_of(stack: Stack) -> dict[str, dict[str, Any]]:
    done = learner(stack, "challengers", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {row["challenger"]: row for row in orjson.loads(done.stdout)}


def prequential(model: Any, rows: list[tuple[dict, Any]]) -> list[Any]:
    """The model's answer to each row before it learns it (River's progressive_val_score, answers kept)."""
    answers = []
    for x, y in rows:
        answers.append(model.predict_one(x))
        model.learn_one(x, y)
    return answers


def accuracy(answers: list[Any], rows: list[tuple[dict, Any]]) -> float:
    metric = metrics.Accuracy()
    for answer, (_, y) in zip(answers, rows, strict=True):
        metric.update(y, answer)
    return float(metric.get())


def test_challengers_learn_and_pair_with_the_champion_exactly_once(stack: Stack, tmp_path: Path) -> None:
    """Two challengers from version 1 (fresh, forked); the champion and the fresh challenger are each
    killed (-9) mid-stream. Every figure equals River run offline over the same events."""
    stack.produce(ROWS[:300])
    champion = stack.start("--model", "logreg", "--lease-ttl", "2", *SNAPSHOTS)
    stack.wait_status(lambda s: s["events_done"] >= 300)
    store = stack.store()
    first = store.versions()[0]
    e0 = store.meta(first).position()[(stack.input, 0)]
    assert 0 < e0 < 300

    fresh = challenger(stack, "fresh", "--model", "logreg", "--from-version", str(first), "--lease-ttl", "2")
    forked = challenger(stack, "forked", "--fork", "--from-version", str(first))
    stack.wait_for_log("writing what is scored to", index=0)  # the champion knows: the next events are paired
    stack.produce(ROWS[300:600])
    wait_challenger(stack, "forked", 600)
    stack.wait_status(lambda s: s["events_done"] >= 600)
    # CPU priorities: the champion's gateway loses a contested CPU to its model but is never starved
    # (nice 10, README "Configuration"); an experiment only uses CPU time nothing else wants.
    model, children = priorities(champion)
    assert model == (os.SCHED_OTHER, 0) and (os.SCHED_OTHER, 10) in children, (model, children)
    model, children = priorities(forked)
    assert {model, *children} == {(os.SCHED_IDLE, 0)}, (model, children)
    fresh_lineage = stack.store().lineage("fresh")
    deadline = time.monotonic() + 180
    while (head := fresh_lineage.head()) is None or fresh_lineage.meta(head).offsets[f"{stack.input}:0"] < e0 + 100:
        assert time.monotonic() < deadline and fresh.poll() is None, stack.log(1)
        time.sleep(0.05)
    for killed in (fresh, champion):  # kill -9 mid-stream: each begins again from its own snapshot
        killed.kill()
        killed.wait()
    stack.produce(ROWS[600:])
    removing = learner(stack, "challengers", "remove", "--challenger", "forked")
    assert removing.returncode == 2 and "stop it first" in removing.stderr, removing.stderr
    champion = stack.start("--model", "logreg", "--lease-ttl", "2", *SNAPSHOTS)
    fresh = challenger(stack, "fresh", "--model", "logreg", "--lease-ttl", "2")
    for name in ("fresh", "forked"):
        wait_challenger(stack, name, len(DATA))
    stack.wait_status(lambda s: s["events_done"] >= len(DATA))
    rows = rows_of(stack)
    deadline = time.monotonic() + 180
    while any(rows[name]["paired_events"] < len(DATA) - 300 for name in rows):  # the champion's last scores
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
        rows = rows_of(stack)
    for process in (fresh, forked, champion):
        assert stack.stop(process) == 0

    rows = rows_of(stack)  # as the stopped challengers left them
    assert set(rows) == {"fresh", "forked"}
    assert rows["fresh"]["spec"] == rows["forked"]["spec"] == "logreg"
    assert rows["fresh"]["from_version"] == rows["forked"]["from_version"] == first and rows["forked"]["fork"]
    champion_answers = prequential(build_model("logreg"), DATA)
    tail = DATA[300:]  # scored by the champion after it knew of the challengers: paired, each once
    for name, model in [("fresh", build_model("logreg")), ("forked", copy.deepcopy(store.load(first).state.model))]:
        answers = prequential(model, DATA[e0:])
        row = rows[name]
        assert row["all"]["Accuracy"]["all"] == accuracy(answers, DATA[e0:])  # its own, from its start
        assert row["paired_events"] == len(tail) and row["waiting"]["champion"] == 0
        assert row["metrics"]["Accuracy"]["all"] == accuracy(answers[300 - e0:], tail)
        assert row["champion"]["Accuracy"]["all"] == accuracy(champion_answers[300:], tail)
        errors = [(a != y) - (c != y) for a, c, (_, y) in zip(answers[300 - e0:], champion_answers[300:], tail,
                                                                strict=True)]
        assert row["difference"]["value"] == pytest.approx(sum(errors) / len(errors))
    assert rows["fresh"]["events_learned"] == len(DATA) - e0 and rows["forked"]["events_learned"] == len(DATA)
    assert rows["forked"]["difference"]["value"] == 0.0  # the champion's own lineage: the same answers

    # Only the champion published: one prediction per event at least, no dead letters.
    assert len(stack.read_nowait(stack.output)) >= len(DATA)
    assert stack.read_nowait(stack.dlq) == []
    status = learner(stack, "status", "--json")
    assert [row["challenger"] for row in orjson.loads(status.stdout)["challengers"]] == ["forked", "fresh"]
    assert "fresh: logreg from version" in learner(stack, "status").stdout
    assert "verdict" in learner(stack, "challengers", "list").stdout

    out = tmp_path / "forked.pkl"
    exported = learner(stack, "export", "--challenger", "forked", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert type(pickle.loads(out.read_bytes())).__name__ == "Pipeline"
    listed = learner(stack, "snapshots", "list", "--challenger", "fresh", "--json")
    assert listed.returncode == 0 and orjson.loads(listed.stdout), listed.stderr
    removed = learner(stack, "challengers", "remove", "--challenger", "fresh")
    assert removed.returncode == 0, removed.stderr
    assert set(rows_of(stack)) == {"forked"} and fresh_lineage.head() is None
    assert any(entry.action == "challenger" for entry in store.audit.entries())


def test_a_challenger_says_in_one_line_what_it_cannot_do(stack: Stack) -> None:
    stack.produce(ROWS[:50])
    service = stack.start("--model", "logreg", "--stop-after-events", "50")
    assert service.wait(120) == 0, stack.log()
    for index, (args, says) in enumerate([(("--model", "logreg", "--from-version", "99"), "has no version 99"),
                       (("--model", "regression", "--from-version", "1"), "a challenger must answer"),
                       (("--model", "tree", "--fork", "--from-version", "1"), "--fork starts from version 1's own model"),
                       (("--model", "logreg", "--live-every-seconds", "2"), "publishes no live model")]):
        process = challenger(stack, f"c{index}", *args, "--startup-timeout", "20")
        assert process.wait(120) in (1, 2), stack.log()
        lines = [line for line in stack.log().splitlines() if says in line]
        assert lines, stack.log()
    assert rows_of(stack) == {}  # nothing registered by a start that failed
    assert learner(stack, "challengers", "remove", "--challenger", "nobody").returncode == 2


def test_with_delayed_labels_a_challenger_pairs_what_it_learned_from_the_features_served(
        labelled: Stack) -> None:  # noqa: F811
    """Labels 50 events late on their own topic: both sides learn in the merged order, each from the
    features it was asked about, and every label pairs the two answers to its event."""
    stack = labelled
    # Each side merges the two topics itself, live: a partition one of them took for idle, or for
    # bringing nothing older (the allowance), while a slow machine delivers one topic's half late,
    # would put a message out of the logs' order on that side only (README "Known limits"). The
    # events are stamped just before now, the allowance is an hour and the idle wait a minute: each
    # side waits for the logs, so the order is the logs' own, which River's delayed evaluation
    # follows. A last event stamped after every label lets the last labels go without that wait.
    quiet = ("--merge-wait", "60s", "--merge-allowance", "1h")
    champion = stack.start("--model", "logreg", "--labels-topic", labels_topic(stack), "--metric", "Accuracy",
                           "--snapshot-every-events", "0", "--snapshot-every-seconds", "0", *quiet)
    stack.wait_for_log("streaming", index=0)
    taken = learner(stack, "snapshot")  # version 1, at the very start: the challenger begins with the champion
    assert taken.returncode == 0, taken.stderr
    rival = challenger(stack, "constant", "--model", "tests.models:constant_true", "--labels-topic",
                       labels_topic(stack), "--from-version", "1", *quiet)
    stack.wait_for_log("writing what is scored to", index=0)
    data = DATA[:600]
    delays = [50] * len(data)
    start = int(time.time() * 1000) - STEP_MS * (len(data) + 100)
    produce_delayed(stack, data, delays, start=start)
    closing = Producer(stack.client())
    closing.produce(stack.input, orjson.dumps({"id": "closing", "x": data[0][0]}),
                    timestamp=start + STEP_MS * (len(data) + max(delays) + 1))
    assert closing.flush(30) == 0
    stack.wait_status(lambda s: s["labels"]["joined"] >= len(data))
    rows: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 180
    while rows.get("constant", {}).get("paired_events", 0) < len(data):
        assert time.monotonic() < deadline and rival.poll() is None, (rows.get("constant"), stack.log(1))
        time.sleep(0.2)
        rows = rows_of(stack)
    for process in (rival, champion):
        assert stack.stop(process) == 0

    row = rows_of(stack)["constant"]
    champion_accuracy, _, answered = river_with_delay("logreg", data, delays, metrics.Accuracy())
    truths = sum(1 for _, y in data if y is True)
    assert row["paired_events"] == len(data) and row["unpaired"] == 0
    assert row["champion"]["Accuracy"]["all"] == champion_accuracy
    assert row["metrics"]["Accuracy"]["all"] == truths / len(data)
    champion_errors = sum(answer != y for answer, (_, y) in zip(answered, sorted_by_label(data, delays), strict=True))
    assert row["difference"]["value"] == pytest.approx(((len(data) - truths) - champion_errors) / len(data))


def sorted_by_label(data: list[tuple[dict, Any]], delays: list[int]) -> list[tuple[dict, Any]]:
    """The events in the order their labels came (River's answers come in that order)."""
    return [data[i] for _, i in sorted((i + d, i) for i, d in enumerate(delays))]
