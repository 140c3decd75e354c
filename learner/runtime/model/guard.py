"""The guard at run time (README "Monitoring" (the guard)): arming it, and what happens when it trips.

The rule itself is pure (:mod:`learner.core.guard`); the gateway watches the guarded rolling
metric event by event (it scores every prediction). This keeps the reference current (the newest
pinned snapshot's value, looked up on the Redis thread after each report), and when the gateway
reports a trip: stops learning at once, records the stop in Redis (so it survives a restart),
rolls back to that pinned version (adopted like an operator's rollback), keeps predicting, and
waits for ``learner resume``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

from learner.core.guard import ArmedGuard, Guard
from learner.core.timeline import TimelineEntry
from learner.errors import StateError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.state_sync import StateSync
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.snapshots import SnapshotStore

__all__ = ["GuardKeeper"]

log = logging.getLogger(__name__)


class GuardKeeper:
    """Arms the gateway's guard watch, and acts on its trips and on the operator's resume."""

    def __init__(self, model: LiveModel, store: SnapshotStore, control: ControlPlane, link: GatewayLink,
                 sync: StateSync, monitor: LearnerMetrics, settings: Settings) -> None:
        self.model, self.store, self.control, self.link = model, store, control, link
        self.sync, self.monitor, self.settings = sync, monitor, settings
        self.armed: ArmedGuard | None = None
        self._lookup: Future[ArmedGuard | None] | None = None
        self._recording = False  # a trip whose stop flag is not in Redis yet: a poll without it is stale

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
        if rule is None:
            self._arm(None)
        elif self._lookup is None:
            self._lookup = self.sync.request("guard", lambda: self._reference(rule))
        elif self._lookup.done():
            lookup, self._lookup = self._lookup, None
            try:
                self._arm(lookup.result())
            except StateError as error:
                log.warning("the guard cannot read its reference now: %s", error)

    def _reference(self, rule: Guard) -> ArmedGuard | None:
        """On the Redis thread: the newest pinned version's value of the guarded metric."""
        pinned = self.store.pinned()
        if not pinned:
            return None
        reference = rule.reference(self.store.meta(max(pinned)).metrics)
        return None if reference is None else ArmedGuard(rule, reference, max(pinned))

    def _arm(self, armed: ArmedGuard | None) -> None:
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
        self.stop_learning()
        self._recording = True
        self.sync.submit("guard", lambda: self.control.stop_learning(reason))
        self.sync.submit("audit", lambda: self.store.audit.append("guard", f"tripped: {reason}; rolled back to {good}"))
        entry = TimelineEntry("guard_trip", time.time(), good, self.model.step.learned, why=reason,
                              detail={"metric": rule.metric, "value": current, "reference": armed.reference})
        self.sync.submit("timeline", lambda: self.store.timeline.note(entry))
        self.sync.submit("guard", lambda: self.store.rollback(good, replay=False))  # adopted at a later look

    def follow(self, stop_reason: str | None) -> None:
        """Follow the stop flag in Redis: set by a trip (also before a restart), lifted by ``learner resume``."""
        stopped = stop_reason is not None
        if stopped:
            self._recording = False
        elif self._recording:
            return  # this look came before the trip's stop flag reached Redis
        if stopped and self.model.learning:
            self.stop_learning()
        elif not stopped and not self.model.learning:
            self.model.learning = True
            self.monitor.guard_tripped.labels(self.settings.lineage).set(0)
            log.warning("learning resumes (learner resume)")

    def stop_learning(self) -> None:
        self.model.learning = False
        self._arm(None)
        self.monitor.guard_tripped.labels(self.settings.lineage).set(1)
