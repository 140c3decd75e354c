"""The model process's Redis I/O, on a thread of its own, so that a Redis outage never stalls the stream.

Predicting needs no Redis, and learning goes on in memory; only the lease, the control plane,
snapshots and the audit log need it. So the main loop never waits on Redis: this thread renews
the lease (every third of its TTL), polls the control plane four times a second (publishing the
status the main loop hands it, bringing back what operators changed), runs the side effects the
main loop submits (replies, audit entries, recorded positions: in order, none lost) and the
lookups it requests (a snapshot to adopt, the guard's reference), and, on Sentinel, makes idle
connections follow a master that moved.

While Redis is unreachable or slow, every attempt is spaced by a capped exponential backoff (never
a tight loop), the log says so once (and once when it is back, with how long it was away), the
metrics count it (``learner_redis_up``, ``learner_redis_errors_total`` by operation) and readiness
says what is degraded. When Redis answers again the lease comes first: still this process's (the
epoch has not moved), everything resumes and the snapshot that is owed is taken at the next
boundary; taken by another process, the main loop is told to stop learning and exit without
writing (:class:`~learner.errors.LeaseLost`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, TypeVar

from learner.core.status import ServiceStatus
from learner.errors import LeaseLost, StateError
from learner.runtime.model.metrics import LearnerMetrics
from learner.state.control import POLL_SECONDS, ControlPlane, ControlView
from learner.state.lease import Lease
from learner.state.snapshots import SnapshotStore

__all__ = ["BACKOFF_CAP", "StateSync"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Backoff between attempts while Redis does not answer: from BACKOFF, doubling, up to BACKOFF_CAP.
BACKOFF, BACKOFF_CAP = 0.1, 5.0
#: How often the thread wakes up when there is nothing to do.
TICK = 0.05


class StateSync:
    """Runs the Redis side of a streaming model process (see the module's docstring)."""

    def __init__(self, store: SnapshotStore, lease: Lease, control: ControlPlane, monitor: LearnerMetrics) -> None:
        self.store, self.lease, self.control, self.monitor = store, lease, control, monitor
        self.lost: LeaseLost | None = None
        self.problem: str | None = None  # why Redis is unavailable, while it is
        self.down_since: float | None = None
        self._status: ServiceStatus | None = None
        self._view: ControlView | None = None
        self._requests: list[str] = []
        self._tasks: deque[tuple[str, Callable[[], Any], Future[Any] | None]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._backoff = BACKOFF
        self._retry_at = 0.0
        self._polled = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True, name="redis")
        self.monitor.redis_up.labels(monitor.model).set(1)

    @property
    def up(self) -> bool:
        return self.problem is None

    # -- the main loop's side ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def publish(self, status: ServiceStatus) -> None:
        """The status to publish at the next poll (the latest wins)."""
        self._status = status

    def take_view(self) -> ControlView | None:
        """What the control plane showed since the last take (snapshot requests accumulated), if anything."""
        with self._lock:
            view, self._view = self._view, None
            if view is None:
                return None
            requests, self._requests = self._requests, []
        return replace(view, requests=requests)

    def submit(self, operation: str, work: Callable[[], Any]) -> None:
        """Do ``work`` on Redis, in order with the other submitted work; retried while Redis is away."""
        with self._lock:
            self._tasks.append((operation, work, None))
        self._wake.set()

    def request(self, operation: str, work: Callable[[], T]) -> Future[T]:
        """Do ``work`` on Redis and hand back its result (or its error, without retrying)."""
        future: Future[T] = Future()
        with self._lock:
            self._tasks.append((operation, work, future))
        self._wake.set()
        return future

    def check(self) -> None:
        """Raise LeaseLost in the main loop once the thread found the lease taken."""
        if self.lost is not None:
            raise self.lost

    def stop(self, drain: float = 5.0) -> None:
        """Stop the thread, letting it finish the submitted work for up to ``drain`` seconds."""
        deadline = time.monotonic() + drain
        while self._tasks and self.up and self.lost is None and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(TICK / 5)
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(REDIS_JOIN)

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            if now < self._retry_at:
                self._sleep(self._retry_at - now)
                continue
            try:
                self._round(now)
            except LeaseLost as error:
                self.lost = error
                log.error("%s", error)
                return
            except StateError as error:
                self._unavailable(error)
                continue
            self._sleep(TICK)

    def _round(self, now: float) -> None:
        """One round of work; any Redis failure leaves it for the next attempt, in order."""
        if self.problem is not None or self.lease.renewal_due():
            self._operation("lease", self.lease.renew)  # after an outage, the epoch is checked first
            if self.problem is not None:
                self._recovered()
        if now - self._polled >= POLL_SECONDS:
            view = self._operation("poll", lambda: self.control.poll(self._status))
            self._polled = now
            with self._lock:
                self._view = view
                self._requests += view.requests
            self.store.follow_master()
        while self._tasks:
            operation, work, future = self._tasks[0]
            if future is not None and not future.set_running_or_notify_cancel():
                self._tasks.popleft()
                continue
            try:
                result = self._operation(operation, work)
            except StateError as error:
                if future is None:
                    raise  # kept at the head of the queue: done when Redis is back
                self._tasks.popleft()
                future.set_exception(error)
                raise
            self._tasks.popleft()
            if future is not None:
                future.set_result(result)

    def _operation(self, name: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except StateError:
            self.monitor.redis_errors.labels(self.monitor.model, name).inc()
            raise

    def _unavailable(self, error: StateError) -> None:
        if self.problem is None:
            self.down_since = time.monotonic()
            log.warning("Redis is unavailable (%s): predictions and learning go on; snapshots, lease renewals and "
                        "the control plane wait, retrying with backoff", error)
            self.monitor.redis_up.labels(self.monitor.model).set(0)
        self.problem = str(error)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_CAP)

    def _recovered(self) -> None:
        away = time.monotonic() - (self.down_since or time.monotonic())
        log.warning("Redis answers again after %.1fs; the lease is still ours", away)
        self.problem, self.down_since, self._backoff = None, None, BACKOFF
        self.monitor.redis_up.labels(self.monitor.model).set(1)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(min(seconds, TICK) if not self._tasks else min(seconds, TICK / 5))
        self._wake.clear()


#: Seconds to wait for the thread to finish when the service stops.
REDIS_JOIN = 10.0
