"""The learner's side of its metric history (README "History and timeline"): every ``EVERY_SECONDS``,
the status it publishes anyway becomes a point on its history stream, written by the Redis thread.

A point is a record: when Redis is away it is dropped, never queued ahead of the lease and the
snapshots (the chart shows a gap, which is what happened).
"""

from __future__ import annotations

import time

from learner.core.history import HistoryPoint
from learner.core.status import ServiceStatus
from learner.errors import LearnerError
from learner.runtime.model.state_sync import StateSync
from learner.state.history import EVERY_SECONDS

__all__ = ["HistoryRecorder"]


class HistoryRecorder:
    """Turns a status into a history point every few seconds."""

    def __init__(self, sync: StateSync, every: float = EVERY_SECONDS) -> None:
        self.sync, self.every = sync, every
        self._last: tuple[float, int] | None = None  # (monotonic time, events done) of the last point

    def record_if_due(self, status: ServiceStatus) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.every:
            return
        rate = 0.0 if self._last is None else (status.events_done - self._last[1]) / (now - self._last[0])
        self._last = (now, status.events_done)
        point = HistoryPoint(time.time(), status.events_done, status.events_learned, status.model_version,
                             round(max(rate, 0.0), 1), sum(status.lag.values()), status.metrics,
                             dict(status.labels) if status.labels else None)
        history = self.sync.store.history

        def append() -> None:
            try:
                history.append(point)
            except LearnerError:  # a record, not a duty: dropped while Redis is away
                pass

        self.sync.submit("history", append)
