"""The guard at run time (SPEC R-GUARD): arming it, and what happens when it trips.

The rule itself is pure (:mod:`learner.core.guard`); the gateway watches the guarded rolling
metric event by event (it scores every prediction). This keeps the reference current (the newest
pinned snapshot's value, looked up after each report), and when the gateway reports a trip: stops
learning (recorded in Redis, so it survives a restart), rolls back to that pinned version, keeps
predicting, and waits for ``learner resume``.
"""

from __future__ import annotations

import logging

from learner.core.guard import Guard
from learner.errors import SnapshotMissing, SnapshotRefused
from learner.runtime import protocol as p
from learner.runtime.gateway_link import GatewayLink
from learner.runtime.live_model import LiveModel
from learner.runtime.monitor import Monitor
from learner.runtime.rollback import RollbackAdopter
from learner.runtime.snapshot_coordinator import SnapshotCoordinator
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.snapshots import SnapshotStore

__all__ = ["GuardKeeper"]

log = logging.getLogger(__name__)


class GuardKeeper:
    """Arms the gateway's guard watch, and acts on its trips and on the operator's resume."""

    def __init__(self, model: LiveModel, store: SnapshotStore, control: ControlPlane, link: GatewayLink,
                 snapshots: SnapshotCoordinator, adopter: RollbackAdopter, monitor: Monitor,
                 settings: Settings) -> None:
        self.model, self.store, self.control, self.link = model, store, control, link
        self.snapshots, self.adopter, self.monitor, self.settings = snapshots, adopter, monitor, settings
        self.armed: p.ArmedGuard | None = None

    def rule(self) -> Guard | None:
        """The guard ``--guard-margin`` asks for: on the first metric, over the rolling window."""
        evaluation = self.model.scorecard.evaluation
        if self.settings.guard_margin is None or not evaluation.tracked:
            return None
        name = evaluation.tracked[0].name
        window = str(evaluation.window) if evaluation.window else "all"
        return Guard(self.settings.guard_margin, name, window, evaluation.bigger_is_better(name))

    def rearm(self) -> None:
        """Tell the gateway what to compare with: the newest pinned snapshot (nothing while stopped)."""
        rule = self.rule() if self.model.learning else None
        armed = None
        if rule is not None and (pinned := self.store.pinned()):
            try:
                reference = rule.reference(self.store.meta(max(pinned)).metrics)
            except (SnapshotMissing, SnapshotRefused) as error:
                log.warning("the guard cannot read pinned version %d: %s", max(pinned), error)
                reference = None
            armed = None if reference is None else p.ArmedGuard(rule, reference, max(pinned))
        if armed != self.armed:
            self.armed = armed
            self.link.send(p.ArmGuard(armed))

    def tripped(self, current: float) -> None:
        """The gateway saw the rolling metric fall too far: stop learning, roll back, keep predicting."""
        armed = self.armed
        if armed is None or not self.model.learning:
            return
        rule, good = armed.rule, armed.version
        reason = (f"{rule.metric} over the last {rule.window} fell to {current:.4f}, from {armed.reference:.4f} "
                  f"in pinned version {good} (margin {rule.margin})")
        log.error("GUARD TRIPPED: %s; learning stops, rolling back to version %d, predictions go on", reason, good)
        self.control.stop_learning(reason)
        self.store.audit.append("guard", f"tripped: {reason}; rolled back to {good}")
        self.store.rollback(good, replay=False)
        self.snapshots.settle()
        self.snapshots.wait()
        self.adopter.adopt(good)
        self.snapshots.rollbacks = self.store.rollbacks()
        self.stop_learning()

    def follow(self, stop_reason: str | None) -> None:
        """Follow the stop flag in Redis: set by a trip (also before a restart), lifted by ``learner resume``."""
        stopped = stop_reason is not None
        if stopped and self.model.learning:
            self.stop_learning()
        elif not stopped and not self.model.learning:
            self.model.learning = True
            self.monitor.guard_tripped.labels(self.settings.name).set(0)
            log.warning("learning resumes (learner resume)")

    def stop_learning(self) -> None:
        self.model.learning = False
        self.rearm()
        self.monitor.guard_tripped.labels(self.settings.name).set(1)
