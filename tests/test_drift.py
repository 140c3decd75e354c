"""Drift on a real run: an abrupt concept drift and a shifted feature are detected after the change."""

from __future__ import annotations

import random

import orjson
import pytest
from river.datasets import synth

from learner.core.drift import PerformanceDrift
from learner.core.models import build_model
from learner.core.step import LearningStep
from learner.local.servers import free_port
from tests.conftest import Stack
from tests.test_monitor import get, scrape, wait_until

pytestmark = pytest.mark.integration
CHANGE = 5000


def drifting_stream(seed: int) -> synth.ConceptDriftStream:
    return synth.ConceptDriftStream(stream=synth.SEA(variant=0, seed=seed), drift_stream=synth.SEA(variant=3, seed=seed),
                                    position=CHANGE, width=50, seed=seed)


@pytest.mark.parametrize("seed", range(5))
def test_performance_drift_is_detected_after_the_change_only(seed: int) -> None:
    step, detector = LearningStep(build_model("binary")), PerformanceDrift("binary")
    alarms = []
    for i, (x, y) in enumerate(drifting_stream(seed).take(2 * CHANGE)):
        prediction, _ = step.process(x, y)
        if detector.update(y, prediction):
            alarms.append(i)
    assert alarms and all(CHANGE <= i < CHANGE + 1000 for i in alarms[:1])
    assert not [i for i in alarms if i < CHANGE]


def test_service_reports_drift(stack: Stack) -> None:
    rng = random.Random(1)
    values = []
    for i, (x, y) in enumerate(drifting_stream(0).take(2 * CHANGE)):
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
    assert stack.stop(service) == 0
    reasons = [stack.store().meta(v).reason for v in stack.store().versions()]
    assert any(r.startswith("drift: ") for r in reasons), reasons
