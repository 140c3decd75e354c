"""Rollback adoption: a running service continues from the version an operator made the head.

Seen at the next look at the control plane (four times a second), adopted at the next batch
boundary, without a restart. Without ``--replay`` the stream continues from the live position (the
learning since that version is discarded), or from the version's own position if that is further
(a roll forward must not learn anything twice); the position is recorded with the rollback, so a
restart before the next snapshot resumes there. With ``--replay`` the gateway seeks back to the
version's offsets and the input is learned again, once.

A version that does not load here (another river version, a corrupt blob) is refused openly: the
service logs it, records it in the audit log and serves on with the model it has; its snapshots
are refused by the write script until the head is a version it can load.
"""

from __future__ import annotations

import logging

from learner.core.positions import furthest
from learner.errors import SnapshotMissing, SnapshotRefused
from learner.runtime import protocol as p
from learner.runtime.gateway_link import GatewayLink
from learner.runtime.live_model import LiveModel
from learner.runtime.monitor import Monitor
from learner.runtime.restore import restored_from
from learner.runtime.snapshot_coordinator import SnapshotCoordinator
from learner.settings import Settings
from learner.state.control import ControlView
from learner.state.snapshots import SnapshotStore

__all__ = ["RollbackAdopter"]

log = logging.getLogger(__name__)


class RollbackAdopter:
    """Adopts a new head that this process did not write."""

    def __init__(self, model: LiveModel, store: SnapshotStore, link: GatewayLink, snapshots: SnapshotCoordinator,
                 monitor: Monitor, settings: Settings) -> None:
        self.model, self.store, self.link, self.snapshots = model, store, link, snapshots
        self.monitor, self.settings = monitor, settings
        self.refused: int | None = None  # a head this service could not adopt (not tried again)

    def consider(self, view: ControlView) -> None:
        """Adopt the head the control plane shows, if it is a rollback this process has not adopted."""
        if self.snapshots.busy or view.head is None:
            return  # a snapshot of ours may be moving the head right now: look again after it
        if view.rollbacks != self.snapshots.rollbacks or view.head not in (self.model.head, self.refused):
            self.snapshots.rollbacks = view.rollbacks
            self.adopt(view.head)

    def adopt(self, version: int) -> None:
        """Continue from snapshot ``version`` at this event boundary (see the module's docstring)."""
        try:
            loaded = self.store.load(version, force=self.settings.force)
            record = self.store.last_rollback()
            replay = record is not None and record.version == version and record.replay
            position = loaded.meta.position() if replay else furthest(self.model.position, loaded.meta.position())
            restored = restored_from(loaded, self.settings, position)
        except (SnapshotRefused, SnapshotMissing) as error:  # the CLI checks too; another host may differ
            log.error("cannot adopt version %d: %s; serving version %s on, and its snapshots are refused "
                      "until the head is a version this service can load", version, error, self.model.version)
            self.store.audit.append("rollback", f"version {version} refused by the running service: {error}")
            self.refused = version
            return
        self.refused = None
        seek = position != self.model.position
        self.model.replace(restored, seek=seek)
        self.snapshots.reason = ""  # the state a pending drift snapshot was meant to keep is gone
        if seek:
            self.link.drop_batches()
            self.link.send(p.Seek(self.model.epoch, position, restored.scorecard, restored.step.kind))
        else:
            self.link.send(p.Rescore(restored.scorecard, restored.step.kind))
        if not replay:
            self.store.record_position(version, position)
        self.monitor.version.labels(self.settings.name).set(version)
        log.warning("adopted version %d of %r (%s); %d events learned", version, self.settings.name,
                    "replaying from its offsets" if replay else "continuing from the stream position",
                    restored.step.learned)
