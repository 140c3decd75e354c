"""How operators reach a running service: through Redis, polled a few times a second.

One round trip per poll reads the head (a rollback moves it), takes pending snapshot requests
(``learner snapshot``) and publishes the service's status (``learner status``), so a command
works the same whichever machine the service runs on, with no port to open.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from learner.state.snapshots import SnapshotStore

#: Seconds between polls: a rollback is adopted within this (well under the promised 2 s).
POLL_SECONDS = 0.25
#: A published status older than this means no service is running.
STATUS_TTL = 10


class Control:
    """The service's side of the control plane for one model name."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.client = store.client
        self._polled = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._polled >= POLL_SECONDS

    def poll(self, status: dict[str, Any]) -> tuple[int | None, int, list[str], bool]:
        """Publish ``status``; return the head, the rollback count, pending snapshot requests and
        whether the guard's stop still stands."""
        self._polled = time.monotonic()
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.store.key("head"))
        pipe.hget(self.store.key("rollback"), "seq")
        pipe.lpop(self.store.key("requests"), 100)
        pipe.set(self.store.key("status"), orjson.dumps({**status, "updated": time.time()}), ex=STATUS_TTL)
        pipe.exists(self.store.key("guard"))
        head, rollbacks, requests, _, guarded = pipe.execute()
        return ((int(head) if head is not None else None), int(rollbacks or 0),
                [r.decode() for r in requests or []], bool(guarded))

    def reply(self, request: str, answer: str) -> None:
        key = self.store.key(f"reply:{request}")
        self.client.rpush(key, answer)
        self.client.expire(key, 60)


def request_snapshot(store: SnapshotStore, timeout: float = 60.0) -> str:
    """Ask the running service for a snapshot now; its answer (the version, or why not)."""
    request = uuid.uuid4().hex
    store.client.rpush(store.key("requests"), request)
    deadline, answer = time.monotonic() + timeout, None
    while answer is None and time.monotonic() < deadline:  # short waits: under the client's read timeout
        answer = store.client.blpop([store.key(f"reply:{request}")], timeout=2)
    if answer is None:
        store.client.lrem(store.key("requests"), 0, request)
        raise TimeoutError(f"no running service of {store.name!r} answered within {timeout:g}s")
    return str(answer[1].decode())


def service_status(store: SnapshotStore) -> dict[str, Any] | None:
    """What the running service last published, or None when none runs."""
    raw = store.client.get(store.key("status"))
    return None if raw is None else dict(orjson.loads(raw))
