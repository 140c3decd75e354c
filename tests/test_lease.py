"""One writer per model: a standby takes over from a dead holder; a paused holder cannot write."""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from learner.core.models import build_model
from learner.local.servers import free_port
from tests.conftest import Stack
from tests.test_crash import SteadyProducer, events
from tests.test_monitor import get, wait_until

pytestmark = pytest.mark.integration

ARGS = ("--model", "logreg", "--snapshot-every-events", "500", "--snapshot-every-seconds", "0.5", "--lease-ttl", "3")


def test_standby_takes_over_after_kill(stack: Stack) -> None:
    holder = stack.start(*ARGS)
    stack.wait_for_log("streaming", index=0)
    standby = stack.start(*ARGS)
    stack.wait_for_log("standby", index=1)
    feeder = SteadyProducer(stack, events(100_000, seed=3), per_second=5000)
    stack.wait_learned(1000)  # the holder is streaming what the producer sends
    holder.kill()
    killed = time.monotonic()
    stack.wait_for_log("lease acquired", index=1, timeout=30)
    takeover = time.monotonic() - killed
    all_events = feeder.finish(at_least=stack.store().meta(stack.store().head()).events_learned + 2000)
    stack.wait_learned(len(all_events))
    assert stack.stop(standby) == 0
    print(f"takeover {takeover:.2f}s after kill -9 (lease ttl 3s)")  # reported, never asserted

    state = stack.store().load(stack.store().head()).state
    reference = build_model("logreg")
    for e in all_events:
        reference.learn_one(e["x"], e["y"])
    assert state.learned == len(all_events)
    assert state.model["LogisticRegression"].weights == reference["LogisticRegression"].weights
    assert "acquired" in stack.store().audit.entries()[-1].detail or any(
        "acquired" in e.detail for e in stack.store().audit.entries())


def test_paused_holder_cannot_overwrite(stack: Stack) -> None:
    first = events(3000, seed=4)
    stack.produce([orjson.dumps(e) for e in first])
    holder = stack.start(*ARGS)
    stack.wait_learned(len(first))
    holder.send_signal(signal.SIGSTOP)
    standby = stack.start(*ARGS)
    stack.wait_for_log("lease acquired", index=1, timeout=30)
    second = events(2000, seed=5)
    stack.produce([orjson.dumps(e) for e in second])
    stack.wait_learned(len(first) + len(second))
    head_before = stack.store().head()

    holder.send_signal(signal.SIGCONT)
    assert holder.wait(30) == 1
    assert "lost the lease" in stack.log(0)
    assert stack.store().head() >= head_before
    assert stack.stop(standby) == 0
    state = stack.store().load(stack.store().head()).state
    assert state.learned == len(first) + len(second)
    assert any("lost" in e.detail for e in stack.store().audit.entries())


def test_standby_stops_cleanly_on_sigterm(stack: Stack) -> None:
    holder = stack.start(*ARGS)
    stack.wait_for_log("streaming", index=0)
    port = free_port()
    standby = stack.start(*ARGS, "--metrics-port", str(port))
    stack.wait_for_log("standby", index=1)
    # a hot standby is alive (a liveness probe must not kill it) and says why it is not ready
    assert wait_until(lambda: get(port, "/healthz")[0] == 200)
    code, body = get(port, "/readyz")
    assert code == 503 and body.decode().startswith("standby: waiting for the lease held by ")
    assert stack.stop(standby) == 0  # waiting for the lease: nothing to save, a clean exit
    assert "before streaming began" in stack.log(1)
    assert stack.stop(holder) == 0
