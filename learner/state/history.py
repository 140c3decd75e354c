"""A learner's metric history in Redis (README "History and timeline"): a capped stream of points.

The learner appends a :class:`~learner.core.history.HistoryPoint` every ``EVERY_SECONDS`` (5 s) from
its Redis thread; the stream keeps the newest ``MAX_POINTS`` (3 days at that pace, about 20 MB for a
model with a few metrics), across restarts, so a chart drawn later still has the learning curve.
"""

from __future__ import annotations

import redis

from learner.core.history import HistoryPoint
from learner.state.failures import translated
from learner.state.replies import as_bytes

__all__ = ["EVERY_SECONDS", "MAX_POINTS", "MetricHistory"]

#: Seconds between two points.
EVERY_SECONDS = 5.0
#: Points kept (approximately): three days at one every 5 s.
MAX_POINTS = 3 * 86_400 // 5


class MetricHistory:
    """Append to and read the history stream of one lineage."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis, self.key = client, key

    @translated
    def append(self, point: HistoryPoint) -> None:
        self._redis.xadd(self.key, {"p": point.to_json()}, maxlen=MAX_POINTS, approximate=True)

    @translated
    def points(self, count: int = 1000, since: float = 0.0) -> list[HistoryPoint]:
        """The newest ``count`` points at or after ``since`` (epoch seconds), oldest first."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = self._redis.xrevrange(  # type: ignore[assignment]
            self.key, min=f"{int(since * 1000)}-0" if since else "-", count=count)
        return [HistoryPoint.from_json(as_bytes(fields[b"p"]) or b"{}") for _, fields in reversed(rows)]
