"""`learner backtest` vs the bare River loop doing the same work, same run.

    python bench/backtest.py [--events 100000] [--partitions 1] [--model logreg] [--model tree] [--repeat 3]

A service learns ``--events`` events (inline labels) with snapshots every tenth of them; then
``learner backtest --from-version 1 --until head`` replays the rest through the live model and each
``--model``, as a user runs it (a process of its own, JSON out). The work River does there is the
live model's loop plus each spec's loop over the same events, so the reference is the sum of bare
loops (``predict_proba_one`` + ``learn_one``) of those specs over those events, timed just before
and just after each backtest. Prints the backtest's events/s, its ratio to that reference, each
spec's own events/s next to its bare loop's, and the backtest process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_river_loop, embedded_stack, fill_topic, make_events

BIN = Path(sys.executable).parent
ENV = {**os.environ, "LEARNER_INSECURE_NO_SIGNING": "1", "PYTHONHASHSEED": "0"}


def learn(bootstrap: str, redis_url: str, events: int) -> None:
    """The live lineage: ``events`` learned, a snapshot every tenth of them."""
    subprocess.run([BIN / "learner", "--log-level", "WARNING", "run", "--bootstrap-servers", bootstrap,
                    "--redis-url", redis_url, "--name", "bench", "--input-topic", "bench-in", "--model", "logreg",
                    "--snapshot-every-events", str(events // 10), "--snapshot-every-seconds", "0",
                    "--stop-after-events", str(events)], env=ENV, check=True)


def backtest(bootstrap: str, redis_url: str, specs: list[str]) -> tuple[dict[str, object], float]:
    """The report and the backtest process's peak resident memory (MB): its VmHWM, read until it ends (not
    its rusage, which counts the pages of this process it was forked from)."""
    models = [arg for spec in specs for arg in ("--model", spec)]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen([BIN / "learner", "--log-level", "WARNING", "backtest", "--bootstrap-servers",
                                    bootstrap, "--redis-url", redis_url, "--name", "bench", "--input-topic", "bench-in",
                                    "--from-version", "1", *models, "--json"], env=ENV, stdout=out)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, high_water_kb(process.pid))
            time.sleep(0.05)
        assert process.returncode == 0, process.returncode
        out.seek(0)
        return orjson.loads(out.read()), peak_kb / 1024


def high_water_kb(pid: int) -> int:
    """The process's peak resident set so far (kB), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--model", dest="specs", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    specs = args.specs or ["logreg"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.events:,} events on {args.partitions} partition(s), live logreg, specs {specs}")
    values = make_events(args.events)
    with embedded_stack() as (broker, redis_server):
        fill_topic(broker.bootstrap_servers, "bench-in", values, args.partitions)
        learn(broker.bootstrap_servers, redis_server.url, args.events)
        ratios = []
        for run in range(args.repeat):
            report, _ = backtest(broker.bootstrap_servers, redis_server.url, specs)
            replayed = int(report["events"])  # type: ignore[call-overload]
            tail = values[-replayed:] if replayed else []
            before = {spec: bare_river_loop(tail, spec) for spec in {"logreg", *specs}}
            report, peak_mb = backtest(broker.bootstrap_servers, redis_server.url, specs)
            after = {spec: bare_river_loop(tail, spec) for spec in {"logreg", *specs}}
            bare = {spec: (before[spec] + after[spec]) / 2 for spec in before}
            reference = bare["logreg"] + sum(bare[spec] for spec in specs)
            seconds = float(report["seconds"])  # type: ignore[arg-type]
            ratio = reference / seconds
            ratios.append(ratio)
            rows = ", ".join(f"{m['spec']} {m['events_per_second']:,}/s (bare {replayed / bare[m['spec']]:,.0f}/s)"
                             for m in report["models"])  # type: ignore[attr-defined]
            print(f"run {run + 1}: {replayed:,} events in {seconds:.2f}s = {replayed / seconds:,.0f} events/s; "
                  f"bare loops of live + specs {reference:.2f}s: ratio {ratio:.3f}; {rows}; peak RSS {peak_mb:.0f} MB")
        print(f"median ratio to the bare loops: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
