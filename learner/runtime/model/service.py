"""``learner run``: the model process, which owns the River model, and the loop that composes its parts.

Start-up, in order: connect to Redis (waiting up to ``--startup-timeout`` for it) and read its
persistence; fork the gateway (before any thread, so the fork is clean; it waits for Kafka and
checks the topics); serve HTTP; wait for the single-writer lease as a hot standby if another
process holds it; restore the head snapshot; start the Redis thread; tell the gateway where to
start.

Then, per message from the gateway: a batch is stepped through the model and answered; a report
updates the metrics and re-arms the guard; a barrier's answer completes the snapshot in flight; a
guard trip rolls back. Between messages: collect a finished snapshot, look at what the control
plane showed (rollbacks, requests), take a snapshot when one is due. The main loop never waits on
Redis: the lease, the control plane and the side effects run on the Redis thread
(:mod:`~learner.runtime.model.state_sync`), which rides out an outage. Each of those is a part of its own
(:mod:`~learner.runtime.model.snapshot_coordinator`, :mod:`~learner.runtime.model.rollback`,
:mod:`~learner.runtime.model.guard`, :mod:`~learner.runtime.model.control`, :mod:`~learner.runtime.shared.readiness`).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from learner.connections import Connections
from learner.core.positions import total
from learner.core.status import GuardView, RedisHealth, ServiceStatus
from learner.errors import GatewayFailed, ProtocolError, RedisUnavailable, StateError
from learner.runtime.challenger.begin import begin
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.gateway.loop import gateway_main
from learner.runtime.model.control import ControlLoop
from learner.runtime.model.drift_log import DriftLog
from learner.runtime.model.experiment_watch import ExperimentWatch
from learner.runtime.model.guard import GuardKeeper
from learner.runtime.model.late_order import LateOrder
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.live_publisher import LivePublisher
from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.model.restore import restore
from learner.runtime.model.rollback import RollbackAdopter
from learner.runtime.model.snapshot_coordinator import SnapshotCoordinator
from learner.runtime.model.standby import wait_for_lease
from learner.runtime.model.state_sync import StateSync
from learner.runtime.roles import role_of
from learner.runtime.shared.http import serve
from learner.runtime.shared.process import tune_for_streaming
from learner.runtime.shared.readiness import Readiness
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.lease import Lease
from learner.state.persistence import check_persistence

__all__ = ["Progress", "Service"]

log = logging.getLogger(__name__)

#: Seconds the last snapshot may wait for Redis at a stop.
FINAL_SNAPSHOT_WAIT = 30.0


@dataclass(frozen=True)
class Progress:
    """What a progress line shows: input events done, events learned, the version, the metrics."""

    done: int
    learned: int
    version: int
    metrics: dict[str, dict[str, float]]
    lag: int
    drifts: int
    learning: bool


class Service:
    """One ``learner run`` process (the model side) and its gateway."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.started = False
        self.monitor = LearnerMetrics(settings.lineage)
        self.fallback: str | None = None
        self._status: dict[str, Any] = {"name": settings.name, "service": None}  # /status, as last built

    def start(self) -> None:
        """Connect, fork the gateway, serve HTTP, wait for the lease, restore (see the module's docstring).

        Called by :meth:`run` when it was not called before; call it first to fork the gateway before
        threads of your own start (a fork copies only the thread that forks).
        """
        if self.started:
            return
        settings = self.settings
        self.store = Connections(settings).store(wait=True)
        check_persistence(self.store, settings.redis_persistence)
        self.control = ControlPlane(self.store)
        self.link = GatewayLink(settings, gateway_main)
        self.readiness = Readiness(settings.bootstrap_servers, gateway_alive=lambda: self.link.alive)
        self.lease = Lease(self.store, settings.lease_ttl)
        self.http = serve(settings.metrics_port, self.monitor.registry, lambda: self._status,
                          self.readiness.reason) if settings.metrics_port else None
        try:
            self.link.wait_ready()
            wait_for_lease(self.lease, self.readiness, self.link)
            self._start()
        except BaseException:
            self._abandon()
            raise
        self.started = True

    def _start(self) -> None:
        settings = self.settings
        restored = restore(self.store, settings, begin if settings.role == "challenger" else None)
        self.fallback = restored.fallback
        self.model = LiveModel(restored, settings)
        self.model.learning = self.control.guard_stop() is None  # tripped before a restart: stays stopped
        self.sync = StateSync(self.store, self.lease, self.control, self.monitor)
        self.late = LateOrder(self.store, self.lease, settings.labels_topic is not None, lambda: self.sync.up)
        self.snapshots = SnapshotCoordinator(self.model, self.store, self.link, self.lease, self.control, self.sync,
                                             self.monitor, settings)
        self.adopter = RollbackAdopter(self.model, self.store, self.link, self.snapshots, self.sync, self.monitor,
                                       settings, self.late)
        self.guard = GuardKeeper(self.model, self.store, self.control, self.link, self.sync, self.monitor, settings)
        self.drifts = DriftLog(self.model, self.snapshots, self.sync, self.monitor, settings)
        self.control_loop = ControlLoop(self.sync, self.status, self.snapshots, self.adopter, self.guard,
                                        ExperimentWatch(self.link, settings, self.store, self.lease),
                                        settings.history_every_seconds)
        self.live = LivePublisher(self.model, self.store, self.lease, self.snapshots, self.sync, self.monitor,
                                  settings.live_every)
        self.monitor.started(self.model.learning, self.model.version)
        self.link.send(p.Start(dict(self.model.position), self.model.scorecard, self.model.step.kind,
                               dict(self.model.checkpoint.marks), self.late.decided(strict=True)))
        self.control_loop.scores.follow(self.store.challengers.count())  # before the first answer, not at a poll
        tune_for_streaming()
        self.readiness.phase = "streaming"
        self.sync.publish(self.status())  # /status has the service's numbers from the first request on
        self.sync.start()

    def _abandon(self) -> None:
        """A start that failed (or a SIGTERM while waiting) must not make the next one wait out the lease."""
        try:
            self.lease.release()
        except Exception:  # best effort: the lease expires anyway
            log.debug("could not release the lease", exc_info=True)
        self.link.stop(timeout=5)
        if self.http is not None:
            self.http.shutdown()

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[Service], None] | None = None, every: float = 0.5) -> None:
        """Stream until SIGTERM, Ctrl-C or ``--stop-after-events`` (a second Ctrl-C stops at once,
        without a final snapshot); ``on_progress`` is called every ``every`` seconds."""
        self.start()
        self._install_signals()
        s = self.settings
        log.info("streaming %s", role_of(s).streams(s))
        shown, clean = time.monotonic(), False
        try:
            while not self.stopping:
                self.run_once()
                if on_progress is not None and time.monotonic() - shown >= every:
                    on_progress(self)
                    shown = time.monotonic()
            clean = True
        finally:
            # After an error or a second Ctrl-C the model may be half-way through a batch whose
            # offsets are not recorded: a snapshot of it would learn those events twice on restart.
            self.shutdown(final_snapshot=clean)

    def run_once(self, timeout: float = 0.1) -> None:
        """One message from the gateway (if one comes within ``timeout``) and the housekeeping after it."""
        message = self.link.next(timeout)
        if message is not None:
            self._dispatch(message)
        self.sync.check()  # the Redis thread found the lease taken: stop, without writing
        self.snapshots.poll()
        self.stopping |= self.control_loop.poll_if_due()
        self.snapshots.take_if_due()
        self.live.publish_if_due()
        self.readiness.redis_problem = self._redis_problem()
        limit = self.settings.stop_after_events
        if limit and total(self.model.position, self.settings.input_topic) >= limit:
            log.info("reached --stop-after-events %d", limit)
            self.stopping = True

    def _dispatch(self, message: p.ToModel) -> None:
        match message:
            case p.Batch():
                self.late.record(message)
                between = self._snapshot_in_flight if self.snapshots.busy else None
                if (results := self.model.learn(message, between)) is not None:
                    self.link.send(results)
            case p.Report():
                self._reported(message)
            case p.Flushed():
                self.snapshots.barrier_passed(message)
            case p.GuardTripped(value):
                self.guard.tripped(value)
            case p.Failure(reason):
                raise GatewayFailed(reason)
            case _:
                raise ProtocolError(f"the model process does not handle {type(message).__name__}")

    def _snapshot_in_flight(self) -> None:
        """Mid-batch of a slow model: the gateway's answer to the barrier completes the snapshot in flight,
        and a snapshot written meanwhile is collected (its offsets committed, its requests answered)."""
        for flushed in self.link.take_flushed():
            self.snapshots.barrier_passed(flushed)
        self.snapshots.poll()

    def _reported(self, report: p.Report) -> None:
        self.readiness.report = report
        self.monitor.observe_stream(report.consumed, report.predicted, report.dead_lettered, report.latencies,
                                    report.lag, report.metrics, report.late, report.dead_letters)
        self.monitor.observe_learned(self.model.step.learned, self.model.model_seconds)
        self.monitor.observe_pairing(report.pairing)
        if (join := self.model.join) is not None:
            delays, join.delays_ms = join.delays_ms, []
            self.monitor.observe_labels(join.counts, join.waiting, delays)
        for detection in report.drifts:
            self.drifts.add(detection)
        self.guard.rearm()

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            if self.stopping and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.info("stopping (%s): finishing the batch and taking a last snapshot", signal.Signals(signum).name)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _redis_problem(self) -> str | None:
        if self.sync.up:
            return None
        away = time.monotonic() - (self.sync.down_since or time.monotonic())
        return f"degraded: Redis unavailable for {away:.0f}s ({self.sync.problem}); predictions go on, snapshots wait"

    def shutdown(self, final_snapshot: bool = True) -> None:
        """Last snapshot (if anything is unsaved), then stop the gateway and hand the lease back, so
        that a standby takes over at once."""
        self.readiness.phase = "stopping"
        try:
            if self.lease.held:
                if final_snapshot:
                    self.snapshots.settle()
                self.snapshots.wait()
                self.live.wait()
                if final_snapshot and self.model.checkpoint.unsaved and self.link.alive:
                    self._final_snapshot()
            self.sync.stop()
            if self.lease.held:
                if final_snapshot:
                    self._say_stopped()
                try:
                    self.lease.release()
                except StateError as error:
                    log.warning("could not hand the lease back (%s): a standby takes over when it expires", error)
        finally:
            self.link.stop()
            if self.http is not None:
                self.http.shutdown()
            log.info("stopped: %s version %d, %d events learned", self.store.label, self.model.version,
                     self.model.step.learned)

    def _say_stopped(self) -> None:
        """Leave the final status, marked stopped, for ``learner status`` (a crash leaves the last periodic one)."""
        try:
            self.control.stopped(self.status())
        except StateError as error:
            log.warning("could not record the stop in Redis (%s): `learner status` shows the last periodic status", error)

    def _final_snapshot(self) -> None:
        """The shutdown snapshot, waiting for Redis for a while if it is away; an error if it never came."""
        deadline = time.monotonic() + FINAL_SNAPSHOT_WAIT
        while self.model.checkpoint.unsaved and self.lease.held:
            if self.sync.up:
                self.snapshots.take("shutdown", background=False)
                if not isinstance(self.snapshots.last_error, RedisUnavailable | None):
                    return  # refused (a rollback this process could not adopt): logged, nothing to wait for
            if not self.model.checkpoint.unsaved:
                return
            if time.monotonic() >= deadline:
                raise StateError(f"the last snapshot could not be written ({self.sync.problem or 'see the log'}); the "
                                 f"next start resumes from version {self.model.head} and learns the rest again")
            time.sleep(0.5)

    # -- what it reports --------------------------------------------------------------------------

    def status(self) -> ServiceStatus:
        """What ``learner status`` shows about this process (published at each control poll)."""
        model, report = self.model, self.readiness.report
        armed = self.guard.armed
        service = ServiceStatus(
            model_version=model.version, head=model.head, events_learned=model.step.learned,
            events_done=total(model.position, self.settings.input_topic), metrics=report.metrics if report else {},
            lag=report.lag if report else {}, dead_lettered=report.dead_lettered if report else 0,
            learning=model.learning, model=model.spec, fallback=self.fallback, rollbacks=self.snapshots.rollbacks,
            redis=RedisHealth(self.sync.up, self.sync.problem),
            labels=None if model.join is None else {"waiting": model.join.waiting, **model.join.counts,
                                                    "late": report.late if report else 0,
                                                    **self.monitor.label_figures()},
            drift=list(self.drifts.recent),
            guard=None if armed is None else GuardView(armed.rule.metric, armed.rule.window, armed.reference,
                                                       armed.version), pairing=report.pairing if report else None,
            dead_letters={kind: n for kind, n in report.dead_letters.items() if n} if report else {},
        )
        lease = {"who": self.lease.who, "epoch": self.lease.epoch} if self.lease.held else None
        self._status = {"name": self.settings.name, "head": model.head, "lease": lease, "service": service.to_json()}
        return service

    def progress(self) -> Progress:
        report, model = self.readiness.report, self.model
        return Progress(total(model.position, self.settings.input_topic), model.step.learned, model.version,
                        report.metrics if report else {}, sum(report.lag.values()) if report else 0, len(self.drifts.recent),
                        model.learning)
