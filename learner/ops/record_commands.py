"""What the services wrote down (README "History and timeline"): ``learner timeline``, ``learner history``
and ``learner index``. Tables on a terminal (rich), ``--json`` for scripts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from learner.ops.options import REDIS, add, settings_from
from learner.ops.output import json_flag, print_json, when

__all__ = ["add_record_commands"]


def add_record_commands(commands: Any) -> None:
    timeline = commands.add_parser("timeline", help="what happened to the model: snapshots, rollbacks, promotions, "
                                   "drift, guard trips and resumes, lease changes")
    history = commands.add_parser("history", help="the learner's figures every 5 s: events, events/s, lag, metrics")
    for parser in (timeline, history):
        add(parser, *REDIS, "challenger")
        parser.add_argument("--count", type=int, default=50, help="the newest COUNT entries (50)")
        json_flag(parser)
    timeline.set_defaults(handler=cmd_timeline)
    history.set_defaults(handler=cmd_history)
    index = commands.add_parser("index", help="the models of this Redis (each learner adds its own when it starts)")
    add(index, *REDIS)
    index.add_argument("--remove", metavar="NAME", help="take NAME off the list (its keys stay)")
    json_flag(index)
    index.set_defaults(handler=cmd_index)


def _table(title: str, *columns: str) -> Any:
    from rich import box
    from rich.table import Table

    return Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left")


def _print(table: Any) -> None:
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 160).print(table)


def cmd_timeline(args: argparse.Namespace) -> int:
    from learner.connections import Connections

    store = Connections(settings_from(args)).store()
    entries = store.timeline.entries(args.count)
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return 0
    table = _table(f"timeline of {store.label}", "time", "kind", "version", "events", "who", "why")
    for entry in entries:
        table.add_row(when(entry.at), entry.kind, "—" if entry.version is None else str(entry.version),
                      "—" if entry.events is None else f"{entry.events:,}", entry.who, entry.why)
    _print(table)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from learner.connections import Connections

    store = Connections(settings_from(args)).store()
    points = store.history.points(args.count)
    if args.json:
        print_json([orjson.loads(point.to_json()) for point in points])
        return 0
    table = _table(f"history of {store.label}", "time", "events", "learned", "version", "events/s", "lag", "metrics")
    for point in points:
        metrics = "  ".join(f"{name} {' / '.join(f'{v:.4f}' for v in windows.values())}"
                            for name, windows in point.metrics.items()) or "—"
        table.add_row(when(point.at), f"{point.events_done:,}", f"{point.events_learned:,}", str(point.version),
                      f"{point.rate:,.0f}", f"{point.lag:,}", metrics)
    _print(table)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from learner.connections import Connections
    from learner.state.index import ModelIndex

    store = Connections(settings_from(args)).store()
    index = ModelIndex.of(store)
    if args.remove:
        index.remove(args.remove)
        print(f"{args.remove!r} is off the list of models (its keys stay)")
        return 0
    names = index.names()
    if args.json:
        print_json(names)
    else:
        print("\n".join(names) if names else "no model has run on this Redis yet")
    return 0
