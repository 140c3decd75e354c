"""The champion's throughput with 0, 1 and 2 challengers beside it, and each challenger's own.

    python bench/challengers.py [--events 200000] [--partitions 3] [--repeat 2]

Each round: a champion (``learner run``, logreg) starts on an empty input, takes a
first snapshot, k challengers (logreg, fresh, from that version) register and pair with it; then
the events are produced and everyone learns them. Times come from the processes' published
statuses (events done, polled every 20 ms), from the first event done to the last. On these 2-core
machines every process shares the same two cores: the figures say what that costs, as measured.
The bare River loop on the same events is timed before and after each round.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_river_loop, embedded_stack, fill_topic, make_events
from learner.state.control import ControlPlane
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore

BIN = Path(sys.executable).parent
ENV = {**os.environ, "LEARNER_INSECURE_NO_SIGNING": "1"}
POLL = 0.02


def start(bootstrap: str, redis_url: str, name: str, topic: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([BIN / "learner", "--log-level", "WARNING", "run", "--bootstrap-servers", bootstrap,
                             "--redis-url", redis_url, "--name", name, "--input-topic", topic, "--model", "logreg",
                             "--snapshot-every-events", "0", "--snapshot-every-seconds", "0", "--redis-persistence", "ignore",
                             *extra], env=ENV)


def round_of(bootstrap: str, redis_url: str, values: list[bytes], partitions: int, k: int, run: int) -> dict[str, float]:
    """Events/s of the champion and of each of ``k`` challengers over the same events."""
    name, topic = f"bench{k}x{run}", f"bench{k}x{run}-in"
    fill_topic(bootstrap, topic, [], partitions)
    store = SnapshotStore(redis.Redis.from_url(redis_url), name, Signer(None))
    processes = [start(bootstrap, redis_url, name, topic, "--role", "all", "--output-topic", f"{name}-out")]
    try:
        while ControlPlane(store).service_status() is None:
            time.sleep(0.1)
        ControlPlane(store).request_snapshot()
        processes += [start(bootstrap, redis_url, name, topic, "--role", "challenger", "--challenger", f"c{i}",
                            "--from-version", "1") for i in range(k)]
        lineages = {"champion": store} | {f"c{i}": store.lineage(f"c{i}") for i in range(k)}
        while any(ControlPlane(s).service_status() is None for s in lineages.values()):
            time.sleep(0.1)
        time.sleep(1.0)  # the champion's control poll sees the challengers: it writes its scores
        fill_topic(bootstrap, topic, values, partitions)
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        while len(last) < len(lineages):
            now = time.perf_counter()
            for who, lineage in lineages.items():
                status = ControlPlane(lineage).service_status()
                done = status.events_done if status is not None else 0
                if done > 0 and who not in first:
                    first[who] = now
                if done >= len(values) and who not in last:
                    last[who] = now
            time.sleep(POLL)
        return {who: len(values) / (last[who] - first[who]) for who in lineages}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    values = make_events(args.events)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.events:,} events on {args.partitions} partitions, logreg everywhere")
    with embedded_stack() as (broker, redis_server):
        results: dict[int, list[tuple[dict[str, float], float]]] = {0: [], 1: [], 2: []}
        for run in range(args.repeat):
            for k in (0, 1, 2):
                before = bare_river_loop(values)
                rates = round_of(broker.bootstrap_servers, redis_server.url, values, args.partitions, k, run)
                bare = len(values) / ((before + bare_river_loop(values)) / 2)
                results[k].append((rates, bare))
                others = ", ".join(f"{who} {rate:,.0f}" for who, rate in rates.items() if who != "champion")
                print(f"  run {run + 1}, {k} challenger(s): champion {rates['champion']:,.0f} events/s = "
                      f"{rates['champion'] / bare:.2f} of the bare loop ({bare:,.0f}){'; ' + others if others else ''}")
        for k, rounds in results.items():
            ratio = statistics.median(r["champion"] / bare for r, bare in rounds)
            own = [r[f"c{i}"] / bare for r, bare in rounds for i in range(k)]
            print(f"{k} challenger(s): champion at {ratio:.2f} of the bare loop (median)"
                  + (f"; each challenger at {statistics.median(own):.2f}" if own else ""))


if __name__ == "__main__":
    main()
