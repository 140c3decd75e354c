"""``learner challengers list|remove``: a model's challengers, where each began and where it stands.

What a challenger has learned and how it pairs with its champion come from its own lineage: the
status its process publishes (while it runs, and for a day after it stopped), or else its head
snapshot's metadata (signed, never unpickled here).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from learner.core.paired import CONFIDENCE, shown
from learner.errors import UsageError
from learner.ops.fleet import FleetStatus, gather
from learner.state.challengers import Enrolment
from learner.state.snapshots import SnapshotStore

__all__ = ["challenger_rows", "list_challengers", "remove_challenger"]


def _row(enrolment: Enrolment, fleet: FleetStatus) -> dict[str, Any]:
    service, meta = fleet.service or fleet.last_service, fleet.last_snapshot
    pairing = (service.pairing if service else None) or (meta.extra.get("pairing") if meta else None) or {}
    return {
        "challenger": enrolment.challenger, "spec": enrolment.spec, "from_version": enrolment.from_version,
        "fork": enrolment.fork, "created": enrolment.created, "head": fleet.head,
        "running": fleet.service is not None, "lease": None if fleet.lease is None else fleet.lease.who,
        "events_learned": service.events_learned if service else meta.events_learned if meta else 0,
        "paired_events": pairing.get("paired_events", 0), "champion": pairing.get("champion", {}),
        "metrics": pairing.get("metrics", {}), "difference": pairing.get("difference"),
        "waiting": pairing.get("waiting", {}), "unpaired": pairing.get("unpaired", 0),
        "all": service.metrics if service else meta.metrics if meta else {},
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
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"challengers of {store.label}", box=box.SIMPLE_HEAD)
    for column in ("challenger", "spec", "from", "learned", "paired", "metric", "challenger ", "champion",
                   "loss difference", f"{CONFIDENCE:.0%} interval", "verdict", "process"):
        table.add_column(column.strip(), justify="left" if column in ("challenger", "spec", "verdict", "process",
                                                                      "metric") else "right")
    for row in rows:
        started = f"v{row['from_version']}" + (" fork" if row["fork"] else "")
        process = "running" if row["running"] else f"lease: {row['lease']}" if row["lease"] else "stopped"
        names = list(row["metrics"]) or ["—"]
        paired = row["paired_events"] > 0  # before the first pair, no metric exists yet: "—", never 0.0000
        ours = "\n".join(_value(row["metrics"], name) if paired else "—" for name in names)
        theirs = "\n".join(_value(row["champion"], name) if paired else "—" for name in names)
        difference = shown(row["difference"]) if paired else ("—", "—", "—")
        table.add_row(row["challenger"], row["spec"], started, f"{row['events_learned']:,}", f"{row['paired_events']:,}",
                      "\n".join(names), ours, theirs, *difference, process)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def _value(metrics: dict[str, dict[str, float]], name: str) -> str:
    value = metrics.get(name, {}).get("all")
    return "—" if value is None else f"{value:.4f}"


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
