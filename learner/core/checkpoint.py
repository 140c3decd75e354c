"""Which input offsets the model has learned, and when the next snapshot is due.

Offsets are next-offsets (the first event not yet learned), per ``(topic, partition)``. They only
move forward while streaming; a rollback or a restore replaces them wholesale.

>>> checkpoint = Checkpoint(every_events=2, every_seconds=0, now=0.0)
>>> checkpoint.advance(("events", 0), 41)
>>> checkpoint.due(now=1.0)
False
>>> checkpoint.advance(("events", 0), 42)
>>> checkpoint.due(now=1.0), checkpoint.offsets
(True, {('events', 0): 43})
"""

from __future__ import annotations

import time


class Checkpoint:
    """Offsets processed since the start, and the snapshot schedule (every N events and/or S seconds)."""

    def __init__(self, every_events: int, every_seconds: float, offsets: dict[tuple[str, int], int] | None = None,
                 now: float | None = None) -> None:
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.offsets: dict[tuple[str, int], int] = dict(offsets or {})
        self.pending = 0
        self._since = time.monotonic() if now is None else now

    def advance(self, partition: tuple[str, int], offset: int) -> None:
        """Record that the event at ``offset`` is done (predicted, and learned if labelled)."""
        self.offsets[partition] = offset + 1
        self.pending += 1

    def add(self, done: dict[tuple[str, int], int], count: int) -> None:
        """Record a whole batch: ``done`` maps partitions to their new next-offsets."""
        self.offsets.update(done)
        self.pending += count

    def due(self, now: float | None = None) -> bool:
        """Whether a snapshot should be taken at this event boundary."""
        if not self.pending:
            return False
        if self.every_events and self.pending >= self.every_events:
            return True
        elapsed = (time.monotonic() if now is None else now) - self._since
        return bool(self.every_seconds) and elapsed >= self.every_seconds

    def taken(self, now: float | None = None) -> None:
        """A snapshot of everything up to here was started; restart both counters."""
        self.pending = 0
        self._since = time.monotonic() if now is None else now

    def reset(self, offsets: dict[tuple[str, int], int]) -> None:
        """Replace the offsets (restore, rollback): the one time they may go backwards."""
        self.offsets = dict(offsets)
        self.pending = 0
