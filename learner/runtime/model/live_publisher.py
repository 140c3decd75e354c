"""The learner's side of the live model (:mod:`learner.state.live`): fresh models for serve replicas.

Every ``--live-every-seconds`` (default 2 with ``--role learn``), at a batch boundary, the model
process forks; the child pickles the model and writes it, signed and fenced by the lease epoch, to
the live hash, then announces it. The stream's pause is the fork, as for a snapshot. Nothing is
published while a snapshot is in flight (the snapshot is about to move the head, and replicas
follow the head too), while Redis is away, or when nothing was learned since the last one.
A failed publication is logged once (until one succeeds again) and tried at the next interval.
"""

from __future__ import annotations

import logging
import os
import time

from learner.core.snapshot_state import SnapshotState
from learner.errors import Fenced, LearnerError, RedisUnavailable
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.snapshot_coordinator import SnapshotCoordinator
from learner.runtime.model.state_sync import StateSync
from learner.runtime.shared.forked import Forked
from learner.state.lease import Lease
from learner.state.live import LiveStore
from learner.state.snapshots import SnapshotStore

__all__ = ["LivePublisher"]

log = logging.getLogger(__name__)

#: What the child reports: published, or why not.
_PUBLISHED = "published"
_FENCED, _UNAVAILABLE, _FAILED = "the lease changed hands", "Redis does not answer", "the model did not pickle or Redis refused"


class LivePublisher:
    """Forks a child that publishes the live model, one at a time, when one is due."""

    def __init__(self, model: LiveModel, store: SnapshotStore, lease: Lease, snapshots: SnapshotCoordinator,
                 sync: StateSync, monitor: LearnerMetrics, every: float) -> None:
        self.model, self.store, self.lease, self.snapshots = model, store, lease, snapshots
        self.sync, self.monitor, self.every = sync, monitor, every
        self.enabled = every > 0 and hasattr(os, "fork")
        self.published_at = 0.0
        self._last: tuple[int | None, int, int] | None = None  # (head, rollbacks, learned) of the last one
        self._child: Forked[str] | None = None  # what the child publishing now will report
        self._failing = False

    def publish_if_due(self) -> None:
        if not self.enabled:
            return
        self._collect()
        now = time.monotonic()
        if self._child is not None or now - self.published_at < self.every:
            return
        epoch = self.lease.epoch
        if self.snapshots.busy or not self.sync.up or not self.lease.held or epoch is None:
            return
        step, model = self.model.step, self.model
        current = (model.head, self.snapshots.rollbacks, step.learned)
        if current == self._last:
            return
        self.published_at, self._last = now, current
        self._child = Forked(lambda: self._publish_in_child(current, epoch), _why_not)

    def _publish_in_child(self, current: tuple[int | None, int, int], epoch: int) -> str:
        """The forked child's work: the model as of the fork, pickled, signed and written (fenced)."""
        head, rollbacks, learned = current
        LiveStore(self.store.reconnected()).publish(SnapshotState(self.model.step.model, learned), head, rollbacks, epoch)
        return _PUBLISHED

    def _collect(self, block: bool = False) -> None:
        if self._child is None:
            return
        if block:
            why_not = self._child.wait()
        else:
            finished, why_not = self._child.poll()
            if not finished:
                return
        self._child = None
        why_not = why_not or "the publishing process died"
        if why_not == _PUBLISHED:
            self.monitor.live_published.labels(self.store.name).inc()
            if self._failing:
                log.info("live model published again")
            self._failing = False
            return
        self._last = None  # try again at the next interval
        if not self._failing:
            log.warning("live model not published (%s): serve replicas keep the model they have; retrying", why_not)
        self._failing = True

    def wait(self) -> None:
        """At shutdown: let a publication in flight finish."""
        try:
            self._collect(block=True)
        except (ChildProcessError, LearnerError):
            self._child = None


def _why_not(error: BaseException) -> str:
    """What the child reports when its publication raised."""
    if isinstance(error, Fenced):
        return _FENCED
    if isinstance(error, RedisUnavailable):
        return _UNAVAILABLE
    return _FAILED
