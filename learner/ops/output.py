"""How the operator commands print: ``--json`` for scripts, times in local time as tables show them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from learner.ops.options import env_flag

__all__ = ["json_flag", "print_json", "when"]


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", default=env_flag("json"), help="JSON for scripts [env LEARNER_JSON=1]")


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


def when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
