"""When and how the model process takes a snapshot: the schedule, the barrier, the background child.

A snapshot is the model, its scorecard and the position it has learned up to, written in one
atomic, fenced step. The order, at a batch boundary:

1. fork the child that will write it (the model, as of this boundary, is in its image), and ask
   the gateway to flush (:class:`~learner.runtime.gateway.protocol.Flush`);
2. learn on; when the gateway answers (every prediction up to the boundary acknowledged by the
   broker, and the scorecard of exactly those events), hand the scorecard to the child, which
   pickles, signs and writes;
3. when the child reports success, the version is the head: commit the same offsets to Kafka's
   consumer group (for lag tools only) and answer the operators who asked for it.

If the stream stops before the barrier passes, the child writes nothing. The shutdown snapshot
(and ``--no-snapshot-in-background``) waits for the barrier and writes in this process.

While Redis is unavailable no snapshot is started (it is owed, and taken at the first boundary
after Redis answers again); a snapshot that fails is tried again after a backoff that doubles up
to a minute, so a broken Redis is never asked at every batch.
"""

from __future__ import annotations

import itertools
import logging
import time

from learner.core.positions import to_json_keys
from learner.core.scorecard import Scorecard
from learner.core.snapshot_state import SnapshotState
from learner.errors import Fenced, HeadMoved, LearnerError, LeaseLost, RolledBack
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.snapshot_writer import SnapshotJob, SnapshotRest, SnapshotWriter, WriteOutcome
from learner.runtime.model.state_sync import StateSync
from learner.runtime.shared.stall import Stall
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.lease import Lease
from learner.state.snapshots import SnapshotStore

__all__ = ["SnapshotCoordinator"]

log = logging.getLogger(__name__)

#: Seconds before a failed snapshot is tried again: from this, doubling, up to the cap.
RETRY_AFTER, RETRY_CAP = 1.0, 60.0


class SnapshotCoordinator:
    """Takes the model's snapshots: on schedule, on request, on drift, at shutdown."""

    def __init__(self, model: LiveModel, store: SnapshotStore, link: GatewayLink, lease: Lease,
                 control: ControlPlane, sync: StateSync, monitor: LearnerMetrics, settings: Settings) -> None:
        self.model, self.store, self.link, self.lease = model, store, link, lease
        self.control, self.sync, self.monitor, self.settings = control, sync, monitor, settings
        self.writer = SnapshotWriter(store, settings.snapshot_in_background)
        self.rollbacks = store.rollbacks()  # rollbacks before this start are in the snapshot restored
        self.owed = False  # a snapshot that failed, or came due while Redis was away
        self.held = False  # while a rollback is being adopted: the model about to be replaced is not saved
        self.last_error: LearnerError | None = None  # how the last snapshot failed, if it did
        self._retry_at, self._retry_after = 0.0, RETRY_AFTER
        self.requests: list[str] = []  # operators waiting for a snapshot
        self.reason = ""  # why the next snapshot is taken early (a drift), if it is
        self._answering: list[str] = []  # requests the snapshot in flight answers
        self._tokens = itertools.count(1)
        self._barrier: int | None = None  # the flush a background snapshot waits for
        self.written_at = 0.0  # time.monotonic() when this process last moved the head: older views predate it
        self._stall = Stall()  # one that never completes is said, with what it waits for

    @property
    def busy(self) -> bool:
        return self.writer.busy

    @property
    def awaiting_barrier(self) -> bool:
        """A background snapshot waits for the gateway's answer to its barrier."""
        return self._barrier is not None

    # -- what the other parts tell it ----------------------------------------------------------------

    def requested(self, requests: list[str]) -> None:
        """Operators asked for a snapshot (``learner snapshot``): the next boundary takes one and answers them."""
        self.requests += requests

    def early(self, reason: str) -> None:
        """Take the next snapshot at the next boundary, for this reason (a drift: keep what came before it)."""
        self.reason = reason

    def hold(self) -> None:
        """A rollback is being adopted: the model about to be replaced is not saved meanwhile."""
        self.held = True

    def release(self) -> None:
        self.held = False

    def adopted(self, rollbacks: int) -> None:
        """The lineage now includes ``rollbacks`` rollbacks: snapshot writes check that count."""
        self.rollbacks = rollbacks

    def replaced(self) -> None:
        """The model was replaced (a rollback adopted): what an early snapshot was to keep is gone with it."""
        self.reason = ""

    def rebased(self, rollbacks: int) -> None:
        """Redis lost writes of this process: save the model again, on top of what it kept."""
        self.rollbacks = rollbacks
        self.owed = True

    def take_if_due(self) -> None:
        if self.writer.busy or self.held or not (self.model.checkpoint.due() or self.owed or self.requests or self.reason):
            return
        if not self.sync.up or time.monotonic() < self._retry_at:
            self.owed = self.owed or self.model.checkpoint.due()
            return
        reason = "requested" if self.requests else self.reason or "periodic"
        self.reason, self.owed = "", False
        self.take(reason)

    def take(self, reason: str, background: bool | None = None) -> None:
        """Snapshot the model, its scorecard and its position, at this event boundary."""
        started = time.perf_counter()
        model = self.model
        position = model.checkpoint.taken()
        fields = {"parent": model.head, "events_learned": model.step.learned, "offsets": to_json_keys(position),
                  "model_spec": model.spec, "model_params": model.params, "reason": reason}
        # with a labels topic, the features waiting for their labels and where the merge stands
        state = SnapshotState(model.step.model, model.step.learned, labels=model.join,
                              marks=dict(model.checkpoint.marks) if model.join is not None else {})
        job = SnapshotJob(state, fields, position, model.head, self.lease.epoch, self.rollbacks,
                          self.settings.snapshot_keep)
        self._answering, self.requests = self._answering + self.requests, []
        if background is False or not self.writer.background:
            rest = _rest(self._barrier_now())
            self.collect(self.writer.write_now(rest.completes(job)))
        else:
            self._barrier = next(self._tokens)
            self.link.send(p.Flush(self._barrier))
            self.writer.start(job, completed_later=True)
            self._stall.begin()
        pause = time.perf_counter() - started
        self.monitor.snapshot_pause.labels(self.settings.lineage).observe(pause)
        log.debug("snapshot pause %.1f ms", pause * 1000)

    def _barrier_now(self) -> Scorecard:
        token = next(self._tokens)
        self.link.send(p.Flush(token))
        scorecard = self.link.flushed(token).scorecard
        self.model.scored(scorecard)
        return scorecard

    def barrier_passed(self, flushed: p.Flushed) -> None:
        """The gateway published everything up to the snapshot's boundary: the child may write."""
        if flushed.token != self._barrier:
            return
        self._barrier = None
        self.model.scored(flushed.scorecard)
        self.writer.complete(_rest(flushed.scorecard))

    def settle(self) -> None:
        """Before waiting for the snapshot in flight: let its barrier pass first (it would wait forever)."""
        if self._barrier is not None and self.link.alive:
            self.barrier_passed(self.link.flushed(self._barrier))

    def poll(self) -> None:
        """Collect the snapshot in flight if it has finished."""
        if (outcome := self.writer.poll()) is not None:
            self.collect(outcome)
        elif (lasted := self._stall.due()) is not None:
            log.warning("the snapshot in flight has waited %.0fs for %s", lasted,
                        "the gateway's barrier (Kafka to acknowledge the outputs before it)" if self._barrier is not None
                        else "its writer process (pickling, signing, writing to Redis)")

    def wait(self) -> None:
        """Collect the snapshot in flight, waiting for it; one still waiting for its barrier is abandoned."""
        self._barrier = None
        if (outcome := self.writer.wait()) is not None:
            self.collect(outcome)

    def collect(self, outcome: WriteOutcome) -> None:
        self._stall.end()
        requests, self._answering = self._answering, []
        self.last_error = outcome.error
        which = "a snapshot" if outcome.version is None else f"snapshot {outcome.version}"
        match outcome.error:
            case None:
                self._written(outcome, requests)
                return
            case Fenced():
                self.monitor.snapshot_failures.labels(self.settings.lineage).inc()
                self._answer(requests, f"failed: {outcome.error}")
                self.lease.lost()
                raise LeaseLost(f"{which} refused: {outcome.error}; another process holds the model")
            case HeadMoved() | RolledBack():  # the rollback wins; the next look at the control plane adopts it
                log.warning("%s discarded, a rollback came first: %s", which, outcome.error)
            case error:
                self.monitor.redis_errors.labels(self.settings.lineage, "snapshot").inc()
                self.monitor.snapshot_failures.labels(self.settings.lineage).inc()
                log.error("%s failed: %s; trying again in %.0fs", which, error, self._retry_after)
                self.owed, self._retry_at = True, time.monotonic() + self._retry_after
                self._retry_after = min(self._retry_after * 2, RETRY_CAP)
        self._answer(requests, f"failed: {outcome.error}")

    def _answer(self, requests: list[str], answer: str) -> None:
        for request in requests:
            self.sync.submit("reply", lambda request=request: self.control.reply(request, answer))  # type: ignore[misc]

    def _written(self, outcome: WriteOutcome, requests: list[str]) -> None:
        assert outcome.version is not None
        self._retry_after = RETRY_AFTER
        self.model.committed(outcome.version)
        self.written_at = time.monotonic()
        self.model.checkpoint.saved(outcome.position)
        if outcome.position and self.link.alive:
            self.link.send(p.Commit(outcome.position))  # Kafka's group offsets follow, for lag tools
        self.monitor.version.labels(self.settings.lineage).set(outcome.version)
        self.monitor.observe_snapshot(outcome.seconds, outcome.size)
        self._answer(requests, str(outcome.version))
        log.info("snapshot %d written (%d bytes, %.2fs)", outcome.version, outcome.size, outcome.seconds)


def _rest(scorecard: Scorecard) -> SnapshotRest:
    """What the barrier adds to a snapshot: the scorecard, and its metrics in the metadata."""
    return SnapshotRest(scorecard, scorecard.evaluation.values())
