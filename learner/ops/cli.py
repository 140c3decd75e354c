"""The ``learner`` command line (README "Operations" and "Configuration").

Exit codes: 0 ok, 2 usage error, 1 anything else; expected errors print one line on stderr.
River, redis-py and the runtime are imported by the commands that need them, not here: ``learner
--help`` answers at once, and ``learner run`` can pin the hash seed (:mod:`learner.ops.hash_seed`)
before it pays for them.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic_settings import SettingsError

from learner import __version__
from learner.errors import LearnerError, SnapshotMissing, UsageError
from learner.ops import hash_seed, logs
from learner.ops.dashboard_command import add_dashboard_command
from learner.ops.experiment_commands import add_experiment_commands
from learner.ops.options import KAFKA, REDIS, add, env_flag, from_env, settings_from
from learner.ops.output import json_flag
from learner.ops.record_commands import add_record_commands
from stream.errors import StreamError

if TYPE_CHECKING:
    from learner.ops.feed import Record
    from learner.state.snapshots import SnapshotStore
    from stream import AsyncProducer

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


#: Errors a user can cause: one line on stderr, exit code 1 (UsageError: 2). OSError: a file.
EXPECTED_ERRORS = (LearnerError, StreamError, OSError)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learner", description="Keep a River model learning from Kafka.")
    parser.add_argument("--version", action="version", version=f"streamlearner {__version__}")
    parser.add_argument("--log-level", default=from_env("log_level", "INFO"), type=str.upper,
                        help=f"{', '.join(LOG_LEVELS)} [env LEARNER_LOG_LEVEL]")
    parser.add_argument("--log-format", choices=("text", "json"), default=from_env("log_format", "text"),
                        help="text for people, json for log pipelines [env LEARNER_LOG_FORMAT]")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the service: predict, publish, learn, snapshot")
    add(run, *KAFKA, *REDIS, "model", "input_topic", "output_topic", "labels_topic", "dlq_topic", "group_id", "role",
        "snapshot_every_events", "snapshot_every_seconds", "snapshot_keep", "snapshot_in_background",
        "force", "lease_ttl", "max_event_bytes", "batch_size", "gateway_priority", "session_timeout_ms", "metric",
        "stop_after_events", "metrics_port", "history_every_seconds",
        "drift_window", "drift_warmup", "snapshot_on_drift", "guard_margin", "redis_persistence", "startup_timeout",
        "label_ttl", "label_early_window", "max_pending", "merge_wait", "merge_allowance", "live_every_seconds", "follow_poll",
        "challenger", "from_version", "fork", "auto_promote", "auto_promote_margin", "auto_promote_confidence",
        "auto_promote_min_paired")
    run.set_defaults(handler=cmd_run)

    models = commands.add_parser("models", help="list the model presets")
    models.set_defaults(handler=cmd_models)

    produce = commands.add_parser("produce", help="send a dataset or a file to a topic")
    add(produce, *KAFKA)
    produce.add_argument("--topic", default=from_env("topic", "events"), help="target topic [env LEARNER_TOPIC]")
    source = produce.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=from_env("dataset"), help="a River dataset: Phishing, TrumpApproval, "
                        "ImageSegments, synth.Agrawal, ... [env LEARNER_DATASET]")
    source.add_argument("--file", type=Path, default=from_env("file"),
                        help="a .jsonl (sent verbatim) or .csv file [env LEARNER_FILE]")
    produce.add_argument("--target", default=from_env("target", "y"), help="CSV column holding the label [env LEARNER_TARGET]")
    produce.add_argument("--rate", type=float, default=from_env("rate", 0),
                         help="events per second, 0 = as fast as possible [env LEARNER_RATE]")
    produce.add_argument("--limit", type=int, default=from_env("limit"), help="stop after this many events [env LEARNER_LIMIT]")
    produce.add_argument("--seed", type=int, default=from_env("seed", 42), help="seed of synthetic datasets [env LEARNER_SEED]")
    produce.add_argument("--labels-topic", default=from_env("produce_labels_topic"),
                         help="send each event without its label, and the label later to this topic "
                              "[env LEARNER_PRODUCE_LABELS_TOPIC]")
    produce.add_argument("--label-delay", default=from_env("label_delay", "50"),
                         help="with --labels-topic: the label goes N events later, or N:M for at random between "
                              "[env LEARNER_LABEL_DELAY]")
    produce.set_defaults(handler=cmd_produce)

    export = commands.add_parser("export", help="write a snapshot's River model as a plain pickle")
    add(export, *REDIS, "force", "challenger")
    export.add_argument("--version", dest="snapshot_version", type=int, default=from_env("version"),
                        help="snapshot version (default: the head) [env LEARNER_VERSION]")
    export.add_argument("--out", type=Path, default=from_env("out"), required=from_env("out") is None,
                        help="file to write [env LEARNER_OUT]")
    export.set_defaults(handler=cmd_export)
    _add_operator_commands(commands)
    add_experiment_commands(commands)
    add_record_commands(commands)
    add_dashboard_command(commands)

    local = commands.add_parser("local", help="the embedded demo: broker, Redis and learner, no Docker, no root")
    local.add_argument("--dataset", default=from_env("dataset", "change.Agrawal"),
                       help="River dataset to stream; change.Agrawal (the default) is synth.Agrawal whose concept "
                            "changes halfway [env LEARNER_DATASET]")
    local.add_argument("--limit", type=int, default=from_env("limit", 20000), help="events to stream [env LEARNER_LIMIT]")
    local.add_argument("--rate", type=float, default=from_env("rate", 200), help="events per second [env LEARNER_RATE]")
    local.add_argument("--no-dashboard", dest="dashboard", action="store_false", help="do not start the dashboard")
    local.add_argument("--model", default=from_env("model", "tree"), help="model preset or spec [env LEARNER_MODEL]")
    local.add_argument("--keep", action="store_true", default=env_flag("keep"),
                       help="keep the stack and the learner running until Ctrl-C [env LEARNER_KEEP=1]")
    local.add_argument("--label-delay", default=from_env("local_label_delay"),
                       help="labels on a labels topic, N events (or N:M, at random) after their event "
                            "[env LEARNER_LOCAL_LABEL_DELAY]")
    local.add_argument("--challenger", dest="challengers", action="append", default=[], metavar="NAME=MODEL",
                       help="also run a challenger of the demo's model, from its first snapshot (repeatable)")
    local.set_defaults(handler=cmd_local)
    return parser


def _add_operator_commands(commands: Any) -> None:
    """``snapshots …``, ``snapshot``, ``rollback``, ``status``: commands on a model's history."""
    snapshots = commands.add_parser("snapshots", help="list, show, pin, unpin, delete snapshots; the audit log")
    actions = snapshots.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in [("list", "versions with lineage, metric, size, pinned, head"),
                         ("log", "the audit log: rollbacks, pins, deletes, lease changes")]:
        sub = actions.add_parser(action, help=text)
        add(sub, *REDIS, "challenger")
        json_flag(sub)
        sub.set_defaults(handler=cmd_snapshots)
    for action, text in [("show", "everything a snapshot records"), ("pin", "keep forever; the guard's reference"),
                         ("unpin", "let retention delete it again"), ("delete", "delete (never the head or a pinned one)")]:
        sub = actions.add_parser(action, help=text)
        add(sub, *REDIS, "challenger")
        sub.add_argument("snapshot_version", type=int, metavar="VERSION")
        json_flag(sub)
        sub.set_defaults(handler=cmd_snapshots)

    snapshot = commands.add_parser("snapshot", help="ask the running service to snapshot now; prints the version")
    add(snapshot, *REDIS, "challenger")
    snapshot.set_defaults(handler=lambda a: _operate().snapshot_now(_store(a)))

    rollback = commands.add_parser("rollback", help="make an older version the head; a running service adopts it")
    add(rollback, *REDIS, "force", "challenger")
    rollback.add_argument("--to", dest="to_version", type=int, default=from_env("to"), required=from_env("to") is None,
                          metavar="VERSION", help="the version to make the head [env LEARNER_TO]")
    rollback.add_argument("--replay", action="store_true", default=env_flag("replay"),
                          help="re-learn the input from that version's offsets [env LEARNER_REPLAY=1]")
    rollback.add_argument("--reason", default=from_env("reason", ""), help="why (kept in the audit log) [env LEARNER_REASON]")
    rollback.set_defaults(handler=lambda a: _operate().rollback(_store(a), a.to_version, a.replay, a.reason,
                                                             settings_from(a).force))

    resume = commands.add_parser("resume", help="resume learning after a guard trip")
    add(resume, *REDIS)
    resume.set_defaults(handler=lambda a: _operate().resume(_store(a)))

    status = commands.add_parser("status", help="head, last snapshot, events learned, metrics, running service")
    add(status, *REDIS, *KAFKA, "challenger")
    json_flag(status)
    status.add_argument("--watch", nargs="?", const=2.0, type=float, metavar="SECONDS",
                        help="redraw the status in place every SECONDS (2) until Ctrl-C")
    status.set_defaults(handler=cmd_status)


def _store(args: argparse.Namespace) -> SnapshotStore:
    from learner.connections import Connections

    return Connections(settings_from(args)).store()


def _operate() -> Any:
    from learner.ops import commands

    return commands


def cmd_snapshots(args: argparse.Namespace) -> int:
    store = _store(args)
    from learner.ops import commands

    if args.action == "list":
        return commands.list_snapshots(store, args.json)
    if args.action == "log":
        return commands.show_log(store, args.json)
    if args.action == "show":
        return commands.show_snapshot(store, args.snapshot_version, args.json)
    if args.action in ("pin", "unpin"):
        return commands.pin(store, args.snapshot_version, args.action == "pin")
    return commands.delete(store, args.snapshot_version)


def cmd_local(args: argparse.Namespace) -> int:
    from learner.local.challengers import parse_challenger
    from learner.local.demo import Demo, run_demo

    if int(args.limit) < 1 or float(args.rate) <= 0:
        raise UsageError("--limit and --rate must be positive")
    return run_demo(Demo(dataset=args.dataset, limit=int(args.limit), rate=float(args.rate), model=args.model,
                         keep=args.keep, label_delay=args.label_delay, dashboard=args.dashboard,
                         challengers=tuple(parse_challenger(text) for text in args.challengers)))


def cmd_status(args: argparse.Namespace) -> int:
    store, settings = _store(args), settings_from(args)
    if args.watch is None or args.json:
        return int(_operate().status(store, args.json, settings))
    from learner.ops.watch import watch

    return watch(lambda: _operate().status(store, False, settings), max(args.watch, 0.2))


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.key_bytes() is None and not settings.insecure_no_signing:
        raise UsageError("snapshots must be signed: give --signing-key (or LEARNER_SIGNING_KEY), "
                         "or --insecure-no-signing to accept unsigned pickles")
    if settings.challenger is not None and settings.role != "challenger":  # it names the keys: never silently
        raise UsageError(f"--challenger (or LEARNER_CHALLENGER) is given with --role {settings.role}: it is for "
                         "--role challenger")
    hash_seed.pin(settings)  # may start this command again, in a process with the model's hash seed
    signal.signal(signal.SIGTERM, _terminated_while_starting)
    from learner.runtime.roles import role_of

    role = role_of(settings)
    if said := role.say_ignored(settings):
        log.warning("%s", said)
    progress = logs.status_line if sys.stderr.isatty() and args.log_format == "text" else None
    try:
        return role.run(settings, progress)
    except _Terminated:
        log.info("stopped (SIGTERM) %s", role.stopped_early)
        return 0


class _Terminated(Exception):
    """SIGTERM before the service took its own signal handlers: nothing to save yet."""


def _terminated_while_starting(_signum: int, _frame: Any) -> None:
    raise _Terminated


def cmd_models(args: argparse.Namespace) -> int:
    from learner.core.models import PRESETS

    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from learner.connections import Connections
    from learner.ops.feed import LabelDelay, dataset_events, file_events, limited, records, with_delayed_labels

    settings = settings_from(args)
    if args.dataset:
        events = dataset_events(args.dataset, args.seed)
    elif args.file:
        events = file_events(Path(args.file), args.target)
    else:
        raise UsageError("give --dataset NAME or --file PATH")
    connections = Connections(settings)
    existing = connections.admin().topic_partitions()
    for topic in (args.topic, *([args.labels_topic] if args.labels_topic else [])):
        if topic not in existing:
            raise UsageError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
    chosen = limited(events, args.limit)
    stream = (with_delayed_labels(chosen, args.topic, args.labels_topic, LabelDelay.parse(args.label_delay), args.seed)
              if args.labels_topic else records(chosen, args.topic))
    producer = connections.producer()
    sent = _send(producer, stream, float(args.rate), args.limit, args.topic)
    producer.flush()
    labels = f", their labels {args.label_delay} events later to {args.labels_topic}" if args.labels_topic else ""
    print(f"produced {sent} events to {args.topic}{labels}", file=sys.stderr)
    return 0


def _send(producer: AsyncProducer, stream: Iterator[Record], rate: float, limit: int | None, topic: str) -> int:
    """Send the records, ``rate`` events a second (labels do not count); how many events were sent."""
    started = time.monotonic()
    sent = 0
    bar = sys.stderr.isatty()
    for record in stream:
        producer.produce(record.topic, record.value, record.key, timestamp=record.timestamp)
        if record.topic != topic:
            continue
        sent += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if sent % 1000 == 0:
            producer.poll()
            producer.check()
            if bar:
                _progress_bar(sent, limit, time.monotonic() - started)
    if bar:
        sys.stderr.write("\n")
    return sent


def _progress_bar(sent: int, limit: int | None, seconds: float) -> None:
    rate = sent / max(seconds, 1e-9)
    if limit:
        filled = int(30 * sent / limit)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {sent:,}/{limit:,}  {rate:,.0f} ev/s")
    else:
        sys.stderr.write(f"\r{sent:,} events  {rate:,.0f} ev/s")
    sys.stderr.flush()


def cmd_export(args: argparse.Namespace) -> int:
    from learner.connections import Connections

    settings = settings_from(args)
    store = Connections(settings).store()
    version = args.snapshot_version if args.snapshot_version is not None else store.head()
    if version is None:
        raise SnapshotMissing(f"{settings.name!r} has no snapshots")
    loaded = store.load(int(version), force=settings.force)
    Path(args.out).write_bytes(pickle.dumps(loaded.state.model, protocol=pickle.HIGHEST_PROTOCOL))
    print(f"wrote {args.out}: {settings.name!r} version {loaded.meta.version}, {loaded.meta.events_learned} events learned")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level not in LOG_LEVELS:  # checked here, not by argparse, so LEARNER_LOG_LEVEL is checked too
        parser.error(f"--log-level (LEARNER_LOG_LEVEL): invalid choice {args.log_level!r} "
                     f"(choose from {', '.join(LOG_LEVELS)})")
    logs.configure(args.log_level, args.log_format)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as error:
        print(f"learner: error: {error}", file=sys.stderr)
        return 2
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = f"--{'-'.join(map(str, first['loc'])).replace('_', '-')}: " if first["loc"] else ""
        print(f"learner: error: {where}{first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except SettingsError as error:  # an environment variable pydantic-settings cannot parse
        print(f"learner: error: {error}", file=sys.stderr)
        return 2
    except EXPECTED_ERRORS as error:
        print(f"learner: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
