"""Challengers through the real broker and Redis: each learns the champion's stream from a version, under a
lineage of its own, exactly once across ``kill -9``, publishing nothing; the commands that manage them."""

from __future__ import annotations

import copy
import pickle
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from river import datasets, evaluate, metrics

from learner.core.models import build_model
from learner.state.control import ControlPlane
from tests.conftest import Stack
from tests.test_rollback import learner

pytestmark = pytest.mark.integration

DATA = list(datasets.Phishing())[:900]
ROWS = [orjson.dumps({"id": i, "x": x, "y": y}) for i, (x, y) in enumerate(DATA)]
SNAPSHOTS = ("--metric", "Accuracy", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0")


def challenger(stack: Stack, name: str, *args: str) -> subprocess.Popen[bytes]:
    return stack.start("--role", "challenger", "--challenger", name, *SNAPSHOTS, *args)


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


def test_challengers_learn_the_champions_stream_from_a_version_exactly_once(stack: Stack, tmp_path: Path) -> None:
    stack.produce(ROWS[:300])
    champion = stack.start("--model", "logreg", *SNAPSHOTS)
    stack.wait_status(lambda s: s["events_done"] >= 300)
    store = stack.store()
    first = store.versions()[0]
    e0 = store.meta(first).position()[(stack.input, 0)]
    assert 0 < e0 < 300

    fresh = challenger(stack, "fresh", "--model", "logreg", "--from-version", str(first))
    forked = challenger(stack, "forked", "--fork", "--from-version", str(first))
    stack.produce(ROWS[300:600])
    wait_challenger(stack, "forked", 600)
    fresh_lineage = stack.store().lineage("fresh")
    deadline = time.monotonic() + 180
    while (head := fresh_lineage.head()) is None or fresh_lineage.meta(head).offsets[f"{stack.input}:0"] < e0 + 100:
        assert time.monotonic() < deadline and fresh.poll() is None, stack.log(1)
        time.sleep(0.05)
    fresh.kill()  # kill -9 mid-stream: it begins again from its own snapshot, not from the version
    fresh.wait()
    stack.produce(ROWS[600:])
    removing = learner(stack, "challengers", "remove", "--challenger", "forked")
    assert removing.returncode == 2 and "stop it first" in removing.stderr, removing.stderr
    fresh = challenger(stack, "fresh", "--model", "logreg")
    for name in ("fresh", "forked"):
        wait_challenger(stack, name, len(DATA))
    stack.wait_status(lambda s: s["events_done"] >= len(DATA))
    for process in (fresh, forked, champion):
        assert stack.stop(process) == 0

    rows = rows_of(stack)
    assert set(rows) == {"fresh", "forked"}
    status = learner(stack, "status", "--json")
    assert [row["challenger"] for row in orjson.loads(status.stdout)["challengers"]] == ["forked", "fresh"]
    assert "fresh: logreg from version" in learner(stack, "status").stdout
    assert rows["fresh"]["spec"] == rows["forked"]["spec"] == "logreg"
    assert rows["fresh"]["from_version"] == rows["forked"]["from_version"] == first and rows["forked"]["fork"]
    # A fresh model scores and learns exactly the events from the version on, once each (across the kill).
    offline = evaluate.progressive_val_score(DATA[e0:], build_model("logreg"), metrics.Accuracy())
    assert rows["fresh"]["events_learned"] == len(DATA) - e0
    assert rows["fresh"]["metrics"]["Accuracy"]["all"] == offline.get()
    # A fork learns on from the version's own model; its lineage's count goes on from there.
    forked_offline = evaluate.progressive_val_score(DATA[e0:], copy.deepcopy(store.load(first).state.model),
                                                    metrics.Accuracy())
    assert rows["forked"]["events_learned"] == len(DATA)
    assert rows["forked"]["metrics"]["Accuracy"]["all"] == forked_offline.get()

    # Only the champion published: one prediction per event, no dead letters.
    assert len(stack.read_nowait(stack.output)) == len(DATA)
    assert stack.read_nowait(stack.dlq) == []
    # The champion's lineage is its own: no challenger snapshot became one of its versions.
    assert all(store.meta(v).model_spec == "logreg" and "challenger" not in store.meta(v).extra for v in store.versions())

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
