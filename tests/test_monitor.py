"""The HTTP endpoint during a real run: counts exact, health and readiness, status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from learner.local.servers import free_port
from tests.conftest import SIGNING_KEY, Stack

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, body = get(port, "/metrics")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def wait_until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except (ConnectionError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_metrics_health_and_status(stack: Stack) -> None:
    port = free_port()
    good = [orjson.dumps({"id": i, "x": {"a": i % 5 - 2.0}, "y": i % 2 == 0}) for i in range(500)]
    unlabelled = [orjson.dumps({"id": f"u{i}", "x": {"a": 1.0}}) for i in range(100)]
    bad = [b"nope", b"{}", b'{"x": 3}', b'{"x": {"a": NaN}}', b"[]"]
    stack.produce(good + bad + unlabelled)
    service = stack.start("--model", "logreg", "--metrics-port", str(port), "--snapshot-every-events", "300")

    assert wait_until(lambda: get(port, "/healthz")[0] == 200)
    assert wait_until(lambda: get(port, "/readyz")[0] == 200)
    model = stack.name

    def counted(outcome: str) -> float:
        return scrape(port).get(("learner_events_total", (("model", model), ("outcome", outcome))), -1)

    wait_until(lambda: counted("predicted") == 600 and counted("learned") == 500)
    assert counted("consumed") == 605
    assert counted("dead_lettered") == 5
    samples = scrape(port)
    assert samples[("learner_lease_held", (("model", model),))] == 1
    assert samples[("learner_model_version", (("model", model),))] >= 1
    accuracy = samples[("learner_metric", (("model", model), ("name", "Accuracy"), ("window", "all")))]
    assert 0 <= accuracy <= 1
    assert ("learner_metric", (("model", model), ("name", "LogLoss"), ("window", "1000"))) in samples
    assert samples[("learner_event_latency_seconds_count", (("model", model),))] >= 1
    assert ("learner_drift_detected_total", (("kind", "input"), ("model", model))) in samples

    code, body = get(port, "/status")
    status = orjson.loads(body)
    assert code == 200 and status["name"] == model and status["service"]["events_learned"] == 500
    assert get(port, "/nope")[0] == 404
    assert stack.stop(service) == 0


def _status(stack: Stack, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learner", "status", *more, "--redis-url", stack.redis.url, "--name",
                           stack.name], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})


def test_status_tells_a_clean_stop_from_a_service_not_heard_from(stack: Stack) -> None:
    """After a clean stop the final status says stopped, and what it learned (the head's count); after a
    kill -9 the last periodic status shows as not heard from since; ``service`` is for a running one only."""
    stack.produce([orjson.dumps({"id": i, "x": {"a": i % 5 - 2.0}, "y": i % 2 == 0}) for i in range(300)])
    service = stack.start("--model", "logreg", "--snapshot-every-events", "1000")
    stack.wait_done(300)
    assert stack.stop(service) == 0
    stopped = orjson.loads(_status(stack, "--json").stdout)
    head = stack.store().meta(stopped["head"])
    assert stopped["service"] is None
    last = stopped["last_service"]
    assert last["stopped"] >= last["updated"] - 1 and last["events_learned"] == head.events_learned == 300
    assert last["model_version"] == head.version
    assert "stopped cleanly at" in _status(stack).stdout

    killed = stack.start("--model", "logreg", "--snapshot-every-events", "1000")
    running = stack.wait_status(lambda status: status["events_done"] >= 300)
    assert running["events_learned"] == 300 and "stopped" not in running
    killed.send_signal(signal.SIGKILL)
    killed.wait(60)
    gone = wait_until(lambda: (s := orjson.loads(_status(stack, "--json").stdout))["service"] is None and s, timeout=120)
    assert "stopped" not in gone["last_service"] and gone["last_service"]["events_learned"] == 300
    assert "not heard from since" in _status(stack).stdout
