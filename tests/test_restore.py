"""Restarts restore the head snapshot; a tampered snapshot is refused and never unpickled."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from learner.state.signing import checksum
from learner.state.snapshots import SnapshotMeta
from tests.conftest import SIGNING_KEY, Stack

pytestmark = pytest.mark.integration


def labelled(start: int, count: int) -> list[bytes]:
    return [orjson.dumps({"id": i, "x": {"a": float(i % 10)}, "y": i % 2 == 0}) for i in range(start, start + count)]


def test_restart_restores_and_continues(stack: Stack) -> None:
    stack.produce(labelled(0, 500))
    first = stack.start("--model", "logreg")
    stack.read(stack.output, 500)
    assert stack.stop(first) == 0
    assert stack.store().meta(stack.store().head()).events_learned == 500

    stack.produce(labelled(500, 300))
    second = stack.start("--model", "logreg")
    stack.read(stack.output, 800)
    assert stack.stop(second) == 0
    assert "restored" in stack.log() and "500 events learned" in stack.log()
    meta = stack.store().meta(stack.store().head())
    assert meta.events_learned == 800 and meta.parent == 1
    # Kafka's group offsets follow the snapshots (for lag tools); they are never used to position
    group = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"learner.{stack.name}"})
    committed = group.committed([TopicPartition(stack.input, 0)], timeout=10)[0].offset
    group.close()
    assert committed == 800


class Exploit:
    """A pickle that, when loaded, creates a file: proof that it was (or was not) unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_tampered_snapshot_is_never_unpickled(stack: Stack, tmp_path: Path) -> None:
    stack.produce(labelled(0, 50))
    service = stack.start("--model", "logreg")
    stack.read(stack.output, 50)
    assert stack.stop(service) == 0

    store, version = stack.store(), stack.store().head()
    marker = tmp_path / "pwned"
    blob = pickle.dumps(Exploit(marker))
    forged = SnapshotMeta(**{**orjson.loads(store.meta(version).to_json()), "checksum": checksum(blob), "size": len(blob)})
    store.redis.hset(store.keys.snapshot(version), mapping={"blob": blob, "meta": forged.to_json()})

    result = subprocess.run(stack.run_args("--model", "logreg"), capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})
    assert result.returncode == 1
    assert "bad signature" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("learner: error: no snapshot")
    assert not marker.exists()


def test_other_signing_key_is_refused(stack: Stack) -> None:
    stack.produce(labelled(0, 20))
    service = stack.start("--model", "logreg")
    stack.read(stack.output, 20)
    assert stack.stop(service) == 0
    result = subprocess.run(stack.run_args("--model", "logreg"), capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LEARNER_SIGNING_KEY": "another key"})
    assert result.returncode == 1 and "bad signature" in result.stderr


def test_each_snapshot_scores_exactly_the_events_it_learned(stack: Stack) -> None:
    """The scorecard in a snapshot stops at its offsets: a restore never scores an event twice.

    Snapshots are driven by event counts (the scorecard is handed over while the model learns on,
    which is where an off-by-a-batch would show), never by wall time.
    """
    stack.produce(labelled(0, 40_000))
    service = stack.start("--model", "logreg", "--snapshot-every-seconds", "0", "--snapshot-every-events", "7000",
                          "--batch-size", "500", "--snapshot-keep", "1000", "--stop-after-events", "40000")
    assert service.wait(120) == 0
    store = stack.store()
    assert len(store.versions()) >= 5  # every 7000 events (at a batch boundary), and the last one
    for version in store.versions():
        loaded = store.load(version)
        meta, state = loaded.meta, loaded.state
        accuracy = state.scorecard.evaluation.tracked[0]
        assert accuracy.name == "Accuracy"
        assert accuracy.metric.cm.total_weight == sum(meta.offsets.values()) == meta.events_learned, version


def test_a_failed_snapshot_still_gets_its_last_snapshot_at_stop(stack: Stack) -> None:
    """A snapshot that fails, with no event after it: the stop must still write what it owes."""
    stack.produce(labelled(0, 300))
    service = stack.start("--model", "logreg", "--snapshot-every-events", "300", "--snapshot-every-seconds", "0")
    stack.wait_learned(300)
    store = stack.store()
    store.redis.delete(store.keys.versions)
    store.redis.set(store.keys.versions, "not a sorted set")  # the next write fails (WRONGTYPE)
    stack.produce(labelled(300, 300))
    stack.wait_for_log("snapshot 2 failed")
    store.redis.delete(store.keys.versions)  # Redis is fine again; no event comes after the failure
    assert stack.stop(service) == 0
    meta = store.meta(store.head())
    assert meta.events_learned == 600  # retried (after its backoff) or at the stop: never skipped


def test_a_snapshot_of_the_previous_release_still_loads(stack: Stack) -> None:
    """Its classes lived elsewhere (learner.evaluation) and it kept no drift detectors."""
    from learner.core.evaluation import Evaluation
    from learner.core.models import build_model
    from learner.runtime.model.restore import restore
    from learner.settings import Settings

    evaluation = Evaluation("binary", ("Accuracy",))
    evaluation.update(True, True, {True: 0.9, False: 0.1})
    old = {"model": build_model("logreg"), "learned": 1, "evaluation": evaluation}
    blob = pickle.dumps(old, protocol=2).replace(b"learner.core.evaluation", b"learner.evaluation")
    assert b"clearner.evaluation\n" in blob  # as the previous release wrote it
    store = stack.store()
    version = store.next_version()
    fields = {"parent": None, "events_learned": 1, "offsets": {f"{stack.input}:0": 1}, "model_spec": "logreg",
              "model_params": {}, "metrics": {}}
    store.write(store.build_meta(blob, version=version, **fields), blob, None)
    restored = restore(store, Settings(name=stack.name, signing_key=SIGNING_KEY))
    assert restored.head == version and restored.step.learned == 1
    assert restored.scorecard.evaluation.values()["Accuracy"]["all"] == 1.0
    assert restored.scorecard.performance.seen == 0  # fresh detectors
