"""Drift on a real run: an abrupt concept drift and a shifted feature are detected after the change."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import orjson
import pytest
from river.datasets import synth

from learner.core.drift import PerformanceDrift
from learner.core.models import build_model
from learner.core.step import LearningStep
from learner.local.servers import free_port
from tests.conftest import Stack
from tests.test_monitor import get, scrape, wait_until

CHANGE = 15_000
#: Where a concept change comes in the early-change check: well within the old 10,000-event warm-up.
EARLY = 5_000


def drifting_stream(seed: int) -> Iterator[tuple[dict[str, float], bool]]:
    """SEA's concept 0, then concept 3 from CHANGE on: an abrupt drift (River's ConceptDriftStream
    overflows this far from its start)."""
    yield from synth.SEA(variant=0, seed=seed).take(CHANGE)
    yield from synth.SEA(variant=3, seed=seed + 100).take(CHANGE)


@pytest.mark.parametrize("seed", range(5))
def test_performance_drift_is_detected_after_the_change_only(seed: int) -> None:
    step, detector = LearningStep(build_model("binary")), PerformanceDrift("binary")
    alarms = []
    for i, (x, y) in enumerate(drifting_stream(seed)):
        prediction, _ = step.process(x, y)
        if detector.update(y, prediction):
            alarms.append(i)
    assert alarms and CHANGE <= alarms[0] < CHANGE + 1000, alarms
    assert len(alarms) == 1, alarms  # one change, one alarm


@pytest.mark.parametrize("spec", ["binary", "tree"])
def test_an_early_concept_change_is_seen_within_a_thousand_events(spec: str) -> None:
    """Agrawal's classification function 0, then 2 from event 5,000, as a user's young model meets it:
    detected within 1,000 events for each of 5 seeds, and nothing before (the warm-up follows the loss:
    a classifier's 0/1 error needs no scale, so 1,000 events suffice)."""
    for seed in range(5):
        step, detector = LearningStep(build_model(spec)), PerformanceDrift("binary")
        stream = [*synth.Agrawal(classification_function=0, seed=seed).take(EARLY),
                  *synth.Agrawal(classification_function=2, seed=seed + 1000).take(1000)]
        alarms = []
        for i, (x, y) in enumerate(stream):
            prediction, _ = step.process(x, y)
            if detector.update(y, prediction):
                alarms.append(i)
        assert alarms and EARLY <= alarms[0] < EARLY + 1000, (seed, alarms)


@pytest.mark.parametrize("seed", range(3))
def test_no_performance_alarm_on_a_stationary_regression(seed: int) -> None:
    """synth.Friedman with a linear regression: the detector that was replaced fired 20 times in 13,700 events."""
    step, detector = LearningStep(build_model("regression")), PerformanceDrift("regression")
    alarms = []
    for i, (x, y) in enumerate(synth.Friedman(seed=seed).take(30_000)):
        prediction, _ = step.process(x, y)
        if detector.update(y, prediction):
            alarms.append(i)
    assert not alarms


@pytest.mark.integration
def test_service_reports_drift(stack: Stack) -> None:
    rng = random.Random(1)
    values = []
    for i, (x, y) in enumerate(drifting_stream(0)):
        features = {f"f{k}": v for k, v in x.items()}
        features["shift"] = rng.gauss(0.0 if i < CHANGE else 4.0, 1.0)
        values.append(orjson.dumps({"id": i, "x": features, "y": y}))
    stack.produce(values)
    port = free_port()
    service = stack.start("--model", "binary", "--metrics-port", str(port), "--drift-window", "1000")
    def reported() -> list | None:
        status = orjson.loads(get(port, "/status")[1])["service"]
        if status is None:  # still starting
            return None
        kinds = {d["kind"] for d in status["drift"]}
        done = status["events_done"] >= 2 * CHANGE and kinds == {"performance", "input"}
        return status["drift"] if done else None

    drifts = wait_until(reported)
    performance = [d for d in drifts if d["kind"] == "performance"]
    inputs = [d for d in drifts if d["kind"] == "input"]
    assert performance and all(d["event"] > CHANGE for d in performance)
    assert {d["what"] for d in inputs} == {"shift"}
    assert all(d["event"] > CHANGE for d in inputs)
    samples = scrape(port)
    assert samples[("learner_drift_detected_total", (("kind", "input"), ("model", stack.name)))] >= 1
    deadline = time.monotonic() + 60  # the timeline is written by the Redis thread
    while not (noted := [e for e in stack.store().timeline.entries(1000) if e.kind == "drift"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert {e.detail["what"] for e in noted if e.detail["kind"] == "input"} >= {"shift"}
    assert stack.stop(service) == 0
    reasons = [stack.store().meta(v).reason for v in stack.store().versions()]
    assert any(r.startswith("drift: ") for r in reasons), reasons


@pytest.mark.integration
def test_drift_detectors_follow_a_rollback(stack: Stack) -> None:
    """The detectors are part of the snapshot: after a rollback they describe the version served,
    not the branch that was discarded."""
    from tests.test_rollback import events, learner, send

    service = stack.start("--model", "logreg", "--snapshot-every-seconds", "0", "--no-snapshot-on-drift")
    send(stack, events(0, 1000))
    stack.wait_status(lambda s: s["events_done"] >= 1000)
    good = int(learner(stack, "snapshot").stdout.split()[-1])
    seen = stack.store().load(good).state.scorecard.performance.seen
    assert seen == 1000
    send(stack, events(1000, 1000, flip=True))
    stack.wait_status(lambda s: s["events_done"] >= 2000)
    assert learner(stack, "rollback", "--to", str(good)).returncode == 0
    stack.wait_status(lambda s: s["rollbacks"] == 1)
    send(stack, events(2000, 500))
    stack.wait_status(lambda s: s["events_done"] >= 2500)
    after = int(learner(stack, "snapshot").stdout.split()[-1])
    scorecard = stack.store().load(after).state.scorecard
    assert scorecard.performance.seen == 1500  # the version's 1000, then 500: not the discarded 1000
    assert scorecard.evaluation.tracked[0].metric.cm.total_weight == 1500
    assert stack.stop(service) == 0
