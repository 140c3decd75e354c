"""Delayed labels: throughput beside inline labels, and what waiting features cost in memory.

    python bench/labels.py throughput [--events 200000] [--delay 50] [--repeat 3]
    python bench/labels.py memory [--waiting 1000000]

``throughput``: the throughput benchmark's model and events, once with each label inside its
event and once with the events unlabelled and each label ``--delay`` events later on its own
topic (3 partitions each); each run's ratio to the bare River loop timed around it. The bare loop
is the same for both: River predicts and learns every event once either way. The delayed run is
timed to its last label learned, so the merge's wait for the quiet topics at the very end of the
stream (``--merge-wait``, 0.5 s by default) is in it: the last events' latency, not a rate.
Each run's "River's share" is the learning step's share of the model process's time: inline that
is River's own loop, with a labels topic it also holds the join (profile to split them).

``memory``: bytes per waiting event in the join itself (10 numeric features and the prediction,
traced allocations); then ``learner run`` with ``--labels-topic`` and ``--waiting`` unlabelled
events, its model process's resident memory (PSS) beside the same service on as many labelled
events, the snapshot's size, and the stream's pause when it is taken (the fork).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import psutil
import redis

from bench.common import bare_river_loop, delayed, embedded_stack, fill_records, fill_topic, make_events
from bench.throughput import run_service
from learner.core.labels import LabelJoin
from learner.local.servers import free_port
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore
from stream import Admin


def throughput(args: argparse.Namespace) -> None:
    values = make_events(args.events)
    ratios: dict[str, list[float]] = {"inline labels": [], f"labels {args.delay} events late": []}
    with embedded_stack() as (broker, redis_server):
        bootstrap = broker.bootstrap_servers
        for run in range(args.repeat):
            for mode, runs in ratios.items():
                topic = f"labels-{run}-{'late' if 'late' in mode else 'inline'}"
                late = "late" in mode
                if late:
                    fill_records(bootstrap, delayed(values, topic, args.delay), {topic: 3, f"{topic}.labels": 3})
                else:
                    fill_topic(bootstrap, topic, values, 3)
                gc.collect()
                before = bare_river_loop(values)
                settings = Settings(bootstrap_servers=bootstrap, redis_url=redis_server.url, name=topic,
                                    model="logreg", input_topic=topic, output_topic=f"{topic}.out",
                                    labels_topic=f"{topic}.labels" if late else None, signing_key="bench",
                                    snapshot_every_events=100_000, snapshot_every_seconds=0)
                measured = run_service(settings, args.events, broker.process.pid)
                bare = (before + bare_river_loop(values)) / 2
                seconds = float(measured["seconds"])  # type: ignore[arg-type]
                runs.append(bare / seconds)
                print(f"run {run}, {mode:>22}: bare River {args.events / bare:,.0f} ev/s, service "
                      f"{args.events / seconds:,.0f} ev/s, ratio {bare / seconds:.3f}; River's share of the model "
                      f"process {float(measured['river_share']):.3f}; cores busy: "  # type: ignore[arg-type]
                      + ", ".join(f"{k} {v:.2f}" for k, v in measured["cpu"].items()), flush=True)  # type: ignore[attr-defined]
    print(f"\nevents: {args.events}, 3 partitions per topic, StandardScaler | LogisticRegression, 10 features")
    for mode, runs in ratios.items():
        print(f"{mode:>22}: ratio to the bare loop {statistics.median(runs):.3f} "
              f"(runs: {', '.join(f'{r:.3f}' for r in runs)})")


def join_bytes(count: int) -> tuple[float, float]:
    """Traced bytes per waiting event in the join, and pickled bytes per waiting event."""
    events = [orjson.loads(v) for v in make_events(count)]
    join = LabelJoin(ttl_ms=86_400_000, max_pending=count, early_ms=1000)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i, event in enumerate(events):
        join.arrive(event["id"], event["x"], {False: 0.4, True: 0.6}, ts=1_700_000_000_000 + i)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return held / count, len(pickle.dumps(join, protocol=pickle.HIGHEST_PROTOCOL)) / count


def service_memory(waiting: int) -> None:
    values = make_events(waiting)
    unlabelled = [orjson.dumps({k: v for k, v in orjson.loads(raw).items() if k != "y"}) for raw in values]
    mb = 2**20
    with embedded_stack() as (broker, redis_server):
        bootstrap = broker.bootstrap_servers
        Admin({"bootstrap.servers": bootstrap}).ensure({"mem.labels": 3})
        results = {}
        for mode, data in (("labelled", values), ("waiting", unlabelled)):
            fill_topic(bootstrap, f"mem-{mode}", data, 3)
            port = free_port()
            command = [sys.executable, "-m", "learner", "--log-level", "WARNING", "run",
                       "--bootstrap-servers", bootstrap, "--redis-url", redis_server.url, "--name", f"mem-{mode}",
                       "--model", "logreg", "--input-topic", f"mem-{mode}", "--output-topic", f"mem-{mode}.out",
                       "--snapshot-every-events", "0", "--snapshot-every-seconds", "0", "--metrics-port", str(port),
                       "--max-pending", str(2 * waiting)]
            if mode == "waiting":
                command += ["--labels-topic", "mem.labels"]
            service = subprocess.Popen(command, env={**os.environ, "LEARNER_SIGNING_KEY": "bench"})
            try:
                store = SnapshotStore(redis.Redis.from_url(redis_server.url), f"mem-{mode}", Signer(b"bench"))
                control = ControlPlane(store)
                while not ((status := control.service_status()) and status.events_done >= waiting):
                    assert service.poll() is None, "the service exited"
                    time.sleep(0.2)
                time.sleep(1)  # let the gateway's buffers settle
                pss = psutil.Process(service.pid).memory_full_info().pss
                subprocess.run([sys.executable, "-m", "learner", "snapshot", "--redis-url", redis_server.url,
                                "--name", f"mem-{mode}"], check=True, capture_output=True,
                               env={**os.environ, "LEARNER_SIGNING_KEY": "bench"})
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                pause = next(float(line.split()[-1]) for line in metrics.splitlines()
                             if line.startswith("learner_snapshot_pause_seconds_sum"))
                size = store.meta(store.head()).size
            finally:
                service.terminate()
                service.wait(60)
            results[mode] = (pss, size, pause, status.get("labels"))
            print(f"{mode:>9}: {waiting:,} events, model process PSS {pss / mb:,.0f} MB, snapshot "
                  f"{size / mb:,.1f} MB, stream pause at the snapshot {pause * 1000:.1f} ms; labels {results[mode][3]}",
                  flush=True)
    extra = (results["waiting"][0] - results["labelled"][0]) / waiting
    snapshot_extra = (results["waiting"][1] - results["labelled"][1]) / waiting
    print(f"\n{waiting:,} events waiting cost the service {extra:,.0f} bytes each of resident memory and "
          f"{snapshot_extra:,.0f} bytes each of snapshot")


def memory(args: argparse.Namespace) -> None:
    traced, pickled = join_bytes(200_000)
    print(f"the join alone: {traced:,.0f} bytes per waiting event (traced), {pickled:,.0f} bytes pickled")
    service_memory(args.waiting)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("throughput")
    run.add_argument("--events", type=int, default=200_000)
    run.add_argument("--delay", type=int, default=50)
    run.add_argument("--repeat", type=int, default=3)
    mem = modes.add_parser("memory")
    mem.add_argument("--waiting", type=int, default=1_000_000)
    args = parser.parse_args()
    throughput(args) if args.mode == "throughput" else memory(args)


if __name__ == "__main__":
    main()
