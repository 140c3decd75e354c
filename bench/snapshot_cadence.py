"""Snapshots under full load: do they keep the cadence asked for with a slow model and a backlog?

    python bench/snapshot_cadence.py [--events 15000] [--every 2] [--seconds 25] [--model forest]

Fills a topic with ``--events`` events (a backlog), runs ``learner run --model forest
--snapshot-every-seconds EVERY`` on it for ``--seconds``, and prints, from the service's own log,
when each snapshot completed and how long its write took: the gaps between completions should stay
near EVERY (at most 2·EVERY), whatever the model costs per event. Also the gaps between consecutive
predictions (their Kafka timestamps): a slow model answers in bursts of ``--batch-size``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.common import embedded_stack, fill_topic, make_events

WRITTEN = re.compile(r"^(\S+ \S+) .*snapshot (\d+) written \((\d+) bytes, ([\d.]+)s\)")


def _when(stamp: str) -> float:
    """A log line's time (``2026-12-06 04:58:12,345``) as epoch seconds."""
    seconds, _, millis = stamp.partition(",")
    return time.mktime(time.strptime(seconds, "%Y-%m-%d %H:%M:%S")) + int(millis or 0) / 1000


def prediction_gaps(bootstrap: str, topic: str) -> list[float]:
    """Seconds between consecutive predictions' Kafka timestamps, in the order they were produced."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cadence-probe", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])  # no group join (Tansu's waits a session)
    stamps: list[int] = []
    idle = time.monotonic()
    while time.monotonic() - idle < 5:
        for message in consumer.consume(5000, 1.0):
            if message.error() is None:
                stamps.append(message.timestamp()[1])
                idle = time.monotonic()
    consumer.close()
    stamps.sort()
    return [(b - a) / 1000 for a, b in itertools.pairwise(stamps)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--model", default="forest")
    args = parser.parse_args()
    with embedded_stack() as (broker, redis_server):
        fill_topic(broker.bootstrap_servers, "cadence.in", make_events(args.events), 1)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / "snapshot-cadence.log"
        with open(log, "wb") as out:
            service = subprocess.Popen(
                [sys.executable, "-m", "learner", "--log-level", "INFO", "run", "--bootstrap-servers",
                 broker.bootstrap_servers, "--redis-url", redis_server.url, "--name", "cadence", "--model", args.model,
                 "--input-topic", "cadence.in", "--output-topic", "cadence.out", "--insecure-no-signing",
                 "--snapshot-every-events", "0", "--snapshot-every-seconds", str(args.every)],
                stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline and "streaming" not in log.read_text():
                time.sleep(0.2)
            started = time.time()
            time.sleep(max(0.0, deadline - time.monotonic()))
            service.send_signal(signal.SIGTERM)
            service.wait(120)
        written = [(_when(m[1]), int(m[2]), int(m[3]), float(m[4]))
                   for line in log.read_text().splitlines() if (m := WRITTEN.match(line))]
        gaps = prediction_gaps(broker.bootstrap_servers, "cadence.out")
    print(f"model {args.model}, backlog {args.events} events, --snapshot-every-seconds {args.every}, "
          f"{args.seconds:.0f} s run")
    print(f"snapshots written: {len(written)}")
    for when, version, size, seconds in written:
        print(f"  version {version}: completed {when - started:6.1f} s after the start, {size / 1e6:.1f} MB, "
              f"write {seconds:.2f} s")
    completions = [started] + [when for when, *_ in written]
    between = [b - a for a, b in itertools.pairwise(completions)]
    if between:
        print(f"longest time without a snapshot completing (from the start): {max(between):.1f} s "
              f"(asked: every {args.every:g} s)")
    if gaps:
        gaps.sort()
        print(f"gaps between consecutive predictions: p50 {gaps[len(gaps) // 2] * 1000:.1f} ms, "
              f"p99 {gaps[int(len(gaps) * 0.99)] * 1000:.1f} ms, max {gaps[-1] * 1000:.0f} ms over {len(gaps) + 1} predictions")


if __name__ == "__main__":
    main()
