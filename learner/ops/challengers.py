"""``learner challengers list|remove``: a model's challengers, where each began and where it stands.

What a challenger has learned comes from its own lineage: the status its running process
publishes (fresher) or else its head snapshot's metadata (signed, never unpickled here).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from learner.errors import UsageError
from learner.ops.fleet import FleetStatus, gather
from learner.state.challengers import Enrolment
from learner.state.snapshots import SnapshotStore

__all__ = ["challenger_rows", "list_challengers", "remove_challenger"]


def _row(enrolment: Enrolment, fleet: FleetStatus) -> dict[str, Any]:
    service, meta = fleet.service, fleet.last_snapshot
    return {
        "challenger": enrolment.challenger, "spec": enrolment.spec, "from_version": enrolment.from_version,
        "fork": enrolment.fork, "created": enrolment.created, "head": fleet.head,
        "running": service is not None, "lease": None if fleet.lease is None else fleet.lease.who,
        "events_learned": service.events_learned if service else meta.events_learned if meta else 0,
        "metrics": service.metrics if service else meta.metrics if meta else {},
    }


def challenger_rows(store: SnapshotStore) -> list[dict[str, Any]]:
    """One row per challenger of the model, in name order."""
    return [_row(e, gather(store.lineage(e.challenger))) for e in store.challengers.all()]


def list_challengers(store: SnapshotStore, as_json: bool) -> int:
    rows = challenger_rows(store)
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not rows:
        print(f"{store.label} has no challengers (start one with `learner run --role challenger`)")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"challengers of {store.label}")
    for column in ("challenger", "spec", "from", "head", "events learned", "metrics", "process"):
        table.add_column(column, justify="right" if column in ("from", "head", "events learned") else "left")
    for row in rows:
        metrics = "\n".join(f"{name} {windows['all']:.4f}" for name, windows in row["metrics"].items()
                            if "all" in windows) or "—"
        started = f"v{row['from_version']}" + (" (fork)" if row["fork"] else "")
        process = "running" if row["running"] else f"lease: {row['lease']}" if row["lease"] else "stopped"
        table.add_row(row["challenger"], row["spec"], started, "—" if row["head"] is None else f"v{row['head']}",
                      f"{row['events_learned']:,}", metrics, process)
    Console().print(table)
    return 0


def remove_challenger(store: SnapshotStore, challenger: str) -> int:
    """Delete a challenger: its registration and its lineage. Refused while a process holds its lease."""
    lineage = store.lineage(challenger)
    fleet = gather(lineage)
    if fleet.lease is not None:
        raise UsageError(f"{lineage.label} is running ({fleet.lease.who} holds its lease): stop it first")
    if not store.challengers.remove(challenger):
        raise UsageError(f"{store.label} has no challenger {challenger!r}")
    store.audit.append("challenger-removed", challenger)
    print(f"removed {lineage.label}")
    return 0
