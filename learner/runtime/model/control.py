"""The model process's side of the control plane: four times a second, hand each part its news.

The Redis thread (:mod:`learner.runtime.model.state_sync`) publishes the status this loop gives it and
brings back what operators changed; here, at a batch boundary, snapshot requests go to the
snapshot coordinator, the guard's stop flag to the guard keeper, a moved head to rollback adoption,
what it says of challengers to the experiment watch; every few seconds the status also becomes a
point of the metric history.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from learner.core.status import ServiceStatus
from learner.runtime.model.experiment_watch import ExperimentWatch
from learner.runtime.model.guard import GuardKeeper
from learner.runtime.model.history_recorder import HistoryRecorder
from learner.runtime.model.rollback import RollbackAdopter
from learner.runtime.model.snapshot_coordinator import SnapshotCoordinator
from learner.runtime.model.state_sync import StateSync
from learner.state.control import POLL_SECONDS

__all__ = ["ControlLoop"]


class ControlLoop:
    """Publishes the status and dispatches what the control plane showed."""

    def __init__(self, sync: StateSync, status: Callable[[], ServiceStatus], snapshots: SnapshotCoordinator,
                 adopter: RollbackAdopter, guard: GuardKeeper, scores: ExperimentWatch,
                 history_every: float) -> None:
        self.sync, self.status = sync, status
        self.snapshots, self.adopter, self.guard, self.scores = snapshots, adopter, guard, scores
        self.history = HistoryRecorder(sync, history_every)
        self._published = 0.0

    def poll_if_due(self) -> bool:
        """Publish and dispatch if a poll is due; True when this process is to stop (a retired challenger)."""
        now = time.monotonic()
        if now - self._published >= POLL_SECONDS:
            self._published = now
            status = self.status()
            self.sync.publish(status)
            self.history.record_if_due(status)
        view = self.sync.take_view()
        if view is not None:
            self.snapshots.requested(view.requests)
            self.guard.follow(view.guard_stop)
            self.scores.follow(view.challengers)
            if self.scores.retired(view):
                return True
            self.adopter.consider(view)
        self.adopter.adopt_if_loaded()
        return False
