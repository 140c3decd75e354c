"""``learner promote`` on a running champion and challenger, through the real broker and Redis: the
champion's lineage becomes exactly the challenger's (a model that counts what it learns), its
predictions after the adoption are the challenger's model learning on, and a rollback undoes it."""

from __future__ import annotations

import pickle
from pathlib import Path

import orjson
import pytest

from tests.conftest import Stack
from tests.models import CountingMajority
from tests.test_challengers import challenger, rows_of, wait_challenger
from tests.test_rollback import learner

pytestmark = pytest.mark.integration

EVENTS = [{"id": i, "x": {"i": i, "a": (i * 37 % 101) / 50 - 1}, "y": (i * 7) % 10 < 6} for i in range(900)]
COMMON = ("--lease-ttl", "2", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0",
          "--batch-size", "50", "--metric", "Accuracy")


def produce(stack: Stack, start: int, end: int) -> None:
    stack.produce([orjson.dumps(event) for event in EVENTS[start:end]])


@pytest.mark.parametrize("gap", [False, True])
def test_a_promotion_makes_the_challengers_lineage_the_champions(stack: Stack, tmp_path: Path, gap: bool) -> None:
    """A running challenger, caught up; or (``gap``) one stopped 150 events behind the champion, which then
    re-learns those events with the promoted model and publishes them again."""
    produce(stack, 0, 300)
    champion = stack.start("--model", "logreg", *COMMON)
    stack.wait_status(lambda s: s["events_done"] >= 300)
    store = stack.store()
    first, before = store.versions()[0], store.head()
    e0 = store.meta(first).position()[(stack.input, 0)]
    counter = challenger(stack, "counter", "--model", "tests.models:counting_majority", "--from-version", str(first),
                         "--lease-ttl", "2")
    stack.wait_for_log("writing what is scored to", index=0)
    produce(stack, 300, 600)
    wait_challenger(stack, "counter", 600)
    stack.wait_status(lambda s: s["events_done"] >= 600)
    if gap:
        assert stack.stop(counter) == 0
        produce(stack, 600, 750)
        stack.wait_status(lambda s: s["events_done"] >= 750)

    promoted = learner(stack, "promote", "--challenger", "counter", "--reason", "counts better")
    assert promoted.returncode == 0, promoted.stderr
    assert counter.wait(120) == 0  # retired: it stopped by itself, with a last snapshot
    again = challenger(stack, "counter", "--model", "tests.models:counting_majority")  # a supervisor's restart
    assert again.wait(120) == 2 and "was promoted" in stack.log(), stack.log()
    head = max(store.pinned())  # the promoted version (the champion's own snapshots may follow it at once)
    assert store.meta(store.head()).parent is not None  # type: ignore[arg-type]
    meta = store.meta(head)
    assert meta.model_spec == "tests.models:counting_majority" and meta.reason == "promotion"
    assert meta.extra["promoted"]["challenger"] == "counter" and meta.extra["promoted"]["previous_spec"] == "logreg"
    assert meta.extra["promoted"]["why"] == "counts better"
    stack.wait_for_log(f"adopted version {head}", index=0)
    produce(stack, 750 if gap else 600, 900)
    stack.wait_status(lambda s: s["events_done"] >= 900 and s["model_version"] >= head)
    assert stack.stop(champion) == 0
    assert rows_of(stack) == {}

    # The champion's lineage is the challenger's: every event from the challenger's start learned once.
    out = tmp_path / "champion.pkl"
    assert learner(stack, "export", "--out", str(out)).returncode == 0
    final: CountingMajority = pickle.loads(out.read_bytes())
    assert final.seen == {i: 1 for i in range(e0, 900)}

    # Every prediction the promoted lineage published is the challenger's model, learning on.
    offline, expected = CountingMajority(), {}
    for event in EVENTS[e0:]:
        expected[event["id"]] = {str(c).lower(): p for c, p in offline.predict_proba_one(event["x"]).items()}
        offline.learn_one(event["x"], event["y"])
    published = [orjson.loads(m.value()) for m in stack.read(stack.output, len(EVENTS) + (150 if gap else 0))]
    after = [p for p in published if p["model_version"] >= head]
    assert {p["id"] for p in after} >= {e["id"] for e in EVENTS[600:]}  # with a gap: 600-749 published twice
    assert all(p.get("proba", {}) == expected[p["id"]] for p in after)
    if gap:  # the gap was served by the old champion, then again by the promoted model: at least once
        served = [p["id"] for p in published]
        assert all(served.count(i) == 2 for i in range(600, 750)) and all(served.count(i) == 1 for i in range(750, 900))

    # A rollback undoes the promotion; the audit log has both.
    undone = learner(stack, "rollback", "--to", str(before), "--reason", "back to logreg")
    assert undone.returncode == 0, undone.stderr
    assert store.meta(store.head()).model_spec == "logreg"  # type: ignore[arg-type]
    actions = [entry.action for entry in store.audit.entries()]
    assert "promotion" in actions and actions.index("promotion") < len(actions) - 1 - actions[::-1].index("rollback")


def test_promoting_what_cannot_be_says_so_in_one_line(stack: Stack) -> None:
    done = learner(stack, "promote", "--challenger", "nobody")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no challenger 'nobody'" in done.stderr
    produce(stack, 0, 200)
    champion = stack.start("--model", "logreg", *COMMON, "--stop-after-events", "100")
    assert champion.wait(120) == 0
    ahead = challenger(stack, "ahead", "--model", "tests.models:counting_majority", "--stop-after-events", "200")
    assert ahead.wait(120) == 0
    done = learner(stack, "promote", "--challenger", "ahead")  # the champion stopped at 100: 100 events never served
    assert done.returncode == 2 and "behind its challenger" in done.stderr, done.stderr

