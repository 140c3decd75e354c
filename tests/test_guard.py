"""The guard trips on corrupted labels, rolls back to the pinned snapshot, keeps predicting, resumes."""

from __future__ import annotations

import orjson
import pytest

from learner.local.servers import free_port
from tests.conftest import Stack
from tests.test_monitor import scrape
from tests.test_rollback import events, learner, send, wait_status

pytestmark = pytest.mark.integration


def test_guard_trips_rolls_back_and_resumes(stack: Stack) -> None:
    port = free_port()
    service = stack.start("--model", "logreg", "--guard-margin", "0.15", "--metrics-port", str(port),
                          "--snapshot-every-seconds", "0")
    send(stack, events(0, 3000))
    wait_status(stack, lambda s: s["events_done"] >= 3000)
    good = int(learner(stack, "snapshot").stdout.split()[-1])
    assert learner(stack, "snapshots", "pin", str(good)).returncode == 0
    wait_status(stack, lambda s: s["guard"] is not None and s["guard"]["pinned_version"] == good)

    send(stack, events(3000, 3000, flip=True))  # corrupted labels
    tripped = wait_status(stack, lambda s: not s["learning"] and s["rollbacks"] >= 1, timeout=60)  # and adopted
    assert tripped["model_version"] == good
    assert stack.store().head() == good
    assert scrape(port)[("learner_guard_tripped", (("model", stack.name),))] == 1
    status = orjson.loads(learner(stack, "status", "--json").stdout)
    assert "fell to" in status["guard_tripped"]
    assert "GUARD TRIPPED" in stack.log()

    learned = wait_status(stack, lambda s: s["events_done"] >= 6000)["events_learned"]
    send(stack, [{"id": f"p{i}", "x": e["x"]} for i, e in enumerate(events(9000, 50))])
    predicted = stack.read(stack.output, 6050)
    assert sum(1 for m in predicted if str(orjson.loads(m.value())["id"]).startswith("p")) == 50
    assert wait_status(stack, lambda s: s["events_done"] >= 6050)["events_learned"] == learned  # not learning

    resumed = learner(stack, "resume")
    assert resumed.returncode == 0, resumed.stderr
    wait_status(stack, lambda s: s["learning"])
    send(stack, events(7000, 100))
    wait_status(stack, lambda s: s["events_learned"] >= learned + 100)
    assert scrape(port)[("learner_guard_tripped", (("model", stack.name),))] == 0
    assert stack.stop(service) == 0
    log = learner(stack, "snapshots", "log").stdout
    assert "guard" in log and "resume" in log
    timeline = {entry.kind: entry for entry in stack.store().timeline.entries()}
    trip = timeline["guard_trip"]
    assert trip.version == good and "fell to" in trip.why and trip.detail["reference"] > trip.detail["value"]
    assert timeline["guard_resume"].why == "learner resume"
