"""The audit log of one model: a Redis stream of who did what to its snapshots, when and why.

Rollbacks, pins, deletes and lease changes are appended here and shown by
``learner snapshots log``; a stream keeps them ordered, timestamped by Redis and capped in size.
"""

from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass

import redis

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
    """Append and read the audit stream ``learner:{NAME}:audit``."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def append(self, action: str, detail: str, who: str | None = None) -> None:
        fields = {"action": action, "who": who or operator(), "detail": detail, "at": f"{time.time():.3f}"}
        self.client.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]

    def entries(self, count: int = 100) -> list[Entry]:
        """The newest ``count`` entries, oldest first."""
        rows = self.client.xrevrange(self.key, count=count)
        out = []
        for _id, fields in reversed(rows):
            f = {k.decode(): v.decode() for k, v in fields.items()}
            out.append(Entry(float(f["at"]), f["action"], f["who"], f["detail"]))
        return out
