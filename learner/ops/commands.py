"""The operator's commands on a model's snapshots: list, show, pin, delete, roll back, status.

Each prints a table for people by default and JSON with ``--json`` for scripts, and writes what
changes state to the audit log.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

import orjson

from learner.core.evaluation import shown
from learner.core.paired import verdict
from learner.core.status import ServiceStatus
from learner.core.timeline import TimelineEntry
from learner.errors import LearnerError, SnapshotMissing, StateError
from learner.ops.challengers import challenger_rows
from learner.ops.fleet import gather
from learner.ops.output import print_json, when
from learner.settings import Settings
from learner.state.audit import operator
from learner.state.control import ControlPlane
from learner.state.snapshots import SnapshotMeta, SnapshotStore

__all__ = ["delete", "list_snapshots", "pin", "resume", "rollback", "show_log", "show_snapshot", "snapshot_now",
           "status"]


def _first_metric(meta: SnapshotMeta) -> str:
    for name, windows in meta.metrics.items():
        return f"{name}={windows.get('all', float('nan')):.4f}"
    return "—"


def list_snapshots(store: SnapshotStore, as_json: bool) -> int:
    head, pinned = store.head(), store.pinned()
    rows = []
    for version in reversed(store.versions()):
        try:
            meta = store.meta(version)
        except StateError as error:
            rows.append({"version": version, "error": str(error)})
            continue
        rows.append({"version": version, "parent": meta.parent, "created": meta.created,
                     "events_learned": meta.events_learned, "metrics": meta.metrics, "size": meta.size,
                     "pinned": version in pinned, "head": version == head, "reason": meta.reason,
                     "first_metric": _first_metric(meta)})
    if as_json:
        print_json([{k: v for k, v in r.items() if k != "first_metric"} for r in rows])
        return 0
    _snapshot_table(store, rows)
    return 0


def _snapshot_table(store: SnapshotStore, rows: list[dict[str, Any]]) -> None:
    """The history as a table (rich): a version's marks, its parent, when, events, first metric, size, why."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table("", "version", "parent", "created", "events", "metric", "size", "reason", box=box.SIMPLE_HEAD,
                  title=f"snapshots of {store.label}", caption="* head, P pinned", title_justify="left")
    for r in rows:
        if "error" in r:
            table.add_row("", str(r["version"]), "", "", "", "", "", f"unreadable: {r['error']}")
            continue
        table.add_row(("*" if r["head"] else "") + ("P" if r["pinned"] else ""), str(r["version"]),
                      str(r["parent"] or "—"), when(r["created"]), f"{r['events_learned']:,}", r["first_metric"],
                      f"{r['size']:,}", r["reason"] or "")
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def show_snapshot(store: SnapshotStore, version: int, as_json: bool) -> int:
    meta = store.meta(version)
    record = {**asdict(meta), "pinned": version in store.pinned(), "head": version == store.head()}
    if as_json:
        print_json(record)
    else:
        for key, value in record.items():
            text = orjson.dumps(value).decode() if isinstance(value, dict | list) else value
            print(f"{key:>16}: {when(value) if key == 'created' else text}")
    return 0


def pin(store: SnapshotStore, version: int, pinned: bool) -> int:
    store.pin(version, pinned)
    store.audit.append("pin" if pinned else "unpin", f"version {version}")
    print(f"{'pinned' if pinned else 'unpinned'} version {version} of {store.name!r}")
    return 0


def delete(store: SnapshotStore, version: int) -> int:
    if not store.delete(version):
        raise SnapshotMissing(f"{store.name!r} has no snapshot {version}")
    store.audit.append("delete", f"version {version}")
    print(f"deleted version {version} of {store.name!r}")
    return 0


def rollback(store: SnapshotStore, version: int, replay: bool, reason: str, force: bool = False) -> int:
    store.load(version, force)  # all of it verifies and unpickles here, so the running service can adopt it
    previous = store.rollback(version, replay)
    mode = "replay from its offsets" if replay else "continue from the stream position"
    store.audit.append("rollback", f"head {previous} -> {version} ({mode}); reason: {reason or '-'}")
    store.timeline.note(TimelineEntry("rollback", time.time(), version, store.meta(version).events_learned,
                                      operator(), reason, {"from": previous, "replay": replay}))
    print(f"head of {store.name!r} is now version {version} (was {previous}); a running service adopts it "
          f"within 2 s and will {mode}")
    return 0


def resume(store: SnapshotStore) -> int:
    if not ControlPlane(store).resume_learning():
        raise LearnerError(f"the guard of {store.name!r} has not tripped: learning is not stopped")
    store.audit.append("resume", "learning resumed after a guard trip")
    store.timeline.note(TimelineEntry("guard_resume", time.time(), store.head(), who=operator(), why="learner resume"))
    print(f"learning of {store.name!r} resumes (a running service sees it within a second)")
    return 0


def snapshot_now(store: SnapshotStore) -> int:
    answer = ControlPlane(store).request_snapshot()
    if not answer.isdigit():
        raise StateError(f"the service could not snapshot: {answer}")
    print(f"snapshot of {store.name!r} written: version {answer}")
    return 0


def show_log(store: SnapshotStore, as_json: bool, count: int = 100) -> int:
    entries = store.audit.entries(count)
    if as_json:
        print_json([asdict(e) for e in entries])
        return 0
    for e in entries:
        print(f"{when(e.at)}  {e.action:9} {e.who:24} {e.detail}")
    return 0


def _not_running(last: ServiceStatus | None) -> str:
    """What to say when no service reports: stopped cleanly, not heard from since, or never seen."""
    if last is None:
        return "no running service (none has reported in the last 10 s, nor stopped in the last day)"
    learned = f"model version {last.model_version}, {last.events_learned:,} events learned"
    if last.stopped:
        return f"no running service: it stopped cleanly at {when(last.stopped)} ({learned})"
    return (f"no running service: not heard from since {when(last.updated)} ({learned} then); it did not stop "
            "cleanly (killed, crashed, or cut off from Redis)")


def status(store: SnapshotStore, as_json: bool, settings: Settings | None = None) -> int:
    fleet = gather(store, settings)
    challengers = challenger_rows(store) if store.challenger is None else []
    if as_json:
        print_json(fleet.to_json() | {"challengers": challengers})
        return 0
    head, meta = fleet.head, fleet.last_snapshot
    print(f"model {store.label}: head version {head if head is not None else '(none)'}")
    if meta is not None:
        print(f"  last snapshot: version {meta.version} at {when(meta.created)}, {meta.events_learned:,} events learned, "
              f"{_first_metric(meta)}")
    if fleet.guard_tripped:
        print(f"  GUARD TRIPPED: {fleet.guard_tripped}; learning is stopped until `learner resume`")
    lease = fleet.lease
    print(f"  lease: held by {lease.who} (epoch {lease.epoch})" if lease else "  lease: free (no service learns)")
    service = fleet.service
    if service is None:
        print(f"  {_not_running(fleet.last_service)}")
    else:
        metrics = shown(service.metrics)
        if service.fallback:
            print(f"  WARNING at start: {service.fallback}")
        print(f"  running service: model version {service.model_version}, {service.events_learned:,} events learned, "
              f"learning {'on' if service.learning else 'OFF'}, lag {sum(service.lag.values()):,}; {metrics}")
        if labels := service.labels:
            print(f"  labels: {labels['waiting']:,} events waiting; " + ", ".join(
                f"{labels.get(k, 0):,} {k}" for k in ("received", "joined", "expired", "unknown", "duplicate", "early",
                                                      "rejected", "late")))
        for drift in service.drift[-5:]:
            print(f"  drift at {when(drift.at)} after event {drift.event:,}: {drift.detail}")
    if fleet.replicas_problem:
        print(f"  serve replicas: unknown ({fleet.replicas_problem})")
    elif fleet.replicas:
        print(f"  serve replicas: {len(fleet.replicas)}")
        for beat in fleet.replicas:
            served = ("no model yet" if beat.model_version is None else
                      f"version {beat.model_version} ({beat.source}, {beat.learned:,} events learned)")
            print(f"    {beat.replica}: {served}, partitions {','.join(map(str, beat.partitions)) or 'none'}, "
                  f"{beat.predicted:,} predicted")
    if challengers:
        print(f"  challengers: {len(challengers)} (`learner challengers list` for the table)")
    for row in challengers:
        paired = ", ".join(f"{n} {w['all']:.4f} (champion {row['champion'].get(n, {}).get('all', 0):.4f})"
                           for n, w in row["metrics"].items() if "all" in w) or "nothing paired yet"
        difference = row["difference"]
        standing = "" if not difference else f"; {verdict(difference['low'], difference['high'])}"
        print(f"    {row['challenger']}: {row['spec']} from version {row['from_version']}{' (fork)' if row['fork'] else ''}, "
              f"{row['events_learned']:,} events learned, {'running' if row['running'] else 'not running'}; "
              f"{row['paired_events']:,} paired: {paired}{standing}")
    return 0
