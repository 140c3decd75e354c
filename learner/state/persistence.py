"""What a Redis server keeps across a restart, read at start-up (README "Outages").

The fencing epoch only protects the lineage if it never goes backwards: a Redis that restarts
without its data (no persistence) hands out epochs again from 1, and a paused old holder could then
write over a newer lineage. ``INFO persistence`` tells whether the append-only file is on; the RDB
schedule needs ``CONFIG GET save``, which an ACL may (rightly) not allow: then it is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from learner.errors import StateError
from learner.state.failures import translated
from learner.state.replies import as_text
from learner.state.snapshots import SnapshotStore

__all__ = ["Persistence", "check_persistence", "persistence"]


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Persistence:
    """A server's persistence: the AOF, and the RDB schedule ("" none, None when it cannot be read)."""

    aof: bool
    rdb_schedule: str | None

    @property
    def durable(self) -> bool:
        """Whether a restart keeps (nearly) every write: the append-only file is on."""
        return self.aof

    def describe(self) -> str:
        if self.aof:
            return "append-only file on"
        if self.rdb_schedule:
            return (f"RDB snapshots only ({self.rdb_schedule!r}): a crash loses the writes since the last one, the "
                    "fencing epoch among them")
        if self.rdb_schedule == "":
            return "no persistence: a restart loses every snapshot and lets the fencing epoch go back to 1"
        return "no append-only file, and the RDB schedule cannot be read (CONFIG GET is not allowed)"


@translated
def persistence(store: SnapshotStore) -> Persistence:
    """Read what the server of ``store`` (every primary, on a Cluster) keeps across a restart."""
    client = store.redis
    info = _info(client)
    aof = all(int(part.get("aof_enabled", 0)) == 1 for part in info)
    try:
        raw = client.config_get("save")
    except Exception:  # not allowed by an ACL, or not answered: unknown, not an error
        return Persistence(aof, None)
    answer: dict[Any, Any] = raw if isinstance(raw, dict) else {}
    schedule = answer.get("save", answer.get(b"save", ""))
    return Persistence(aof, as_text(schedule) or "")


def check_persistence(store: SnapshotStore, choice: str) -> None:
    """Say (``warn``), refuse (``require``) or ignore a Redis whose fencing epoch could go backwards."""
    if choice == "ignore":
        return
    kept = persistence(store)
    if kept.durable:
        return
    if choice == "require":
        raise StateError(f"Redis has {kept.describe()}; --redis-persistence require refuses it "
                         "(turn on appendonly, or pass --redis-persistence warn)")
    log.warning("Redis has %s: run it with appendonly yes in production (--redis-persistence ignore "
                "silences this)", kept.describe())


def _info(client: Any) -> list[dict[str, Any]]:
    nodes = getattr(client, "PRIMARIES", None)
    if nodes is not None:  # a Cluster client: ask every primary
        answer = client.info("persistence", target_nodes=nodes)
        return [part for part in answer.values()] if isinstance(answer, dict) and all(
            isinstance(v, dict) for v in answer.values()) else [answer]
    return [client.info("persistence")]
