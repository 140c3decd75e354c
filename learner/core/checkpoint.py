"""Where the model stands in the stream, what of it is saved, and when the next snapshot is due.

The position is a next-offset per ``(topic, partition)`` (the first event not yet learned). It
only moves forward while streaming; a rollback or a restore replaces it wholesale. A snapshot
*started* resets the schedule (so a failing Redis is not asked again at every batch); only a
snapshot *written* moves what is saved, so a stop after a failed snapshot still takes a last one.

>>> checkpoint = Checkpoint(every_events=2, every_seconds=0, now=0.0)
>>> checkpoint.add({("events", 0): 42}, 2)
>>> checkpoint.due(now=1.0), checkpoint.unsaved
(True, True)
>>> started = checkpoint.taken(now=1.0)
>>> checkpoint.due(now=2.0), checkpoint.unsaved
(False, True)
>>> checkpoint.saved(started)
>>> checkpoint.unsaved
False
"""

from __future__ import annotations

import time

from learner.core.positions import Position

__all__ = ["Checkpoint"]


class Checkpoint:
    """The position learned up to, the last position saved, and the snapshot schedule."""

    def __init__(self, every_events: int, every_seconds: float, position: Position | None = None,
                 now: float | None = None) -> None:
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.position: Position = dict(position or {})
        #: The merge's monotone timestamp per partition, with a labels topic (kept with the position).
        self.marks: dict[tuple[str, int], int] = {}
        self._saved: Position = dict(self.position)
        self.pending = 0  # events since the last snapshot started
        self._since = time.monotonic() if now is None else now

    def add(self, done: Position, count: int, marks: dict[tuple[str, int], int] | None = None) -> None:
        """Record a whole batch: ``done`` maps partitions to their new next-offsets."""
        self.position.update(done)
        if marks:
            self.marks.update(marks)
        self.pending += count

    def due(self, now: float | None = None) -> bool:
        """Whether a snapshot should be taken at this event boundary."""
        if not self.pending:
            return False
        if self.every_events and self.pending >= self.every_events:
            return True
        elapsed = (time.monotonic() if now is None else now) - self._since
        return bool(self.every_seconds) and elapsed >= self.every_seconds

    def taken(self, now: float | None = None) -> Position:
        """A snapshot of everything up to here was started: restart the schedule; its position."""
        self.pending = 0
        self._since = time.monotonic() if now is None else now
        return dict(self.position)

    def saved(self, position: Position) -> None:
        """A snapshot of ``position`` was written."""
        self._saved = dict(position)

    @property
    def unsaved(self) -> bool:
        """Whether the model has learned anything the newest written snapshot does not hold."""
        return self.position != self._saved

    def reset(self, position: Position, saved: bool = False) -> None:
        """Replace the position (restore, rollback): the one time it may go backwards."""
        self.position = dict(position)
        if saved:
            self._saved = dict(position)
        self.pending = 0
