"""The command line of experiments (README "Experiments"): ``learner backtest`` and ``learner challengers``.

``learner run --role challenger`` is ``learner run``'s own (the role table); these are the commands
an operator runs beside it. Imports stay inside the handlers, as in :mod:`learner.ops.cli`.
"""

from __future__ import annotations

import argparse
from typing import Any

from learner.ops import hash_seed
from learner.ops.options import KAFKA, REDIS, add, settings_from
from learner.ops.output import json_flag

__all__ = ["add_experiment_commands"]


def add_experiment_commands(commands: Any) -> None:
    _add_backtest(commands)
    _add_challengers(commands)
    promote = commands.add_parser("promote", help="make a challenger's model the champion's head; a running "
                                  "service adopts it")
    add(promote, *REDIS, "force")
    promote.add_argument("--challenger", dest="promoted", required=True, metavar="NAME", help="the challenger")
    promote.add_argument("--reason", default="", help="why (kept in the audit log and the version's metadata)")
    promote.set_defaults(handler=cmd_promote)


def cmd_promote(args: argparse.Namespace) -> int:
    from learner.connections import Connections
    from learner.ops.promote import promote_command

    settings = settings_from(args)
    return promote_command(Connections(settings).store(), args.promoted, args.reason, settings.force)


def _add_backtest(commands: Any) -> None:
    backtest = commands.add_parser("backtest", help="replay the retained input from a version through other specs; "
                                   "compare each with the live model on the same events")
    add(backtest, *KAFKA, *REDIS, "input_topic", "labels_topic", "metric", "label_ttl", "label_early_window",
        "max_pending", "max_event_bytes", "force")
    start = backtest.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-version", dest="start_version", type=int, metavar="VERSION",
                       help="start from this version's offsets")
    start.add_argument("--from-time", dest="start_time", metavar="TIME", help="start from the newest version created "
                       "at or before TIME (ISO 8601, or seconds since the epoch)")
    backtest.add_argument("--model", dest="specs", action="append", default=[], metavar="MODEL",
                          help="a preset or package.module:callable to replay (repeatable)")
    backtest.add_argument("--fork", dest="replay_fork", action="store_true",
                          help="replay the start version's own model (a copy; no --model needed)")
    backtest.add_argument("--until", choices=("head", "now"), default="head",
                          help="replay up to the latest snapshot's offsets (head) or the topics' end (now)")
    backtest.add_argument("--save-as", dest="save_as", metavar="CHALLENGER",
                          help="keep the replayed model (one --model, or --fork) as this new challenger, ready to run "
                          "on (`learner run --role challenger`) and to promote")
    json_flag(backtest)
    backtest.set_defaults(handler=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    hash_seed.pin(settings)  # the live column replays the model: with its own hash seed, as it ran
    from learner.ops.backtest import BacktestRequest, run_backtest

    return run_backtest(settings, BacktestRequest(tuple(args.specs), args.start_version, args.start_time,
                                                  args.replay_fork, args.until, args.json, args.save_as))


def _add_challengers(commands: Any) -> None:
    challengers = commands.add_parser("challengers", help="a model's challengers: list them, remove one")
    actions = challengers.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each challenger: its spec, where it began, what it has learned")
    add(listing, *REDIS)
    json_flag(listing)
    listing.set_defaults(handler=cmd_challengers)
    remove = actions.add_parser("remove", help="delete a stopped challenger: its registration and its snapshots")
    add(remove, *REDIS)
    remove.add_argument("--challenger", dest="removed", required=True, metavar="NAME", help="the challenger to remove")
    remove.set_defaults(handler=cmd_challengers)


def cmd_challengers(args: argparse.Namespace) -> int:
    from learner.connections import Connections
    from learner.ops.challengers import list_challengers, remove_challenger

    store = Connections(settings_from(args)).store()
    if args.action == "list":
        return list_challengers(store, args.json)
    return remove_challenger(store, args.removed)
