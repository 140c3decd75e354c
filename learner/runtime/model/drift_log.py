"""What the model process does with a drift detection the gateway reported (README "Monitoring").

It logs it, counts it, keeps the last ``DRIFTS_KEPT`` for ``/status`` and ``learner status``, puts
it on the model's timeline (what drifted, at which version and event), and, unless
``--no-snapshot-on-drift``, takes a snapshot just after it so that operators can roll back to
just before.
"""

from __future__ import annotations

import logging

from learner.core.drift import Detection
from learner.core.timeline import TimelineEntry
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.snapshot_coordinator import SnapshotCoordinator
from learner.runtime.model.state_sync import StateSync
from learner.settings import Settings

__all__ = ["DRIFTS_KEPT", "DriftLog"]

log = logging.getLogger(__name__)

#: Drift detections kept for /status and ``learner status``.
DRIFTS_KEPT = 20


class DriftLog:
    """The drift detections of one learner process."""

    def __init__(self, model: LiveModel, snapshots: SnapshotCoordinator, sync: StateSync, monitor: LearnerMetrics,
                 settings: Settings) -> None:
        self.model, self.snapshots, self.sync, self.monitor, self.settings = model, snapshots, sync, monitor, settings
        self.recent: list[Detection] = []

    def add(self, detection: Detection) -> None:
        log.warning("drift detected (%s) after event %d: %s", detection.kind, detection.event, detection.detail)
        self.monitor.drift.labels(self.settings.lineage, detection.kind).inc()
        self.recent = [*self.recent, detection][-DRIFTS_KEPT:]
        entry = TimelineEntry("drift", detection.at, self.model.version, self.model.step.learned, why=detection.detail,
                              detail={"kind": detection.kind, "what": detection.what, "event": detection.event})
        timeline = self.sync.store.timeline
        self.sync.submit("timeline", lambda: timeline.note(entry))
        if self.settings.snapshot_on_drift and self.model.learning:  # stopped: nothing new to keep
            self.snapshots.early(f"drift: {detection.detail}")
