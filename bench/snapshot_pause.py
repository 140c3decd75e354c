"""How long a snapshot pauses the stream, against the time a plain pickle of the model takes.

    python bench/snapshot_pause.py [--events 20000] [--repeat 3]

For each model, trained on the same synthetic stream: the plain in-process pickle time (what the
stream would wait without the forked writer), and the pause the service actually has, from the
start of the snapshot to the return of ``fork()`` (version allocation included), plus the time
the child takes to pickle, sign and write to Redis in the background. The producer-flush
barrier the service adds before a snapshot is not included here (it is a few milliseconds).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from river import datasets, forest, tree

from learner.core.models import build_model
from learner.core.snapshot_state import SnapshotState
from learner.local.servers import RedisServer
from learner.runtime.model.snapshot_writer import SnapshotJob, SnapshotWriter
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore

MODELS = {
    "LogisticRegression": lambda: build_model("logreg"),
    "HoeffdingTree": lambda: tree.HoeffdingTreeClassifier(grace_period=50),
    "ARF (10 trees)": lambda: forest.ARFClassifier(n_models=10, seed=42),
}


def trained(factory, count: int):  # type: ignore[no-untyped-def]
    model = factory()
    for x, y in datasets.synth.Agrawal(seed=7).take(count):
        model.learn_one(x, y)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'model':20} {'pickle size':>12} {'plain pickle':>13} {'stream pause':>13} {'background write':>17}")
    with RedisServer() as server:
        store = SnapshotStore(redis.Redis.from_url(server.url), "pause", Signer(b"bench"))
        writer = SnapshotWriter(store, background=True)
        for name, factory in MODELS.items():
            model = trained(factory, args.events)
            state = SnapshotState(model, args.events)
            plain, pauses, totals = [], [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                blob = pickle.dumps(state.to_dict(), protocol=pickle.HIGHEST_PROTOCOL)
                plain.append(time.perf_counter() - started)
                fields = {"parent": store.head(), "events_learned": args.events, "offsets": {}, "metrics": {},
                          "model_spec": name, "model_params": {}, "reason": "bench"}
                job = SnapshotJob(state, fields, {}, store.head(), None, None, keep=3)
                started = time.perf_counter()
                writer.start(job)
                pauses.append(time.perf_counter() - started)
                outcome = writer.wait()
                assert outcome is not None and outcome.ok, outcome
                totals.append(outcome.seconds)
            print(f"{name:20} {len(blob) / 2**20:>10.2f} MB {statistics.median(plain) * 1000:>10.1f} ms "
                  f"{statistics.median(pauses) * 1000:>10.1f} ms {statistics.median(totals) * 1000:>14.1f} ms")


if __name__ == "__main__":
    main()
