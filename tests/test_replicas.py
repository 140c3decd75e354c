"""Serve replicas beside a learner that only learns (README "Scale out"), on the real broker and Redis.

Three replicas share a 6-partition input in their consumer group, with a read-only Redis user;
the learner publishes no predictions. Every event is predicted exactly once while the group is
stable, a replica killed with -9 has its partitions served by the others, every replica follows a
new snapshot and a rollback, and one that cannot load a version serves on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis

from learner.local.servers import Broker, RedisServer, free_port
from tests.conftest import SIGNING_KEY, Stack, make_stack
from tests.test_rollback import _snapshot, _unloadable

#: What a serve replica may do in Redis: read the learner's keys and follow its channel; no writes.
#: (README, "Serve replicas".) A Cluster client also needs CLUSTER SLOTS and COMMAND.
READ_ONLY_ACL = ("on >replica-password resetkeys %R~learner:* resetchannels &learner:* -@all "
                 "+get +hget +hmget +zcount +zrange +ping +subscribe +unsubscribe")

#: Replicas notice a dead member after the group's session timeout: short in tests.
SESSION = ["--session-timeout-ms", "6000"]


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
        return orjson.loads(answer.read())


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.02)


def events(start: int, count: int) -> tuple[list[bytes], list[bytes | None]]:
    values = [orjson.dumps({"id": f"e{i}", "x": {"a": (i % 7) / 7, "b": (i % 3) / 3}, "y": i % 2 == 0})
              for i in range(start, start + count)]
    return values, [f"k{i}".encode() for i in range(start, start + count)]


def predicted_ids(stack: Stack, count: int, timeout: float = 90.0) -> Counter[str]:
    """Read the predictions until ``count`` distinct ids are there."""
    messages = stack.read(stack.output, count, timeout,
                          until=lambda out: len({orjson.loads(m.value())["id"] for m in out}) >= count)
    return Counter(orjson.loads(m.value())["id"] for m in messages)


class Replicas:
    """Serve replicas of one stack, each with its own HTTP port."""

    def __init__(self, stack: Stack, redis_args: list[str]) -> None:
        self.stack, self.redis_args = stack, redis_args
        self.ports: dict[int, int] = {}  # index in stack.processes -> port

    def start(self, *extra: str) -> int:
        port = free_port()
        process = self.stack.start("--role", "serve", "--metrics-port", str(port), *SESSION, *extra)
        self.ports[len(self.stack.processes) - 1] = port
        assert process.poll() is None
        return port

    def alive(self) -> list[int]:
        return [port for index, port in self.ports.items() if self.stack.processes[index].poll() is None]

    def statuses(self) -> list[dict]:
        return [status(port) for port in self.alive()]

    def balanced(self, partitions: int) -> bool:
        """Every live replica has a share and together they have every partition (the group is stable)."""
        try:
            shares = [s["partitions"] for s in self.statuses()]
        except OSError:
            return False
        return all(shares) and sorted(p for share in shares for p in share) == list(range(partitions))

    def serving(self, version: int, source: str | None = None) -> bool:
        try:
            return all(s["model_version"] == version and (source is None or s["source"] == source)
                       for s in self.statuses())
        except OSError:
            return False


@pytest.fixture
def read_only_redis(broker: Broker) -> Iterator[tuple[RedisServer, list[str]]]:
    """A Redis with an admin password and a read-only user for the replicas."""
    with RedisServer(args=["--requirepass", "admin-password"]) as server:
        admin = redis.Redis(port=server.port, password="admin-password")
        admin.execute_command("ACL", "SETUSER", "replica", *READ_ONLY_ACL.split())
        url = f"redis://replica:replica-password@127.0.0.1:{server.port}/0"
        yield server, ["--redis-url", url]


def test_three_replicas_share_six_partitions_and_follow_the_learner(broker: Broker, read_only_redis) -> None:  # type: ignore[no-untyped-def]
    server, replica_redis = read_only_redis
    stack = make_stack(broker, server, partitions=6)
    stack.store_options = {"password": "admin-password"}
    admin_url = f"redis://default:admin-password@127.0.0.1:{server.port}/0"
    stack.service_redis = ["--redis-url", admin_url]
    replicas = Replicas(stack, replica_redis)
    try:
        learner = stack.start("--role", "learn", "--snapshot-every-events", "1000", "--live-every-seconds", "0.5")
        store = stack.store()
        first = _first_snapshot(stack, admin_url)
        stack.service_redis = replica_redis  # the replicas: read-only
        for _ in range(3):
            replicas.start()
        wait_for(lambda: replicas.balanced(6), 60, "three replicas sharing six partitions")

        values, keys = events(100, 3000)
        stack.produce(values, keys)
        counts = predicted_ids(stack, 3000 + 100)
        once = [f"e{i}" for i in range(100, 3100)]
        assert all(counts[i] == 1 for i in once), "an event of a stable group predicted twice, or not at all"
        for s in replicas.statuses():
            assert s["role"] == "serve" and s["predicted"] > 0 and s["reload_failures"] == 0

        # learner status lists them, each with the version it serves
        def listed() -> list[dict]:
            answer = _operator(admin_url, stack, "status", "--json", "--bootstrap-servers", stack.bootstrap)
            return orjson.loads(answer.stdout)["replicas"] or []

        wait_for(lambda: len(listed()) == 3 and all(r["model_version"] is not None for r in listed()), 30,
                 "three replicas in learner status")
        text = _operator(admin_url, stack, "status", "--bootstrap-servers", stack.bootstrap).stdout
        assert "serve replicas: 3" in text and "partitions" in text, text

        # a new snapshot: every replica serves it (or the live model after it) within 2 s
        stack.wait_learned(3100, timeout=60)
        head = store.head()
        assert head is not None and head != first
        wait_for(lambda: all(s["model_version"] >= head for s in replicas.statuses()), 2.0, "new head on every replica")

        # a rollback reaches every replica within 2 s, and the live model of the discarded lineage is not served
        _operator(admin_url, stack, "rollback", "--to", str(first))
        wait_for(lambda: replicas.serving(first), 2.0, "rollback on every replica")

        # kill -9 of a replica: its partitions move to the others, no event goes without a prediction
        victim_index = next(iter(replicas.ports))
        os.kill(stack.processes[victim_index].pid, signal.SIGKILL)
        stack.processes[victim_index].wait()
        values, keys = events(3100, 3000)
        stack.produce(values, keys)
        counts = predicted_ids(stack, 6100, timeout=120)
        assert all(counts[f"e{i}"] >= 1 for i in range(100, 6100))
        wait_for(lambda: replicas.balanced(6), 60, "two replicas sharing six partitions")

        # the read-only user cannot write, and the learner published no prediction itself
        limited = redis.Redis(port=server.port, username="replica", password="replica-password")
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.set(store.keys.head, 1)
        assert "Traceback" not in "".join(stack.log(i) for i in range(len(stack.processes)))
        stack.stop(learner)
    finally:
        stack.cleanup()


def _first_snapshot(stack: Stack, admin_url: str) -> int:
    """The learner's first version: 100 events learned, then a snapshot asked for (``learner snapshot``)."""
    values, keys = events(0, 100)
    stack.produce(values, keys)
    stack.wait_done(100)
    answer = _operator(admin_url, stack, "snapshot")
    return int(answer.stdout.split()[-1])


def _operator(url: str, stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learner", *args, "--redis-url", url, "--name", stack.name],
                          check=True, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})


def test_a_replica_that_cannot_load_a_version_serves_on(stack: Stack) -> None:
    """No learner: the test writes the versions, as a learner would, and breaks one."""
    store = stack.store()
    v1 = _snapshot(store, None, 0)
    port = free_port()
    replica = stack.start("--role", "serve", "--metrics-port", str(port))
    wait_for(lambda: _status_or_none(port) is not None and _status_or_none(port)["model_version"] == v1, 60,
             "replica serving the first version")
    v2 = _unloadable(store, v1, 0)
    wait_for(lambda: status(port)["reload_failures"] == 1, 10, "the failed reload counted")
    values, keys = events(0, 50)
    stack.produce(values, keys)
    predictions = [orjson.loads(m.value()) for m in stack.read(stack.output, 50)]
    assert {p["model_version"] for p in predictions} == {v1} != {v2}
    assert replica.poll() is None and "cannot serve the new model" in stack.log()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert f'learner_reload_failures_total{{model="{stack.name}"}} 1.0' in metrics
    v3 = _snapshot(store, v2, 0)
    wait_for(lambda: status(port)["model_version"] == v3, 2.0, "the next good version")
    assert stack.stop(replica) == 0


def _status_or_none(port: int) -> dict | None:
    try:
        return status(port)
    except OSError:
        return None


def test_a_replica_waits_for_a_first_model(stack: Stack) -> None:
    port = free_port()
    replica = stack.start("--role", "serve", "--metrics-port", str(port), "--snapshot-every-events", "5")
    wait_for(lambda: _status_or_none(port) is not None, 60, "replica's HTTP")
    assert "--snapshot-every-events apply to the learner and are ignored here" in stack.log()  # never silently
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert answer.value.code == 503 and b"waiting for a first model" in answer.value.read()
    assert stack.stop(replica) == 0


def test_the_live_model_is_signed_fenced_and_never_a_version(stack: Stack) -> None:
    from learner.core.models import build_model
    from learner.core.snapshot_state import SnapshotState
    from learner.errors import BadSignature, Fenced
    from learner.state.lease import Lease
    from learner.state.live import LiveStore

    store = stack.store()
    v1 = _snapshot(store, None, 0)
    lease = Lease(store, 10)
    assert lease.try_acquire() and lease.epoch is not None
    live = LiveStore(store)
    subscription = store.announcements()
    subscription.wait(0.01)  # subscribed from now on
    meta = live.publish(SnapshotState(build_model("logreg"), 7), v1, 0, lease.epoch)
    assert subscription.wait(5.0)  # announced
    assert live.meta() == meta and live.load(meta).learned == 7
    assert store.versions() == [v1] and store.head() == v1  # not a version, the head stays
    with pytest.raises(Fenced):
        live.publish(SnapshotState(build_model("logreg"), 8), v1, 0, lease.epoch + 1)
    assert live.meta() == meta
    store.redis.hset(store.keys.live, "sig", "forged")
    with pytest.raises(BadSignature):
        live.meta()
    subscription.close()
    lease.release()


def test_without_announcements_a_replica_follows_by_polling(broker: Broker) -> None:
    """A Redis user that may not subscribe (or lost announcements): the replica still follows, by polling."""
    no_subscribe = READ_ONLY_ACL.replace(" +subscribe +unsubscribe", "")
    with RedisServer(args=["--requirepass", "admin-password"]) as server:
        redis.Redis(port=server.port, password="admin-password").execute_command("ACL", "SETUSER", "replica",
                                                                                 *no_subscribe.split())
        stack = make_stack(broker, server)
        stack.store_options = {"password": "admin-password"}
        stack.service_redis = ["--redis-url", f"redis://replica:replica-password@127.0.0.1:{server.port}/0"]
        try:
            store = stack.store()
            v1 = _snapshot(store, None, 0)
            port = free_port()
            replica = stack.start("--role", "serve", "--metrics-port", str(port), "--follow-poll", "0.5")
            wait_for(lambda: (_status_or_none(port) or {}).get("model_version") == v1, 60, "the first version")
            v2 = _snapshot(store, v1, 0)
            wait_for(lambda: status(port)["model_version"] == v2, 2.0, "the next version, by polling")
            assert stack.stop(replica) == 0
        finally:
            stack.cleanup()


def test_a_replica_rides_out_a_redis_outage(broker: Broker) -> None:
    """Predicting needs no Redis: a replica whose Redis is killed serves on, says so, and stops cleanly."""
    with RedisServer() as server:
        stack = make_stack(broker, server)
        try:
            v1 = _snapshot(stack.store(), None, 0)
            port = free_port()
            replica = stack.start("--role", "serve", "--metrics-port", str(port))
            wait_for(lambda: (_status_or_none(port) or {}).get("model_version") == v1, 60, "the first version")
            server.kill()
            wait_for(lambda: not status(port)["redis"]["up"], 10, "the outage noticed")
            values, keys = events(0, 200)
            stack.produce(values, keys)
            assert len({orjson.loads(m.value())["id"] for m in stack.read(stack.output, 200)}) == 200
            assert replica.poll() is None and status(port)["model_version"] == v1
            assert stack.stop(replica) == 0
            assert stack.log().count("serving on with the model at hand") == 1  # said once, not per look
        finally:
            stack.cleanup()


@pytest.mark.parametrize("spec", ["logreg", "regression", "anomaly", "forest"])
def test_a_replica_predicts_what_the_model_it_serves_predicts(stack: Stack, spec: str) -> None:
    """The predictions of a replica are those of the version it serves, in the format of --role all."""
    from learner.core.models import build_model
    from learner.core.snapshot_state import SnapshotState
    from learner.core.step import LearningStep
    from learner.runtime.model.snapshot_writer import SnapshotJob, SnapshotWriter

    rows = [{"id": f"e{i}", "x": {"a": (i * 37 % 11) / 11, "b": (i * 13 % 7) / 7},
             "y": (i % 3 == 0) if spec in ("logreg", "forest") else float(i % 5)} for i in range(400)]
    model = build_model(spec)
    step = LearningStep(model)
    for row in rows[:300]:
        step.process(row["x"], row["y"] if spec != "anomaly" else None)
    store = stack.store()
    fields = {"parent": None, "events_learned": step.learned, "offsets": {}, "model_spec": spec,
              "model_params": {}, "metrics": {}}
    outcome = SnapshotWriter(store, background=False).write_now(
        SnapshotJob(SnapshotState(model, step.learned), fields, {}, None, None, None, 10))
    assert outcome.ok
    expected = LearningStep(model, step.learned)
    expected.learning = False
    port = free_port()
    replica = stack.start("--role", "serve", "--metrics-port", str(port))
    wait_for(lambda: (_status_or_none(port) or {}).get("model_version") == outcome.version, 60, "the version")
    stack.produce([orjson.dumps({**row, "y": None}) for row in rows[300:]])
    got = {p["id"]: p for p in (orjson.loads(m.value()) for m in stack.read(stack.output, 100))}
    for row in rows[300:]:
        prediction, proba = expected.process(row["x"], None)
        served = got[row["id"]]
        assert served["model_version"] == outcome.version and served["learned"] == step.learned
        assert served["prediction"] == pytest.approx(prediction) if isinstance(prediction, float) else \
            served["prediction"] == prediction
        if proba:
            assert served["proba"] == pytest.approx({str(k).lower(): v for k, v in proba.items()})
    assert stack.stop(replica) == 0
