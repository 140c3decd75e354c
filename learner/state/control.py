"""How operators reach a running service: through Redis, polled a few times a second.

One round trip per poll reads the head (a rollback moves it) and the rollback count, takes
pending snapshot requests (``learner snapshot``), reads the guard's stop flag and publishes the
service's status (``learner status``), so a command works the same whichever machine the
service runs on, with no port to open.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson

from learner.core.status import ServiceStatus
from learner.errors import NoServiceAnswered
from learner.state.failures import translated
from learner.state.replies import as_bytes, as_int, as_text
from learner.state.snapshots import SnapshotStore

__all__ = ["LAST_STATUS_TTL", "POLL_SECONDS", "STATUS_TTL", "ControlPlane", "ControlView"]

#: Seconds between polls: a rollback is adopted within this (well under the promised 2 s).
POLL_SECONDS = 0.25
#: A published status older than this means no service is running.
STATUS_TTL = 10
#: Seconds the last status of a service (running, stopped or dead) is kept.
LAST_STATUS_TTL = 86_400


@dataclass(frozen=True)
class ControlView:
    """What one poll of the control plane saw."""

    head: int | None
    rollbacks: int
    requests: list[str]
    guard_stop: str | None  # why learning is stopped by the guard, or None
    taken_at: float = 0.0  # time.monotonic() when the poll was sent: what it shows is at least this old
    challengers: int = 0  # how many challengers the model has
    enrolled: bool | None = None  # a challenger's: whether it is still registered (None: a champion)


class ControlPlane:
    """The control plane of one model name: the service's side and the operator's."""

    def __init__(self, store: SnapshotStore) -> None:
        self._redis, self._keys, self.name = store.redis, store.keys, store.name

    # -- the service's side -------------------------------------------------------------------------

    @translated
    def poll(self, status: ServiceStatus | None) -> ControlView:
        """Publish ``status`` (if there is one yet); return what an operator may have changed since the last poll."""
        sent = time.monotonic()
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._keys.head)
        pipe.hget(self._keys.rollback, "seq")
        pipe.lpop(self._keys.requests, 100)
        if status is not None:
            raw = orjson.dumps(status.stamped(time.time()).to_json(), option=orjson.OPT_NON_STR_KEYS)
            pipe.set(self._keys.status, raw, ex=STATUS_TTL)
            pipe.set(self._keys.last_status, raw, ex=LAST_STATUS_TTL)
        pipe.get(self._keys.guard)
        pipe.hlen(self._keys.challengers)
        pipe.hexists(self._keys.challengers, self._keys.challenger or "")
        head, rollbacks, requests, *_, guard, challengers, enrolled = pipe.execute()
        return ControlView(as_int(head), as_int(rollbacks) or 0, [as_text(r) or "" for r in requests or []],
                           as_text(guard), sent, int(challengers or 0),
                           None if self._keys.challenger is None else bool(enrolled))

    @translated
    def stopped(self, status: ServiceStatus) -> None:
        """A clean stop: the final status, marked stopped and kept; no running service any more."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._keys.status)
        pipe.set(self._keys.last_status, orjson.dumps(status.stamped(time.time(), stopped=True).to_json(),
                                                      option=orjson.OPT_NON_STR_KEYS), ex=LAST_STATUS_TTL)
        pipe.execute()

    @translated
    def reply(self, request: str, answer: str) -> None:
        """Answer a snapshot request: the version written, or why not."""
        key = self._keys.reply(request)
        self._redis.rpush(key, answer)
        self._redis.expire(key, 60)

    @translated
    def stop_learning(self, reason: str) -> None:
        """The guard tripped: learning stays stopped (across restarts) until ``learner resume``."""
        self._redis.set(self._keys.guard, reason)

    # -- the operator's side ------------------------------------------------------------------------

    @translated
    def guard_stop(self) -> str | None:
        """Why learning is stopped by the guard, or None when it is not."""
        return as_text(self._redis.get(self._keys.guard))

    @translated
    def resume_learning(self) -> bool:
        """Lift the guard's stop; False when learning was not stopped."""
        return bool(self._redis.delete(self._keys.guard))

    @translated
    def request_snapshot(self, timeout: float = 60.0) -> str:
        """Ask the running service for a snapshot now; its answer (the version, or why not)."""
        request = uuid.uuid4().hex
        self._redis.rpush(self._keys.requests, request)
        deadline, answer = time.monotonic() + timeout, None
        while answer is None and time.monotonic() < deadline:  # short waits: under the client's read timeout
            answer = self._redis.blpop([self._keys.reply(request)], timeout=2)
        if answer is None:
            self._redis.lrem(self._keys.requests, 0, request)
            raise NoServiceAnswered(f"no running service of {self.name!r} answered within {timeout:g}s")
        return as_text(answer[1]) or ""

    @translated
    def service_status(self) -> ServiceStatus | None:
        """What the running service last published, or None when none runs."""
        raw = as_bytes(self._redis.get(self._keys.status))
        return None if raw is None else ServiceStatus.from_json(orjson.loads(raw))

    @translated
    def last_service_status(self) -> ServiceStatus | None:
        """The last status any service published in the last day (``stopped`` set after a clean stop)."""
        raw = as_bytes(self._redis.get(self._keys.last_status))
        return None if raw is None else ServiceStatus.from_json(orjson.loads(raw))
