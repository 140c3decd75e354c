"""``learner run``: the model process, which owns the River model and its snapshots.

It forks the gateway (``learner.runtime.gateway``: Kafka in and out) and then, per batch the gateway
sends: steps the model over the events (predict, then learn), answers with the predictions, and
records the offsets. Every N events or S seconds, at a batch boundary, it takes a snapshot:

1. ask the gateway to flush: every prediction so far is acknowledged by the broker, and the
   gateway hands over the evaluation, which covers exactly those events;
2. write model + evaluation + offsets to Redis in one atomic, fenced step (pickled in a forked
   child, so the stream does not wait for the serialisation);
3. commit the same offsets to Kafka, for lag monitoring only.

On restart the snapshot is the truth: the gateway positions every partition at its offsets, so no
event is lost or learned twice, and predictions re-emitted after a crash carry the same ids.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from learner.core.checkpoint import Checkpoint
from learner.core.drift import Detection
from learner.state.control import Control
from learner.core.evaluation import Evaluation
from learner.state.lease import Lease, LeaseLost
from learner.core.guard import Guard
from learner.runtime.gc_tuning import tune_for_streaming
from learner.runtime.gateway import gateway_main, receive, send
from learner.runtime.pipes import duplex_pipes
from learner.core.models import build_model
from learner.runtime.monitor import Monitor, serve
from learner.settings import Settings
from learner.state.snapshots import SnapshotError, SnapshotStore, connect, describe_params, furthest, offsets_to_meta
from learner.runtime.snapshotter import Outcome, Snapshotter
from learner.core.step import LearningStep
from stream.errors import StreamError

log = logging.getLogger(__name__)


class Service:
    """One ``learner run`` process (the model side) and its gateway."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.store = SnapshotStore(connect(settings.redis_url), settings.name, settings.signer())
        self.lease = Lease(self.store.client, self.store.key("lease"), self.store.key("epoch"), self.store.audit,
                           settings.lease_ttl)
        self.lease.wait()  # a second service for this name waits here, as a hot standby
        try:
            self._start()
        except BaseException:
            self.lease.release()  # a start that failed must not make the next one wait out the lease
            raise

    def _start(self) -> None:
        settings = self.settings
        self.spec = settings.model
        self.step, self.evaluation, self.head, self.checkpoint = self._restore()
        self.model_version = self.head or 0
        self.step.learning = not self.store.client.exists(self.store.key("guard"))  # tripped before a restart
        self.metrics = self.evaluation.values()  # live values, reported by the gateway every second
        self.params = describe_params(self.step.model)
        self.snapshotter = Snapshotter(self.store, settings.snapshot_keep, settings.snapshot_in_background)
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.control = Control(self.store)
        self.epoch = 0  # grows at each seek (replay); batches read before it are dropped
        self._requests: list[str] = []
        self._answering: list[str] = []  # requests the snapshot in flight answers
        self.drifts: list[Detection] = []
        self._drift_reason = ""
        self._armed: tuple[Guard, float, int] | None = None
        request = self.store.rollback_request()
        self._rollbacks = request[2] if request else 0  # rollbacks before this start are in the snapshot
        self._refused: int | None = None  # a head this service could not adopt
        self._tokens = itertools.count(1)
        self._barrier: int | None = None  # the flush a background snapshot waits for
        self.started_at: float | None = None
        self.model_seconds = 0.0  # in the learning step: the model's utilisation, next to wall time
        self._conn, self._gateway = self._start_gateway()
        self.monitor = Monitor(settings.name)
        self.monitor.lease_held.labels(settings.name).set(1)
        self.monitor.guard_tripped.labels(settings.name).set(0 if self.step.learning else 1)
        self.monitor.version.labels(settings.name).set(self.model_version)
        self.http = serve(settings.metrics_port, self.monitor, self.full_status, self.unready) \
            if settings.metrics_port else None

    # -- start and stop ---------------------------------------------------------------------------

    def _restore(self) -> tuple[LearningStep, Evaluation, int | None, Checkpoint]:
        """The head snapshot if there is one (the truth), else a fresh model from ``--model``."""
        settings = self.settings
        loaded = self.store.load_head(force=settings.force)
        if loaded is None:
            step = LearningStep(build_model(settings.model))
            evaluation = Evaluation(step.task, settings.metric)
            log.info("no snapshot of %r yet: starting a new %s model", settings.name, settings.model)
            return step, evaluation, None, Checkpoint(settings.snapshot_every_events, settings.snapshot_every_seconds)
        meta, state = loaded
        if self.store.fallback:  # the head did not load: make the version we did load the head, openly,
            self.store.rollback(meta.version, replay=True)  # and learn again what the lost head had learned
            self.store.audit.append("fallback", self.store.fallback)
        step = LearningStep(state["model"], state["learned"])
        self.spec = meta.model_spec
        if meta.model_spec != settings.model:
            log.warning("snapshot %d holds a %r model; --model %r is ignored", meta.version, meta.model_spec, settings.model)
        log.info("restored %r version %d (%d events learned)", settings.name, meta.version, step.learned)
        offsets = self.store.rolled_back_position(meta.version) or meta.offsets_by_partition()
        checkpoint = Checkpoint(settings.snapshot_every_events, settings.snapshot_every_seconds, offsets)
        return step, state["evaluation"], meta.version, checkpoint

    def _start_gateway(self) -> tuple[Any, multiprocessing.process.BaseProcess]:
        """Fork the gateway before this process has any thread, so the fork is clean."""
        context = multiprocessing.get_context("fork")
        ours, theirs = duplex_pipes(context)
        gateway = context.Process(target=gateway_main, args=(self.settings, theirs), name="learner-gateway",
                                  daemon=True)
        gateway.start()
        theirs.close()
        self._expect(ours, "ready", timeout=60)
        send(ours, ("start", dict(self.checkpoint.offsets), self.evaluation, self.step.task))
        tune_for_streaming()
        return ours, gateway

    def _expect(self, conn: Any, kind: str, timeout: float) -> tuple[Any, ...]:
        if not conn.poll(timeout):
            raise StreamError(f"the gateway did not answer within {timeout:g}s")
        try:
            message = receive(conn)
        except EOFError:
            raise StreamError("the gateway process died") from None
        if message[0] == "error":
            raise StreamError(message[1])
        return message

    def run(self, on_progress: Callable[[Service], None] | None = None, every: float = 0.5) -> None:
        """Stream until SIGTERM, Ctrl-C or ``--stop-after-events`` (a second Ctrl-C stops at once,
        without a final snapshot); ``on_progress`` is called every ``every`` seconds."""
        self._install_signals()
        s = self.settings
        log.info("streaming %s -> %s (dead letters: %s)", s.input_topic, s.output_topic, s.dead_letter_topic)
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
        """One batch (if one comes within ``timeout``) and the housekeeping after it."""
        message = self.backlog.popleft() if self.backlog else self._next(timeout)
        if message is not None:
            self._dispatch(message)
        self._collect_snapshot(self.snapshotter.poll())
        self.lease.renew_if_due()
        if self.control.due():
            self._poll_control()
        if (self.checkpoint.due() or self._requests or self._drift_reason) and not self.snapshotter.busy:
            reason = "requested" if self._requests else self._drift_reason or "periodic"
            self._drift_reason = ""
            self.snapshot(reason)
        limit = self.settings.stop_after_events
        if limit and sum(self.checkpoint.offsets.values()) >= limit:
            log.info("reached --stop-after-events %d", limit)
            self.stopping = True

    def _poll_control(self) -> None:
        """Adopt a new head (a rollback), take snapshot requests, publish the status."""
        head, rollbacks, requests, guarded = self.control.poll(self.status())
        self._requests += requests
        if guarded == self.step.learning:  # tripped (also before a restart) or resumed by an operator
            self._stop_learning() if guarded else self._resume()
        if self.snapshotter.busy or head is None:
            return  # a snapshot of ours may be moving the head right now: look again after it
        if rollbacks != self._rollbacks or head not in (self.head, self._refused):
            self._rollbacks = rollbacks
            self.adopt(head)

    def status(self) -> dict[str, Any]:
        """What ``learner status`` shows about this process."""
        return {"model_version": self.model_version, "head": self.head, "events_learned": self.step.learned,
                "events_done": sum(self.checkpoint.offsets.values()), "metrics": self.metrics,
                "lag": self.monitor.gateway.get("lag", {}) if hasattr(self, "monitor") else {},
                "learning": self.step.learning, "model": self.spec, "fallback": self.store.fallback,
                "drift": [asdict(d) for d in self.drifts],
                "guard": None if self._armed is None else {"metric": self._armed[0].metric, "window": self._armed[0].window,
                                                           "reference": self._armed[1], "pinned_version": self._armed[2]}}

    def _guard_rule(self) -> Guard | None:
        if self.settings.guard_margin is None or not self.evaluation.tracked:
            return None
        evaluation = self.evaluation
        name, window = evaluation.tracked[0].name, str(evaluation.window) if evaluation.window else "all"
        return Guard(self.settings.guard_margin, name, window, evaluation.bigger_is_better(name))

    def _arm_guard(self) -> None:
        """Tell the gateway (which scores every batch) what to compare with: the newest pinned snapshot."""
        guard = self._guard_rule() if self.step.learning else None
        pinned = self.store.pinned() if guard is not None else set()
        armed = None
        if guard is not None and pinned:
            reference = guard.reference(self.store.meta(max(pinned)).metrics)
            armed = None if reference is None else (guard, reference, max(pinned))
        if armed != self._armed:
            self._armed = armed
            send(self._conn, ("guard", armed))

    def _trip(self, current: float) -> None:
        """The gateway saw the rolling metric fall too far: stop learning, roll back, keep predicting."""
        if self._armed is None or not self.step.learning:
            return
        guard, reference, good = self._armed
        reason = (f"{guard.metric} over the last {guard.window} fell to {current:.4f}, from {reference:.4f} "
                  f"in pinned version {good} (margin {guard.margin})")
        log.error("GUARD TRIPPED: %s; learning stops, rolling back to version %d, predictions go on", reason, good)
        self.store.client.set(self.store.key("guard"), reason)
        self.store.audit.append("guard", f"tripped: {reason}; rolled back to {good}")
        self.store.rollback(good, replay=False)
        self._settle_barrier()
        self._collect_snapshot(self.snapshotter.wait())
        self.adopt(good)
        self._rollbacks = (self.store.rollback_request() or (0, False, 0))[2]
        self._stop_learning()

    def _stop_learning(self) -> None:
        self.step.learning = False
        self._arm_guard()
        self.monitor.guard_tripped.labels(self.settings.name).set(1)

    def _resume(self) -> None:
        self.step.learning = True
        self.monitor.guard_tripped.labels(self.settings.name).set(0)
        log.warning("learning resumes (learner resume)")

    def _drifted(self, detection: Detection) -> None:
        """Log, count and remember a drift; snapshot just after it, so operators can roll back to before."""
        log.warning("drift detected (%s) after event %d: %s", detection.kind, detection.event, detection.detail)
        self.monitor.drift.labels(self.settings.name, detection.kind).inc()
        self.drifts = ([*self.drifts, detection])[-20:]
        if self.settings.snapshot_on_drift and self.step.learning:  # stopped: nothing new to keep
            self._drift_reason = f"drift: {detection.detail}"

    def full_status(self) -> dict[str, Any]:
        """``/status``: what ``learner status --json`` shows, from this process's point of view."""
        lease = {"who": self.lease.who, "epoch": self.lease.epoch} if self.lease.epoch is not None else None
        gateway = self.monitor.gateway
        return {"name": self.settings.name, "head": self.head, "lease": lease,
                "service": {**self.status(), "dead_lettered": gateway.get("dead_lettered", 0)}}

    def unready(self) -> str | None:
        """Why the service is not ready (for /readyz), or None when it is."""
        if not self._gateway.is_alive():
            return "the gateway process is not running"
        if not self.monitor.gateway.get("assigned"):
            return "no input partition assigned yet"
        if not self.monitor.gateway.get("broker_ok", True):
            return f"Kafka at {self.settings.bootstrap_servers} does not answer"
        try:
            self.store.client.ping()
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            return f"Redis does not answer: {error}"
        return None

    def adopt(self, version: int) -> None:
        """Continue from snapshot ``version`` (an operator's rollback), at this event boundary.

        Default: keep the stream position (the learning since ``version`` is discarded).
        With ``--replay``: go back to the offsets stored in ``version`` and learn them again.
        """
        try:
            meta, state = self.store.load(version, force=self.settings.force)
        except SnapshotError as error:  # the CLI checks this too; another host may have other versions
            log.error("cannot adopt version %d: %s; serving version %s on, and its snapshots are refused "
                      "until the head is a version this service can load", version, error, self.model_version)
            self.store.audit.append("rollback", f"version {version} refused by the running service: {error}")
            self._refused = version  # not again at every poll; a new rollback is looked at afresh
            return
        self._refused = None
        request = self.store.rollback_request()
        replay = request is not None and request[:2] == (version, True)
        learning = self.step.learning  # a tripped guard stays tripped across an operator's rollback
        self.step = LearningStep(state["model"], state["learned"])
        self.step.learning = learning
        self.evaluation, self.spec = state["evaluation"], meta.model_spec
        self.head = self.model_version = version
        self._drift_reason = ""  # the state a pending drift snapshot was meant to keep is gone
        self.monitor.version.labels(self.settings.name).set(version)
        # Without replay: from the live position, unless the version has learned further (a roll
        # forward after a replay), which must not be learned twice. A restart before the next
        # snapshot resumes there too, not at the version's own offsets (that would re-learn what
        # the rollback discarded).
        position = meta.offsets_by_partition() if replay else furthest(self.checkpoint.offsets,
                                                                         meta.offsets_by_partition())
        if position != self.checkpoint.offsets:
            self.epoch += 1
            self.backlog.clear()
            self.checkpoint.reset(position)
            send(self._conn, ("seek", self.epoch, position, self.evaluation))
        else:
            send(self._conn, ("evaluation", self.evaluation))
        if not replay:
            self.store.record_position(version, position)
        log.warning("adopted version %d of %r (%s); %d events learned", version, self.settings.name,
                    "replaying from its offsets" if replay else "continuing from the stream position",
                    self.step.learned)

    def _next(self, timeout: float) -> tuple[Any, ...] | None:
        if not self._conn.poll(timeout):
            return None
        try:
            return receive(self._conn)
        except EOFError:
            raise StreamError("the gateway process died") from None

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "batch":
            self._learn_batch(*message[1:])
        elif kind == "metrics":
            report = message[1]
            self.metrics = report["evaluation"]
            self.monitor.observe_gateway(report)
            self.monitor.observe_learned(self.step.learned, self.model_seconds)
            for detection in report.get("drifts", ()):
                self._drifted(detection)
            self._arm_guard()
        elif kind == "flushed":
            self._barrier_passed(message[1], message[2])
        elif kind == "guard_tripped":
            self._trip(message[1])
        elif kind == "error":
            raise StreamError(message[1])

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            if self.stopping and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.info("stopping (%s): finishing the batch and taking a last snapshot", signal.Signals(signum).name)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def shutdown(self, final_snapshot: bool = True) -> None:
        """Last snapshot (if anything is new since the previous one), then stop the gateway and
        hand the lease back, so that a standby takes over at once."""
        try:
            if self.lease.epoch is not None:
                if final_snapshot:
                    self._settle_barrier()
                self._collect_snapshot(self.snapshotter.wait())
                if final_snapshot and self.checkpoint.pending and self._gateway.is_alive():
                    self.snapshot("shutdown", background=False)
                self.lease.release()
        finally:
            if self._gateway.is_alive():
                send(self._conn, ("stop",))
                self._gateway.join(30)
            log.info("stopped: %r version %d, %d events learned", self.settings.name, self.model_version,
                     self.step.learned)

    # -- the hot path -----------------------------------------------------------------------------

    def _learn_batch(self, seq: int, epoch: int, events: bytes, offsets: dict[tuple[str, int], int],
                     count: int) -> None:
        """Step the model over one batch (a JSON array of events the gateway validated), in order; answer."""
        if epoch != self.epoch:
            return  # read before a seek: the gateway has dropped it too
        if self.started_at is None:
            self.started_at = time.perf_counter()
        learned, events = self.step.learned, orjson.loads(events)
        started = time.perf_counter()
        results = self.step.process_batch(events)
        self.model_seconds += time.perf_counter() - started
        send(self._conn, ("results", seq, learned, self.model_version, self.step.learning, results))
        self.checkpoint.add(offsets, count)

    # -- snapshots --------------------------------------------------------------------------------

    def flush(self) -> Evaluation:
        """The snapshot barrier: wait until the gateway has published every answer sent so far."""
        token = next(self._tokens)
        send(self._conn, ("flush", token))
        return self._await_flushed(token)

    def _await_flushed(self, token: int) -> Evaluation:
        for message in self.backlog:  # already read, while waiting for another flush
            if message[0] == "flushed" and message[1] == token:
                self.backlog.remove(message)
                return message[2]  # type: ignore[no-any-return]
        while True:
            message = self._expect(self._conn, "flushed", timeout=120)
            if message[0] == "flushed" and message[1] == token:
                evaluation: Evaluation = message[2]
                return evaluation
            self.backlog.append(message)  # batches sent meanwhile: learn them after the snapshot

    def snapshot(self, reason: str, background: bool | None = None) -> Outcome | int:
        """Snapshot the model, its evaluation and the offsets it has learned, at this event boundary.

        In the background (the default) the stream does not wait for the barrier: the child is
        forked now, and completed when the gateway confirms that every prediction up to here is
        published and hands over the evaluation of exactly those events (:meth:`_barrier_passed`).
        """
        started = time.perf_counter()
        offsets = dict(self.checkpoint.offsets)
        fields = {
            "parent": self.head, "events_learned": self.step.learned, "offsets": offsets_to_meta(offsets),
            "model_spec": self.spec, "model_params": self.params, "reason": reason,
        }
        state = {"model": self.step.model, "learned": self.step.learned}
        self._answering, self._requests = self._answering + self._requests, []
        if background is False or not self.snapshotter.background:
            self.evaluation = self.flush()
            state["evaluation"], fields["metrics"] = self.evaluation, self.evaluation.values()
            snapshotter = Snapshotter(self.store, self.settings.snapshot_keep, background=False)
            result = snapshotter.start(state, fields, offsets, self.head, self.lease.epoch, rollbacks=self._rollbacks)
        else:
            self._barrier = next(self._tokens)
            send(self._conn, ("flush", self._barrier))
            result = self.snapshotter.start(state, fields, offsets, self.head, self.lease.epoch, completed_later=True,
                                            rollbacks=self._rollbacks)
        self.checkpoint.taken()
        pause = time.perf_counter() - started
        self.monitor.snapshot_pause.labels(self.settings.name).observe(pause)
        log.debug("snapshot pause %.1f ms", pause * 1000)
        if isinstance(result, Outcome):
            self._collect_snapshot(result)
        return result

    def _barrier_passed(self, token: int, evaluation: Evaluation) -> None:
        """The gateway published everything up to the snapshot's boundary: the child may write."""
        if token != self._barrier:
            return
        self._barrier = None
        self.evaluation = evaluation
        self.snapshotter.complete({"evaluation": evaluation}, {"metrics": evaluation.values()})

    def _settle_barrier(self) -> None:
        """Before waiting for the snapshot in flight: let its barrier pass first (it would wait forever)."""
        if self._barrier is not None and self._gateway.is_alive():
            self._barrier_passed(self._barrier, self._await_flushed(self._barrier))

    def _collect_snapshot(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        requests, self._answering = self._answering, []
        if outcome.fenced and "FENCED" in outcome.error:
            self.lease.lost()
            raise LeaseLost(f"snapshot {outcome.version} refused: {outcome.error}; another process holds the model")
        if not outcome.ok:
            if outcome.fenced:  # HEAD_MOVED or ROLLED_BACK: the rollback wins, the next poll adopts it
                log.warning("snapshot %d discarded, a rollback came first: %s", outcome.version, outcome.error)
            else:
                log.error("snapshot %d failed: %s", outcome.version, outcome.error)
            for request in requests:
                self.control.reply(request, f"failed: {outcome.error}")
            return
        self.head = self.model_version = outcome.version
        if outcome.offsets and self._gateway.is_alive():
            send(self._conn, ("commit", outcome.offsets))  # Kafka's group offsets follow, for lag tools
        self.monitor.version.labels(self.settings.name).set(self.model_version)
        self.monitor.observe_snapshot(outcome.seconds, outcome.size)
        for request in requests:
            self.control.reply(request, str(outcome.version))
        log.info("snapshot %d written (%d bytes, %.2fs)", outcome.version, outcome.size, outcome.seconds)
