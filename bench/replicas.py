"""Serve replicas: aggregate prediction throughput with 1, 2 and 3 replicas, CPU per event, reloads.

    python bench/replicas.py [--events 200000] [--partitions 6] [--replicas 1,2,3]

The model (StandardScaler | LogisticRegression, 10 features, trained on 20,000 events) is written
as a snapshot first. For each replica count, the replicas are started on an empty 6-partition
topic and waited for until the group is balanced, then the events are produced as fast as the
client can; throughput is events over the span from the first to the last prediction's broker
timestamp, and CPU per event is the replicas' CPU seconds over the run divided by the events
(the figure that predicts scaling on a host with more cores). ``--role all`` is measured on the
same events for comparison (both of its processes' CPU). Reload: the time a replica's follower
takes to read, verify and unpickle a new version (off the hot path), for this model and for an
adaptive random forest.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import psutil
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import embedded_stack, fill_topic, make_events
from learner.core.evaluation import metrics_for
from learner.core.models import build_model, kind_of
from learner.core.scorecard import Scorecard
from learner.core.snapshot_state import SnapshotState
from learner.local.servers import Broker, RedisServer, free_port
from learner.runtime.model.snapshot_writer import SnapshotJob, SnapshotWriter
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore
from stream import Admin

KEY = "bench-replicas-key"
#: Per model: seconds from the new version's write returning to the replica's /status showing it.
FOLLOWED: dict[str, float] = {}


def write_model(redis_url: str, name: str, spec: str, train: list[bytes]) -> int:
    import redis

    model = build_model(spec)
    for value in train:
        event = orjson.loads(value)
        model.learn_one(event["x"], event["y"])
    store = SnapshotStore(redis.Redis.from_url(redis_url), name, Signer(KEY.encode()))
    fields = {"parent": store.head(), "events_learned": len(train), "offsets": {}, "model_spec": spec,
              "model_params": {}, "metrics": {}}
    scorecard = Scorecard.new(kind_of(model).task, metrics_for(kind_of(model), ()), 0)  # what --role all needs
    job = SnapshotJob(SnapshotState(model, len(train), scorecard), fields, {}, store.head(), None,
                      None, 20)
    outcome = SnapshotWriter(store, background=False).write_now(job)
    assert outcome.ok and outcome.version is not None, outcome
    return outcome.version


def start(broker: Broker, redis_server: RedisServer, name: str, role: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "learner", "run", "--bootstrap-servers", broker.bootstrap_servers,
         "--redis-url", redis_server.url, "--name", name, "--input-topic", f"{name}.in",
         "--output-topic", f"{name}.out", "--role", role, "--metrics-port", str(port), "--redis-persistence",
         "ignore", "--session-timeout-ms", "6000", "--snapshot-every-events", "0", "--snapshot-every-seconds", "0",
         "--drift-window", "0"],
        env={**os.environ, "LEARNER_SIGNING_KEY": KEY}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
        return orjson.loads(answer.read())


def tree_cpu(process: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(process.pid)
    total = 0.0
    for p in [parent, *parent.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def output_span(bootstrap: str, topic: str, count: int, partitions: int, timeout: float = 300) -> tuple[float, int]:
    """Seconds from the first to the last prediction (broker timestamps) once ``count`` are there."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"span-{time.time()}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    first, last, seen = float("inf"), 0.0, set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                stamp = message.timestamp()[1] / 1000
                first, last = min(first, stamp), max(last, stamp)
                seen.add(orjson.loads(message.value())["id"])
    consumer.close()
    return last - first, len(seen)


def run(broker: Broker, redis_server: RedisServer, values: list[bytes], train: list[bytes], partitions: int,
        replicas: int, role: str) -> dict[str, float]:
    name = f"rep-{role}-{replicas}-{os.getpid()}"
    Admin({"bootstrap.servers": broker.bootstrap_servers}).ensure({f"{name}.in": partitions,
                                                                   f"{name}.out": partitions})
    write_model(redis_server.url, name, "logreg", train)
    ports = [free_port() for _ in range(replicas)]
    processes = [start(broker, redis_server, name, role, port) for port in ports]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                shares = [status(port).get("partitions") if role == "serve" else [0] for port in ports]
            except OSError:
                shares = []
            if role == "all":
                try:
                    ready = all(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
                                for port in ports)
                except OSError:
                    ready = False
                if ready:
                    break
            elif shares and all(shares) and sum(len(s) for s in shares) == partitions:  # type: ignore[arg-type]
                break
            time.sleep(0.2)
        cpu_before = sum(tree_cpu(p) for p in processes)
        fill_topic(broker.bootstrap_servers, f"{name}.in", values, partitions)
        seconds, seen = output_span(broker.bootstrap_servers, f"{name}.out", len(values), partitions)
        cpu = sum(tree_cpu(p) for p in processes) - cpu_before
        return {"events_per_s": seen / seconds if seconds else 0.0, "cpu_us_per_event": cpu / seen * 1e6,
                "seen": seen}
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)


def reload_seconds(broker: Broker, redis_server: RedisServer, spec: str, train: list[bytes]) -> tuple[float, int]:
    """How long one replica's follower takes to load a new version of this model (its /metrics)."""
    name = f"reload-{spec}-{os.getpid()}"
    Admin({"bootstrap.servers": broker.bootstrap_servers}).ensure({f"{name}.in": 1})
    write_model(redis_server.url, name, spec, train[:2000])
    port = free_port()
    process = start(broker, redis_server, name, "serve", port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if status(port).get("model_version") is not None:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        version = write_model(redis_server.url, name, spec, train)
        written = time.monotonic()
        while status(port).get("model_version") != version:
            time.sleep(0.002)
        FOLLOWED[spec] = time.monotonic() - written
        import redis

        store = SnapshotStore(redis.Redis.from_url(redis_server.url), name, Signer(KEY.encode()))
        return float(status(port)["last_reload_seconds"]), store.meta(version).size
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replicas", default="1,2,3")
    args = parser.parse_args()
    values = make_events(args.events, seed=3)
    train = make_events(20_000, seed=4)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; {args.events:,} events, "
          f"{args.partitions} partitions")
    print("| answerers | events/s (all of them) | CPU µs per event (all of them) |")
    print("|---|---:|---:|")
    with embedded_stack() as (broker, redis_server):
        result = run(broker, redis_server, values, train, args.partitions, 1, "all")
        print(f"| `--role all` (1 process pair, predicts and learns) | {result['events_per_s']:,.0f} | "
              f"{result['cpu_us_per_event']:.1f} |", flush=True)
        for count in (int(c) for c in args.replicas.split(",")):
            result = run(broker, redis_server, values, train, args.partitions, count, "serve")
            print(f"| {count} × `--role serve` | {result['events_per_s']:,.0f} | {result['cpu_us_per_event']:.1f} |",
                  flush=True)
        print()
        print("| model (trained on 20,000 events) | snapshot size | reload (read, verify, unpickle) | "
              "from the write to the replica serving it |")
        print("|---|---:|---:|---:|")
        for spec in ("logreg", "forest"):
            seconds, size = reload_seconds(broker, redis_server, spec, train)
            print(f"| {spec} | {size / 2**20:.2f} MB | {seconds * 1000:.1f} ms | {FOLLOWED[spec] * 1000:.1f} ms |",
                  flush=True)


if __name__ == "__main__":
    main()
