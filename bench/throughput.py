"""Service throughput through the broker vs the bare River loop on the same events, same run.

    python bench/throughput.py [--events 200000] [--partitions 3] [--repeat 3] [--model logreg] [--features 10]
                               [--labels-delay 50]

The cheap model, where the service's own work per event costs more than River's: ``--model
river.linear_model:LogisticRegression --features 3``. ``--labels-delay N``: the events unlabelled and
each label N events later on a labels topic of as many partitions (``bench/labels.py throughput`` runs
both label paths side by side); River's work is the same, so the bare loop is too.

Prints events/s of both and their ratio (service / bare River), the per-event cost the service
adds, and resident memory beyond the model's own pickled size. The bare loop is timed just before
and just after each service run, and the service is compared with the mean of the two.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import pickle
import platform
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_river_loop, delayed, embedded_stack, fill_records, fill_topic, make_events, peak_rss_mb
from learner.runtime.model.service import Service
from learner.settings import Settings


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def runqueue_wait(pid: int) -> float:
    """Seconds ``pid`` has been runnable but waiting for a CPU."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_service(settings: Settings, count: int, broker_pid: int) -> dict[str, object]:
    """In a fresh process, as ``learner run`` would be: seconds from the first consumed batch to the
    last event learned, the cores each party kept busy meanwhile, and the model's pickled size.

    A fresh interpreter, not this one: this process holds the benchmark's data (hundreds of MB of
    events), which the service would otherwise carry in its heap and its forks.
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    worker = context.Process(target=_service_worker, args=(theirs, settings, count, broker_pid))
    worker.start()
    result: dict[str, object] = ours.recv()
    worker.join(60)
    return result


def _service_worker(conn: Connection, settings: Settings, count: int, broker_pid: int) -> None:
    service = Service(settings)
    service.start()
    model = service.model
    pids = {"model": os.getpid(), "gateway": service.link.pid, "broker": broker_pid}
    while model.started_at is None:
        service.run_once()
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    busy, waited, in_river = machine_busy_seconds(), runqueue_wait(os.getpid()), model.model_seconds
    while model.step.learned < count:
        service.run_once()
    elapsed = time.perf_counter() - model.started_at
    # Immune to the machine's drift (both measured in the same process, at the same time): the share
    # of the model process's time spent in River's own loop. 1.0 would be the bare loop.
    river_share = (model.model_seconds - in_river) / elapsed
    cpu = {k: (cpu_seconds(p) - before[k]) / elapsed for k, p in pids.items()}
    # Anything else running on the machine spoils the comparison: over 0.1 core, discard the run.
    cpu["other"] = (machine_busy_seconds() - busy) / elapsed - sum(cpu.values())
    cpu["model waiting for a CPU"] = (runqueue_wait(os.getpid()) - waited) / elapsed
    model_mb = len(pickle.dumps(model.step.model)) / 2**20
    service.stopping = True
    service.shutdown()
    conn.send({"seconds": elapsed, "cpu": cpu, "river_share": river_share, "model_mb": model_mb, "rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metric", action="append", default=[], help="online metrics (default: the service's)")
    parser.add_argument("--batch-size", type=int, default=Settings.model_fields["batch_size"].default)
    parser.add_argument("--role", choices=("all", "learn"), default="all",
                        help="learn: the learner beside serve replicas (publishes no predictions)")
    parser.add_argument("--model", default="logreg",
                        help="a preset or package.module:callable; the cheap model of BENCHMARKS.md: "
                             "river.linear_model:LogisticRegression with --features 3")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--labels-delay", type=int, default=0,
                        help="each label this many events after its event, on a labels topic (0: in the event)")
    args = parser.parse_args()

    values = make_events(args.events, features=args.features)
    rows, shares = [], []
    with embedded_stack() as (broker, redis_server):
        for run in range(args.repeat):
            topic = f"bench-{run}"
            labels_topic = f"{topic}.labels" if args.labels_delay else None
            if labels_topic is not None:
                fill_records(broker.bootstrap_servers, delayed(values, topic, args.labels_delay),
                             {topic: args.partitions, labels_topic: args.partitions})
            else:
                fill_topic(broker.bootstrap_servers, topic, values, args.partitions)
            gc.collect()
            before = bare_river_loop(values, args.model)
            settings = Settings(bootstrap_servers=broker.bootstrap_servers, redis_url=redis_server.url,
                                name=f"bench{run}", model=args.model, input_topic=topic, output_topic=f"{topic}.out",
                                signing_key="bench", snapshot_every_events=100_000, snapshot_every_seconds=0,
                                batch_size=args.batch_size, metric=tuple(args.metric), role=args.role,
                                labels_topic=labels_topic)
            measured = run_service(settings, args.events, broker.process.pid)
            service_seconds, cpu = float(measured["seconds"]), measured["cpu"]  # type: ignore[arg-type]
            shares.append(float(measured["river_share"]))  # type: ignore[arg-type]
            model_mb, rss_mb = measured["model_mb"], measured["rss_mb"]
            # This machine's speed drifts by tens of percent within a minute: time the bare loop just
            # before and just after the service, and compare the service with their mean.
            after = bare_river_loop(values, args.model)
            bare = (before + after) / 2
            rows.append((bare, service_seconds))
            print(f"run {run}: bare River {args.events / bare:,.0f} ev/s (before {args.events / before:,.0f}, "
                  f"after {args.events / after:,.0f}), service {args.events / service_seconds:,.0f} ev/s, "
                  f"ratio {bare / service_seconds:.3f}; River's share of the model process {shares[-1]:.3f}; cores busy: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())  # type: ignore[attr-defined]
                  # CPU per event of each process: what bounds the service on a machine with more cores
                  + "; CPU per event: " + ", ".join(f"{k} {v * service_seconds / args.events * 1e6:.1f} us"
                                                    for k, v in cpu.items() if k in ("model", "gateway", "broker")),
                  flush=True)
    ratios = [b / s for b, s in rows]
    bare_rate = statistics.median(args.events / b for b, _ in rows)
    service_rate = statistics.median(args.events / s for _, s in rows)
    added_us = statistics.median((s - b) / args.events * 1e6 for b, s in rows)
    print(f"\nmachine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"events: {args.events}, partitions: {args.partitions}, model: {args.model}, "
          f"{args.features} features, --role {args.role}, "
          + (f"labels {args.labels_delay} events late" if args.labels_delay else "labels inline"))
    print(f"bare River loop : {bare_rate:,.0f} events/s ({1e6 / bare_rate:.2f} us/event)")
    print(f"service         : {service_rate:,.0f} events/s ({1e6 / service_rate:.2f} us/event)")
    print(f"ratio (median)  : {statistics.median(ratios):.3f}  (runs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"River's share   : {statistics.median(shares):.3f} of the model process's time in the learning step: "
          f"predict_proba_one + learn_one{', and the join of delayed labels' if args.labels_delay else ''} (same "
          f"process, same moment: the ratio without the machine's drift)")
    print(f"latency ratio   : {1 / statistics.median(ratios):.3f}x the bare loop's per-event time (+{added_us:.2f} us/event)")
    print(f"model process   : peak RSS {rss_mb:.0f} MB (model pickle {model_mb:.2f} MB)")


if __name__ == "__main__":
    main()
