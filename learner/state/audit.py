"""The audit log of one model: a Redis stream of who did what to its snapshots, when and why.

Rollbacks, pins, deletes, lease changes and guard trips are appended here and shown by
``learner snapshots log``; a stream keeps them ordered, timestamped by Redis and capped in size.
"""

from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass

import redis

from learner.state.failures import translated

__all__ = ["AuditLog", "Entry", "operator"]

#: Entries kept (approximately) per model; the oldest are trimmed first.
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Entry:
    at: float
    action: str
    who: str
    detail: str


def operator() -> str:
    """Who is acting: user@host, the same way for every command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class AuditLog:
    """Append and read the audit stream of one model."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis = client
        self.key = key

    @translated
    def append(self, action: str, detail: str, who: str | None = None) -> None:
        fields = {"action": action, "who": who or operator(), "detail": detail, "at": f"{time.time():.3f}"}
        self._redis.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]

    @translated
    def entries(self, count: int = 100) -> list[Entry]:
        """The newest ``count`` entries, oldest first."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = self._redis.xrevrange(self.key, count=count)  # type: ignore[assignment]
        out = []
        for _id, fields in reversed(rows):
            f = {k.decode(): v.decode() for k, v in fields.items()}
            out.append(Entry(float(f["at"]), f["action"], f["who"], f["detail"]))
        return out
