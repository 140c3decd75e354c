"""Rollback adoption: a running service continues from the version an operator made the head.

Seen at the next look at the control plane (four times a second); the version is loaded (verified,
unpickled) on the Redis thread while the model streams on, and swapped in at the next batch
boundary, without a restart. Without ``--replay`` the stream continues from the live position
(the learning since that version is discarded), or from the version's own position if that is
further (a roll forward must not learn anything twice); the position is recorded with the
rollback, so a restart before the next snapshot resumes there. With ``--replay`` the gateway seeks
back to the version's offsets and the input is learned again, once.

A version that does not load here (another river version, a corrupt blob) is refused openly: the
service logs it, records it in the audit log and serves on with the model it has; its snapshots
are refused by the write script until the head is a version it can load.

A head that moved *without* a rollback (the rollback count did not grow) is not an operator's
doing: Redis lost a write of this process's (an asynchronous replica promoted in a failover, a
restart that lost the last writes). The model here is ahead of what Redis kept, and consistent
with its own position, so it is not replaced: it is written again as the next snapshot, on top of
the head Redis shows. Nothing is lost and nothing is learned twice.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass

from learner.core.positions import furthest
from learner.errors import RedisUnavailable, SnapshotRefused, StateError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.model.late_order import LateOrder
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.restore import restored_from
from learner.runtime.model.snapshot_coordinator import SnapshotCoordinator
from learner.runtime.model.state_sync import StateSync
from learner.settings import Settings
from learner.state.control import ControlView
from learner.state.snapshots import LoadedSnapshot, RollbackRecord, SnapshotStore

__all__ = ["RollbackAdopter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Fetched:
    """A version loaded for adoption, with the rollback record that says whether to replay."""

    loaded: LoadedSnapshot
    record: RollbackRecord | None


class RollbackAdopter:
    """Adopts a new head that this process did not write."""

    def __init__(self, model: LiveModel, store: SnapshotStore, link: GatewayLink, snapshots: SnapshotCoordinator,
                 sync: StateSync, monitor: LearnerMetrics, settings: Settings, late: LateOrder) -> None:
        self.model, self.store, self.link, self.snapshots, self.sync = model, store, link, snapshots, sync
        self.monitor, self.settings, self.late = monitor, settings, late
        self.refused: int | None = None  # a head this service could not adopt (not tried again)
        self._loading: tuple[int, int, Future[_Fetched]] | None = None  # version, rollback count, the load

    @property
    def loading(self) -> bool:
        return self._loading is not None

    def consider(self, view: ControlView) -> None:
        """Start loading the head the control plane shows, if it is a rollback this process has not adopted.

        The rollback count the snapshot write checks moves only once the version is adopted: a snapshot
        of the model being replaced is refused meanwhile, even after a rollback to the head itself.
        """
        if self._loading is not None or self.snapshots.busy or view.head is None:
            return  # a snapshot of ours may be moving the head right now: look again after it
        if view.rollbacks > self.snapshots.rollbacks:
            self.fetch(view.head, view.rollbacks)
        elif view.taken_at <= self.snapshots.written_at:
            return  # polled before our last snapshot moved the head: it shows the head before it
        elif view.rollbacks < self.snapshots.rollbacks or view.head not in (self.model.head, self.refused):
            self._rebase(view)

    def _rebase(self, view: ControlView) -> None:
        """Redis lost writes of ours (see the module's docstring): save this model again, on top of what it kept."""
        assert view.head is not None
        log.warning("the head of %r is %d, not %s, and no rollback happened: Redis lost writes of this process (a "
                    "failover, a restart); this model is ahead of it and is saved again on top of version %d",
                    self.settings.name, view.head, self.model.head, view.head)
        detail = f"head {self.model.head} lost by Redis (now {view.head}); the running service saves its model again"
        self.sync.submit("audit", lambda: self.store.audit.append("lost write", detail))
        self.model.rebase(view.head)
        self.snapshots.rebased(view.rollbacks)

    def fetch(self, version: int, rollbacks: int) -> None:
        """Load ``version`` on the Redis thread; :meth:`adopt_if_loaded` swaps it in when it is there."""
        force = self.settings.force
        future = self.sync.request("load", lambda: _Fetched(self.store.load(version, force=force),
                                                            self.store.last_rollback()))
        self._loading = (version, rollbacks, future)
        self.snapshots.hold()

    def adopt_if_loaded(self) -> None:
        """At a batch boundary: adopt the version being loaded, once it is."""
        if self._loading is None or not self._loading[2].done():
            return
        version, rollbacks, future = self._loading
        self._loading = None
        self.snapshots.release()
        try:
            fetched = future.result()
        except RedisUnavailable as error:  # the next look at the control plane tries again
            log.warning("cannot load version %d now (%s); trying again when Redis answers", version, error)
            return
        except StateError as error:
            self.snapshots.adopted(rollbacks)
            self._refuse(version, error)
            return
        self.snapshots.adopted(rollbacks)
        self.adopt(version, fetched)

    def _refuse(self, version: int, error: Exception) -> None:
        log.error("cannot adopt version %d: %s; serving version %s on, and its snapshots are refused until the head "
                  "is a version this service can load", version, error, self.model.version)
        detail = f"version {version} refused by the running service: {error}"
        self.sync.submit("audit", lambda: self.store.audit.append("rollback", detail))
        self.refused = version

    def adopt(self, version: int, fetched: _Fetched) -> None:
        """Continue from snapshot ``version`` at this event boundary (see the module's docstring)."""
        record = fetched.record
        replay = record is not None and record.version == version and record.replay
        meta = fetched.loaded.meta
        position = meta.position() if replay else furthest(self.model.position, meta.position())
        try:
            restored = restored_from(fetched.loaded, self.settings, position)
        except SnapshotRefused as error:
            self._refuse(version, error)
            return
        self.refused = None
        seek = position != self.model.position
        self.model.replace(restored, seek=seek)
        self.snapshots.replaced()
        if seek:
            self.link.drop_batches()
            decided = self.late.decided()
            self.link.send(p.Seek(self.model.epoch, position, restored.scorecard, restored.step.kind,
                                  dict(self.model.checkpoint.marks), decided))
        else:
            self.link.send(p.Rescore(restored.scorecard, restored.step.kind))
        if not replay:
            self.sync.submit("position", lambda: self.store.record_position(version, position))
        self.monitor.version.labels(self.settings.lineage).set(version)
        log.warning("adopted version %d of %r (%s); %d events learned", version, self.settings.name,
                    "replaying from its offsets" if replay else "continuing from the stream position",
                    restored.step.learned)
