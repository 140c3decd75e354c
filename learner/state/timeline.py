"""A model's timeline in Redis (README "History and timeline"): typed entries on a capped stream.

Snapshots, rollbacks, promotions, drift alarms, guard trips and resumes, lease changes: one
:class:`~learner.core.timeline.TimelineEntry` each, appended where it happens, kept for the newest
``MAX_ENTRIES`` (about 2 MB), read by ``learner timeline`` and by a dashboard.
"""

from __future__ import annotations

import logging

import redis

from learner.core.timeline import TimelineEntry
from learner.errors import LearnerError
from learner.state.failures import translated
from learner.state.replies import as_text

__all__ = ["MAX_ENTRIES", "Timeline"]

log = logging.getLogger(__name__)

#: Entries kept (approximately) per lineage; the oldest are trimmed first.
MAX_ENTRIES = 10_000


class Timeline:
    """Append to and read the timeline stream of one lineage."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis, self.key = client, key

    @translated
    def append(self, entry: TimelineEntry) -> None:
        self._redis.xadd(self.key, entry.to_fields(), maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]

    def note(self, entry: TimelineEntry) -> None:
        """Append, or log why not: a record of what happened never makes what happened fail."""
        try:
            self.append(entry)
        except LearnerError as error:
            log.warning("could not add a %s to the timeline: %s", entry.kind, error)

    @translated
    def entries(self, count: int = 100, since: float = 0.0) -> list[TimelineEntry]:
        """The newest ``count`` entries at or after ``since`` (epoch seconds), oldest first."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = self._redis.xrevrange(  # type: ignore[assignment]
            self.key, min=f"{int(since * 1000)}-0" if since else "-", count=count)
        return [TimelineEntry.from_fields({as_text(k) or "": as_text(v) or "" for k, v in fields.items()})
                for _, fields in reversed(rows)]
