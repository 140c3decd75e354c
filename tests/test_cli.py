"""The command line as users type it: produce, run until done, export; one-line errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import SIGNING_KEY, Stack

pytestmark = pytest.mark.integration


def learner(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learner", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})


def test_produce_run_export(stack: Stack, tmp_path: Path) -> None:
    produced = learner("produce", "--bootstrap-servers", stack.bootstrap, "--topic", stack.input,
                       "--dataset", "Phishing", "--limit", "300")
    assert produced.returncode == 0, produced.stderr
    ran = subprocess.run(stack.run_args("--model", "logreg", "--stop-after-events", "300"), capture_output=True,
                         text=True, timeout=120, env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "model.pkl"
    exported = learner("export", "--redis-url", stack.redis.url, "--name", stack.name, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    model = pickle.loads(out.read_bytes())
    state = stack.store().load(stack.store().head()).state
    x = {"empty_server_form_handler": 0.5, "popup_window": 0.0, "https": 1.0}
    assert model.predict_proba_one(x) == state.model.predict_proba_one(x)


def test_unreachable_broker_is_one_line(stack: Stack) -> None:
    result = subprocess.run(stack.run_args("--bootstrap-servers", "127.0.0.1:1", "--startup-timeout", "1"),
                            capture_output=True, text=True,
                            timeout=120, env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("learner: error: cannot reach Kafka at 127.0.0.1:1")
    assert "Traceback" not in result.stderr
    # librdkafka's own lines ("%3|...|FAIL|...") go through logging, never raw to stderr after the error.
    assert not any(line.startswith("%") for line in result.stderr.splitlines())


def test_unreachable_redis_and_usage_errors() -> None:
    result = learner("run", "--redis-url", "redis://127.0.0.1:1/0", "--startup-timeout", "0")
    assert result.returncode == 1 and result.stderr.startswith("learner: error: cannot reach Redis")
    result = learner("run", "--redis-url", "redis://127.0.0.1:1/0", "--startup-timeout", "2")  # waited for, once
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and lines[-1].startswith("learner: error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert sum("waiting for Redis" in line for line in lines) == 1 and "Traceback" not in result.stderr
    result = learner("run", "--snapshot-every-events", "-3")
    assert result.returncode == 2 and "snapshot-every-events" in result.stderr
    result = learner("run", "--role", "replica")  # refused, never silently ignored
    assert result.returncode == 2 and "--role" in result.stderr and "'serve'" in result.stderr, result.stderr
    result = learner("run", "--labels-topic", "events")
    assert result.returncode == 2 and "--input-topic and --labels-topic are both 'events'" in result.stderr
    result = learner("run", "--model", "nope", "--insecure-no-signing", "--redis-url", "redis://127.0.0.1:1/0",
                     "--startup-timeout", "0")
    assert result.returncode == 1
    for env, expected in [({"LEARNER_LOG_LEVEL": "verbose"}, "LEARNER_LOG_LEVEL"),
                          ({"LEARNER_ROLE": "server", "LEARNER_SIGNING_KEY": "k"}, "--role"),
                          ({"LEARNER_OUTPUT_TOPIC": "events", "LEARNER_SIGNING_KEY": "k"}, "each topic has one role"),
                          ({"LEARNER_SIGNING_KEY": ""}, "--signing-key is empty"),
                          ({"LEARNER_BATCH_SIZE": "many"}, "--batch-size")]:
        result = subprocess.run([sys.executable, "-m", "learner", "run"], capture_output=True, text=True,
                                timeout=60, env={**os.environ, **env})
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("learner: error: ") and expected in result.stderr


def test_run_pins_the_models_hash_seed(stack: Stack) -> None:
    """Restarts compute exactly what the process before did, also for hash-order-sensitive models."""
    from learner.ops.hash_seed import seed_for

    service = stack.start("--model", "logreg")
    stack.wait_for_log("streaming")
    seed = str(seed_for(stack.name, SIGNING_KEY.encode()))
    assert f"PYTHONHASHSEED={seed}\0" in Path(f"/proc/{service.pid}/environ").read_text()
    assert stack.stop(service) == 0
    chosen = stack.start("--model", "logreg", env={"PYTHONHASHSEED": "123"})  # an operator's own choice stands
    stack.wait_for_log("streaming")
    assert "PYTHONHASHSEED=123\0" in Path(f"/proc/{chosen.pid}/environ").read_text()
    assert stack.stop(chosen) == 0


def test_produce_with_delayed_labels(stack: Stack) -> None:
    from stream import Admin

    Admin(stack.client()).ensure({f"{stack.name}.labels": 1})
    produced = learner("produce", "--bootstrap-servers", stack.bootstrap, "--topic", stack.input, "--dataset",
                       "Phishing", "--limit", "200", "--labels-topic", f"{stack.name}.labels", "--label-delay", "10:20")
    assert produced.returncode == 0, produced.stderr
    events = [orjson.loads(m.value()) for m in stack.read(stack.input, 200)]
    labels = [orjson.loads(m.value()) for m in stack.read(f"{stack.name}.labels", 200)]
    assert all("y" not in e for e in events) and sorted(e["id"] for e in events) == list(range(200))
    assert sorted(label["id"] for label in labels) == list(range(200))
