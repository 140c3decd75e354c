"""What a learner writes down for later (README "History and timeline"), through the real broker and
Redis: history points every few seconds, a typed timeline entry for each snapshot, lease change and
rollback, the model in the index; and the commands that read them."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import Stack
from tests.test_rollback import learner

pytestmark = pytest.mark.integration


def test_history_timeline_and_index(stack: Stack) -> None:
    stack.produce([orjson.dumps({"id": i, "x": {"a": i % 7 - 3.0}, "y": i % 7 > 3}) for i in range(600)])
    service = stack.start("--model", "logreg", "--metric", "Accuracy", "--snapshot-every-events", "200",
                          "--snapshot-every-seconds", "0", "--batch-size", "100")
    stack.wait_status(lambda s: s["events_done"] >= 600)
    store = stack.store()
    deadline = time.monotonic() + 60
    while len(points := store.history.points()) < 2:  # one now, the next a few seconds later
        assert time.monotonic() < deadline, points
        time.sleep(0.2)
    last = points[-1]
    assert last.events_done == 600 and last.version == store.head() and last.metrics["Accuracy"]["all"] > 0.5
    assert points[0].at < last.at

    versions = store.versions()
    rolled = learner(stack, "rollback", "--to", str(versions[0]), "--reason", "checking the timeline")
    assert rolled.returncode == 0, rolled.stderr
    assert stack.stop(service) == 0

    entries = store.timeline.entries()
    kinds = [entry.kind for entry in entries]
    assert kinds[0] == "lease" and entries[0].why == "acquired" and entries[0].detail["epoch"] == 1
    snapshots = [entry for entry in entries if entry.kind == "snapshot"]
    written = [entry.version for entry in snapshots]
    assert written == sorted(written)  # type: ignore[type-var]
    assert {entry.version for entry in snapshots} >= set(versions)
    assert all(entry.events == store.meta(entry.version).events_learned for entry in snapshots  # type: ignore[arg-type]
               if entry.version in versions)
    [rollback] = [entry for entry in entries if entry.kind == "rollback"]
    assert rollback.version == versions[0] and rollback.why == "checking the timeline"
    assert rollback.detail["from"] == versions[-1] and rollback.detail["replay"] is False
    assert [entry.why for entry in entries if entry.kind == "lease"] == ["acquired", "released"]

    shown = learner(stack, "timeline", "--json")
    assert shown.returncode == 0 and [e["kind"] for e in orjson.loads(shown.stdout)] == kinds
    table = learner(stack, "timeline").stdout
    assert "checking the timeline" in table and "snapshot" in table
    history = learner(stack, "history", "--json")
    assert history.returncode == 0 and orjson.loads(history.stdout)[-1]["events_done"] == 600
    assert "Accuracy" in learner(stack, "history").stdout
    index = learner(stack, "index", "--json")
    assert index.returncode == 0 and stack.name in orjson.loads(index.stdout)
    assert learner(stack, "index", "--remove", stack.name).returncode == 0
    assert stack.name not in orjson.loads(learner(stack, "index", "--json").stdout)
