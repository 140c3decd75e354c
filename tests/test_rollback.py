"""Snapshot history and live rollback, against the real broker and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
import river

from learner.core.models import build_model
from learner.core.snapshot_state import SnapshotState
from learner.errors import OtherRiverVersion, RolledBack
from learner.runtime.model.snapshot_writer import SnapshotJob, SnapshotRest, SnapshotWriter
from learner.state.snapshots import SnapshotMeta, SnapshotStore
from tests.conftest import SIGNING_KEY, Stack, make_named_store, make_stack

pytestmark = pytest.mark.integration


def learner(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learner", *args, "--redis-url", stack.redis.url,
                           "--name", stack.name], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})


def events(start: int, count: int, flip: bool = False) -> list[dict]:
    out = []
    for i in range(start, start + count):
        x = {"a": ((i * 37) % 101) / 50 - 1, "b": ((i * 53) % 97) / 48 - 1}
        y = x["a"] + 0.5 * x["b"] > 0
        out.append({"id": i, "x": x, "y": (not y) if flip else y})
    return out


def send(stack: Stack, batch: list[dict]) -> None:
    """Keyed by id: on several partitions, the events spread over all of them."""
    stack.produce([orjson.dumps(e) for e in batch], [str(e["id"]).encode() for e in batch])


def tally_of(state: SnapshotState) -> set[int]:
    """A Tally model's counts: each event must have been learned exactly once."""
    return set(state.model.seen.values())


@pytest.fixture(params=[1, 3], ids=["1 partition", "3 partitions"])
def stacked(request: pytest.FixtureRequest, broker: object, redis_server: object) -> Iterator[Stack]:
    made = make_stack(broker, redis_server, request.param)  # type: ignore[arg-type]
    yield made
    made.cleanup()


def wait_status(stack: Stack, check, timeout: float = 30.0) -> dict:
    """The running service's published status, once ``check`` holds (read from Redis directly)."""
    return stack.wait_status(check, timeout)


def test_live_rollback_serves_the_snapshot(stack: Stack) -> None:
    service = stack.start("--model", "logreg", "--snapshot-every-seconds", "0")
    send(stack, events(0, 1500))
    wait_status(stack, lambda s: s["events_done"] >= 1500)
    made = learner(stack, "snapshot")
    assert made.returncode == 0, made.stderr
    good = int(made.stdout.split()[-1])
    assert learner(stack, "snapshots", "pin", str(good)).returncode == 0

    send(stack, events(1500, 1500, flip=True))  # an upstream bug: every label inverted
    wait_status(stack, lambda s: s["events_done"] >= 3000)
    rolled = learner(stack, "rollback", "--to", str(good), "--reason", "labels inverted upstream")
    assert rolled.returncode == 0, rolled.stderr
    wait_status(stack, lambda s: s["model_version"] == good and s["rollbacks"] == 1, timeout=2.5)

    probes = [{"id": f"p{i}", "x": e["x"]} for i, e in enumerate(events(5000, 100))]
    send(stack, probes)
    outputs = [orjson.loads(m.value()) for m in stack.read(stack.output, 3100)]
    assert stack.stop(service) == 0
    state = stack.store().load(good).state
    after = [o for o in outputs if str(o["id"]).startswith("p")]
    assert len(after) == 100
    for output, probe in zip(after, probes, strict=True):
        assert output["model_version"] == good
        proba = state.model.predict_proba_one(probe["x"])
        assert output["proba"] == {str(k).lower(): v for k, v in proba.items()}

    log = learner(stack, "snapshots", "log").stdout
    assert "rollback" in log and "labels inverted upstream" in log and "pin" in log
    listing = learner(stack, "snapshots", "list").stdout
    assert any(line.split()[:2] in (["P", str(good)], ["*P", str(good)]) for line in listing.splitlines()), listing


def test_replay_relearns_from_the_snapshot_offsets(stacked: Stack) -> None:
    stack, several = stacked, stacked.partitions > 1
    model = "tests.models:tally" if several else "logreg"  # no order across partitions: count instead
    service = stack.start("--model", model, "--snapshot-every-seconds", "0")
    first, second, third = events(0, 1000), events(1000, 1000), events(2000, 500)
    send(stack, first)
    wait_status(stack, lambda s: s["events_done"] >= 1000)
    version = int(learner(stack, "snapshot").stdout.split()[-1])
    send(stack, second)
    wait_status(stack, lambda s: s["events_done"] >= 2000)
    assert learner(stack, "rollback", "--to", str(version), "--replay").returncode == 0
    wait_status(stack, lambda s: s["model_version"] == version and s["rollbacks"] == 1, timeout=2.5)
    send(stack, third)
    wait_status(stack, lambda s: s["events_done"] >= 2500 and s["events_learned"] >= 2500)
    assert stack.stop(service) == 0

    state = stack.store().load(stack.store().head()).state
    assert state.learned == 2500  # each once: the replay learned `second` again, not twice
    if several:
        assert tally_of(state) == {1} and len(state.model.seen) == 2500
        return
    reference = build_model("logreg")
    for e in first + second + third:
        reference.learn_one(e["x"], e["y"])
    assert state.model["LogisticRegression"].weights == reference["LogisticRegression"].weights


def test_history_rules(stack: Stack) -> None:
    service = stack.start("--model", "logreg", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0",
                          "--snapshot-keep", "3")
    send(stack, events(0, 100))
    wait_status(stack, lambda s: s["head"] is not None)
    first = stack.store().head()
    assert learner(stack, "snapshots", "pin", str(first)).returncode == 0
    for n in range(1, 6):
        send(stack, events(n * 100, 100))
        stack.wait_learned((n + 1) * 100)  # a snapshot of every hundred, one after the other
    assert stack.stop(service) == 0
    store = stack.store()
    versions = store.versions()
    assert first in versions and len(versions) == 4  # the newest 3, plus the pinned one
    head = store.head()
    refused = learner(stack, "snapshots", "delete", str(head))
    assert refused.returncode == 1 and "is the head" in refused.stderr
    refused = learner(stack, "snapshots", "delete", str(first))
    assert refused.returncode == 1 and "is pinned" in refused.stderr

    # a snapshot from another river version is refused, naming both versions
    meta = store.meta(head)
    other = {**orjson.loads(meta.to_json()), "river_version": "0.1.0"}
    raw = orjson.dumps(other, option=orjson.OPT_SORT_KEYS)
    store.redis.hset(store.keys.snapshot(head), mapping={"meta": raw, "sig": store.signer.sign(raw)})
    with pytest.raises(OtherRiverVersion, match=f"river 0.1.0, this is river {river.__version__}"):
        store.load(head)
    assert store.load(head, force=True).meta.version == head

    # a corrupt head falls back to its parent
    original = meta.to_json()
    store.redis.hset(store.keys.snapshot(head), mapping={"meta": original, "sig": store.signer.sign(original),
                                                          "blob": b"garbage"})
    loaded = store.load_head()
    assert loaded.meta.version == SnapshotMeta.from_json(original).parent
    assert loaded.fallback is not None and f"head {head}" in loaded.fallback
    meta = loaded.meta

    # a service started on it says so in its status too
    restarted = stack.start("--model", "logreg")
    service = wait_status(stack, lambda s: s.get("fallback") is not None)
    assert f"fell back to version {meta.version}" in service["fallback"]
    assert "WARNING at start" in learner(stack, "status").stdout
    assert stack.stop(restarted) == 0


def test_crash_after_rollback_does_not_relearn_what_it_discarded(stacked: Stack) -> None:
    stack, model = stacked, "tests.models:tally" if stacked.partitions > 1 else "logreg"
    service = stack.start("--model", model, "--snapshot-every-seconds", "0")
    send(stack, events(0, 1000))
    wait_status(stack, lambda s: s["events_done"] >= 1000)
    version = int(learner(stack, "snapshot").stdout.split()[-1])
    send(stack, events(1000, 1000, flip=True))
    wait_status(stack, lambda s: s["events_done"] >= 2000)
    assert learner(stack, "rollback", "--to", str(version)).returncode == 0
    wait_status(stack, lambda s: s["model_version"] == version and s["rollbacks"] == 1 and s["events_learned"] == 1000)
    service.kill()  # before any new snapshot
    service.wait()

    restarted = stack.start("--model", model, "--snapshot-every-seconds", "0")
    send(stack, events(2000, 100))
    wait_status(stack, lambda s: s["events_done"] >= 2100)
    assert stack.stop(restarted) == 0
    state = stack.store().load(stack.store().head()).state
    assert state.learned == 1100  # the discarded (flipped) thousand was not learned again
    if stack.partitions > 1:
        assert tally_of(state) == {1} and len(state.model.seen) == 1100


def _job(parent: int | None, position: int, rollbacks: int | None = None) -> SnapshotJob:
    fields = {"parent": parent, "events_learned": position, "offsets": {"in:0": position}, "model_spec": "logreg",
              "model_params": {}, "metrics": {}}
    state = SnapshotState(build_model("logreg"), position)
    return SnapshotJob(state, fields, {("in", 0): position}, parent, None, rollbacks, 10)


def _snapshot(store: SnapshotStore, parent: int | None, position: int) -> int:
    """A snapshot that has learned the input up to ``position`` (one partition), written as the service does."""
    outcome = SnapshotWriter(store, background=False).write_now(_job(parent, position))
    assert outcome.ok, outcome
    return outcome.version


def test_rollback_to_the_head_beats_a_snapshot_in_flight(stack: Stack) -> None:
    """The race a HEAD_MOVED check alone misses: the rollback leaves the head where it was."""
    store = stack.store()
    first = _snapshot(store, None, 100)
    writer = SnapshotWriter(store, background=True)
    version = writer.start(_job(first, 100, rollbacks=0), completed_later=True)
    store.rollback(first, replay=False)  # the operator: "discard what was learned since"
    writer.complete(SnapshotRest(None, {}))
    outcome = writer.wait()
    assert outcome is not None and isinstance(outcome.error, RolledBack)
    assert store.head() == first and version not in store.versions()


def test_where_a_stopped_service_resumes_after_a_rollback(stack: Stack) -> None:
    """Without --replay: from the furthest position known; with --replay: from the version's offsets,
    whatever an earlier rollback recorded."""
    store = stack.store()
    v1 = _snapshot(store, None, 100)
    v2 = _snapshot(store, v1, 300)
    store.rollback(v1, replay=False)  # the service is stopped: it must not re-learn 100..300
    assert store.rolled_back_position(v1) == {("in", 0): 300}
    store.record_position(v1, {("in", 0): 500})  # a running service adopted it at 500
    v3 = _snapshot(store, v1, 900)
    store.rollback(v1, replay=True)  # later: a fix deployed, learn everything since v1 again
    assert store.rolled_back_position(v1) is None  # the service resumes from v1's own offsets (100)
    store.rollback(v3, replay=False)  # roll forward: never behind what v3 has learned
    assert store.rolled_back_position(v3) == {("in", 0): 900}
    assert v2 in store.versions()


def test_a_corrupt_head_falls_back_to_an_ancestor_not_a_discarded_branch(stack: Stack) -> None:
    store = stack.store()
    v1 = _snapshot(store, None, 100)
    v2 = _snapshot(store, v1, 300)  # learned from bad data: the operator rolls back past it
    store.rollback(v1, replay=True)
    v3 = _snapshot(store, v1, 400)
    store.redis.hset(store.keys.snapshot(v3), "blob", b"garbage")
    loaded = store.load_head()
    assert loaded.meta.version == v1 != v2 and f"head {v3}" in (loaded.fallback or "")


def test_rollback_to_a_version_that_does_not_load_is_refused(stack: Stack) -> None:
    store = stack.store()
    v1 = _snapshot(store, None, 100)
    v2 = _snapshot(store, v1, 200)
    store.redis.hset(store.keys.snapshot(v1), "blob", b"garbage")
    result = learner(stack, "rollback", "--to", str(v1))
    assert result.returncode == 1 and result.stderr.startswith("learner: error: ") and "Traceback" not in result.stderr
    assert store.head() == v2


def _unloadable(store: SnapshotStore, parent: int | None, position: int) -> int:
    """A version whose signature and checksum verify but whose blob does not unpickle (a class that
    this process does not have: another release, another host's custom model)."""
    blob = b"\x80\x04cno_such_module\nThing\n)\x81."
    version = store.next_version()
    fields = _job(parent, position).fields
    store.write(store.build_meta(blob, version=version, **fields), blob, parent)
    return version


def test_a_head_that_does_not_unpickle_falls_back(stack: Stack) -> None:
    store = stack.store()
    v1 = _snapshot(store, None, 100)
    v2 = _unloadable(store, v1, 200)
    loaded = store.load_head()
    assert loaded.meta.version == v1 and f"head {v2}" in (loaded.fallback or "")


def test_a_model_named_river_still_falls_back(redis_server: object) -> None:
    """The fallback is decided by the error's type: a name with "river" in it changes nothing."""
    with make_named_store("river-fraud") as store:
        v1 = _snapshot(store, None, 100)
        v2 = _snapshot(store, v1, 200)
        store.redis.hset(store.keys.snapshot(v2), "blob", b"garbage")
        loaded = store.load_head()
        assert loaded.meta.version == v1 and loaded.fallback


def test_a_running_service_serves_on_when_a_head_does_not_unpickle(stack: Stack) -> None:
    service = stack.start("--model", "logreg", "--snapshot-every-seconds", "0")
    send(stack, events(0, 300))
    wait_status(stack, lambda s: s["events_done"] >= 300)
    good = int(learner(stack, "snapshot").stdout.split()[-1])
    store = stack.store()
    bad = _unloadable(store, good, 300)  # written by "another host": this service cannot load it
    store.rollback(bad, replay=False)
    wait_status(stack, lambda s: s["rollbacks"] == 1)
    send(stack, events(300, 200))
    status = wait_status(stack, lambda s: s["events_done"] >= 500)
    assert status["model_version"] == good and status["events_learned"] == 500  # served on, learned on
    assert service.poll() is None
    assert any(e.action == "rollback" and "refused by the running service" in e.detail for e in store.audit.entries())
    assert "cannot adopt version" in stack.log()
    assert stack.stop(service) == 0


def test_a_head_that_goes_back_without_a_rollback_is_a_lost_write(stack: Stack) -> None:
    """Redis lost the newest snapshot (a failover to a replica that had not got it): the model here is
    ahead and consistent, so it is saved again on top of what Redis kept, never replaced by it."""
    service = stack.start("--model", "logreg", "--snapshot-every-seconds", "0")
    send(stack, events(0, 500))
    wait_status(stack, lambda s: s["events_done"] >= 500)
    first = int(learner(stack, "snapshot").stdout.split()[-1])
    send(stack, events(500, 500))
    wait_status(stack, lambda s: s["events_done"] >= 1000)
    second = int(learner(stack, "snapshot").stdout.split()[-1])
    store = stack.store()
    store.redis.set(store.keys.head, first)  # as a promoted replica would show it: no rollback recorded
    wait_status(stack, lambda s: s["head"] not in (first, second))  # saved again, on top of `first`
    head = store.meta(store.head())
    assert head.parent == first and head.events_learned == 1000  # nothing lost
    send(stack, events(1000, 100))
    wait_status(stack, lambda s: s["events_done"] >= 1100)
    assert stack.stop(service) == 0
    state = store.load(store.head()).state
    reference = build_model("logreg")
    for e in events(0, 1100):
        reference.learn_one(e["x"], e["y"])
    assert state.learned == 1100  # nothing learned twice either
    assert state.model["LogisticRegression"].weights == reference["LogisticRegression"].weights
    assert any(e.action == "lost write" for e in store.audit.entries())
