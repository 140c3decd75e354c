"""Resident memory of `learner run` (model process + gateway) beyond the model's own size.

    python bench/memory.py [--events 100000] [--model logreg]

Runs the real command as a separate process against the embedded broker and Redis, samples the
proportional set size (PSS: resident memory, pages shared by the forked pair counted once) of
both of its processes until it exits (``--stop-after-events``), and compares the peak with the
size of the final model's pickle.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import redis

from bench.common import embedded_stack, fill_topic, make_events
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--model", default="logreg")
    args = parser.parse_args()
    with embedded_stack() as (broker, redis_server):
        fill_topic(broker.bootstrap_servers, "mem", make_events(args.events), 3)
        command = [sys.executable, "-m", "learner", "--log-level", "WARNING", "run",
                   "--bootstrap-servers", broker.bootstrap_servers, "--redis-url", redis_server.url,
                   "--name", "mem", "--model", args.model, "--input-topic", "mem", "--output-topic", "mem.out",
                   "--stop-after-events", str(args.events), "--snapshot-every-events", "50000"]
        service = subprocess.Popen(command, env={**os.environ, "LEARNER_SIGNING_KEY": "bench"})
        process, peaks = psutil.Process(service.pid), {"model": 0, "gateway": 0, "snapshot child": 0}
        while service.poll() is None:
            try:
                peaks["model"] = max(peaks["model"], process.memory_full_info().pss)
                children = sorted((c for c in process.children() if "python" in c.name()), key=lambda c: c.create_time())
                for role, child in zip(("gateway", "snapshot child"), children, strict=False):
                    peaks[role] = max(peaks[role], child.memory_full_info().pss)
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.1)
        store = SnapshotStore(redis.Redis.from_url(redis_server.url), "mem", Signer(b"bench"))
        size = store.meta(store.head()).size
    mb = 2**20
    print(f"model {args.model}, {args.events} events: peak PSS model process {peaks['model'] / mb:.0f} MB, "
          f"gateway {peaks['gateway'] / mb:.0f} MB, snapshot child {peaks['snapshot child'] / mb:.0f} MB; "
          f"model pickle {size / mb:.2f} MB; model process + gateway beyond the pickle: "
          f"{(peaks['model'] + peaks['gateway'] - size) / mb:.0f} MB")


if __name__ == "__main__":
    main()
