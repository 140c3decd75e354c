"""``learner dashboard``: the read-only web page of every model of a Redis (README "Dashboard")."""

from __future__ import annotations

import argparse
from typing import Any

from learner.ops.options import KAFKA, REDIS, add, settings_from

__all__ = ["add_dashboard_command"]

#: Its options: where the models are (no --name: it shows them all; no signing key: it verifies nothing
#: and unpickles nothing), the replicas' Kafka, and where it listens.
OPTIONS = (*KAFKA, *(o for o in REDIS if o not in ("name", "signing_key", "insecure_no_signing")), "startup_timeout")
#: Its own settings, under shorter flags: --host, --port, --token-file, --max-connections.
OWN = ("dashboard_host", "dashboard_port", "dashboard_token_file", "dashboard_max_connections",
       "dashboard_insecure_no_token")


def add_dashboard_command(commands: Any) -> None:
    dashboard = commands.add_parser("dashboard", help="a live, read-only web page of every model of a Redis: learning "
                                    "curves, timeline, snapshots, challengers, replicas")
    add(dashboard, *OPTIONS)
    add(dashboard, *OWN, drop="dashboard_")
    dashboard.set_defaults(handler=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from learner.runtime.dashboard.server import serve

    return serve(settings_from(args))
