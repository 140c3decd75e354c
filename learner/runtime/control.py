"""The model process's side of the control plane: look four times a second, hand each part its news.

One poll (:meth:`learner.state.control.ControlPlane.poll`) publishes the service's status and
returns what operators changed: snapshot requests go to the snapshot coordinator, the guard's
stop flag to the guard keeper, a moved head to rollback adoption.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from learner.runtime.guard import GuardKeeper
from learner.runtime.rollback import RollbackAdopter
from learner.runtime.snapshot_coordinator import SnapshotCoordinator
from learner.state.control import POLL_SECONDS, ControlPlane

__all__ = ["ControlLoop"]


class ControlLoop:
    """Polls the control plane when due and dispatches what it saw."""

    def __init__(self, control: ControlPlane, status: Callable[[], dict[str, Any]], snapshots: SnapshotCoordinator,
                 adopter: RollbackAdopter, guard: GuardKeeper) -> None:
        self.control, self.status = control, status
        self.snapshots, self.adopter, self.guard = snapshots, adopter, guard
        self._polled = 0.0

    def poll_if_due(self) -> None:
        if time.monotonic() - self._polled >= POLL_SECONDS:
            self.poll()

    def poll(self) -> None:
        self._polled = time.monotonic()
        view = self.control.poll(self.status())
        self.snapshots.requests += view.requests
        self.guard.follow(view.guard_stop)
        self.adopter.consider(view)
