"""What the dashboard reads from Redis (README "Dashboard"): the models of a Redis and, for each, its
status, lease, guard, snapshots, timeline, challengers and metric history.

It holds no signing key and reads no snapshot blob: snapshot metadata is read as JSON and shown as
not verified (:class:`~learner.core.overview.SnapshotRow`), and nothing is ever unpickled. Every
call only reads.
"""

from __future__ import annotations

import time

import orjson
import redis

from learner.core.history import HistoryPoint
from learner.core.overview import ChallengerView, ModelOverview, SnapshotRow
from learner.core.status import Heartbeat
from learner.errors import StateError
from learner.state.control import ControlPlane
from learner.state.failures import translated
from learner.state.index import ModelIndex
from learner.state.lease import holder
from learner.state.replies import as_bytes
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotMeta, SnapshotStore

__all__ = ["SNAPSHOT_ROWS", "TIMELINE_ENTRIES", "Catalog"]

#: The newest versions the table shows, and the newest timeline entries read.
SNAPSHOT_ROWS = 50
TIMELINE_ENTRIES = 500


class Catalog:
    """Read-only views of the models of one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._index = ModelIndex(client)

    def names(self) -> list[str]:
        return self._index.names()

    def _store(self, name: str, challenger: str | None = None) -> SnapshotStore:
        # A store without a key: only its readers of statuses, streams and registries are used here.
        return SnapshotStore(self._redis, name, Signer(None), challenger=challenger)

    def overview(self, name: str, replicas: list[Heartbeat] | None = None,
                 replicas_problem: str | None = None) -> ModelOverview:
        store = self._store(name)
        control = ControlPlane(store)
        lease = holder(store)
        return ModelOverview(name, store.head(), control.service_status(), control.last_service_status(),
                             None if lease is None else lease.as_dict(), control.guard_stop(), self._snapshots(store),
                             store.timeline.entries(TIMELINE_ENTRIES), self._challengers(store), replicas,
                             replicas_problem, time.time())

    def history(self, name: str, since: float = 0.0, count: int = 20_000) -> list[HistoryPoint]:
        """The newest ``count`` points of the model's history at or after ``since``, oldest first."""
        return self._store(name).history.points(count, since)

    @translated
    def _snapshots(self, store: SnapshotStore) -> list[SnapshotRow]:
        versions = store.versions()[-SNAPSHOT_ROWS:]
        head, pinned = store.head(), store.pinned()
        pipe = self._redis.pipeline(transaction=False)
        for version in versions:
            pipe.hget(store.keys.snapshot(version), "meta")
        rows = []
        for version, raw in zip(versions, pipe.execute(), strict=True):
            rows.append(_row(version, as_bytes(raw), version == head, version in pinned))
        return rows[::-1]

    def _challengers(self, store: SnapshotStore) -> list[ChallengerView]:
        views = []
        for enrolment in store.challengers.all():
            control = ControlPlane(store.lineage(enrolment.challenger))
            live = control.service_status()
            status = live or control.last_service_status()
            views.append(ChallengerView(enrolment.challenger, enrolment.spec, enrolment.from_version, enrolment.fork,
                                        live is not None, status.events_learned if status else 0,
                                        (status.pairing if status else None) or {}))
        return views


def _row(version: int, raw: bytes | None, head: bool, pinned: bool) -> SnapshotRow:
    """A table row from a snapshot's metadata as stored (unverified), or one that says why there is none."""
    try:
        if raw is None:
            raise StateError("deleted while being read")
        meta = SnapshotMeta.from_json(raw)
    except (StateError, orjson.JSONDecodeError, TypeError) as error:
        return SnapshotRow(version, None, 0.0, 0, "", {}, "", 0, pinned, head, problem=f"unreadable: {error}")
    return SnapshotRow(version, meta.parent, meta.created, meta.events_learned, meta.reason, meta.metrics,
                       meta.model_spec, meta.size, pinned, head)
