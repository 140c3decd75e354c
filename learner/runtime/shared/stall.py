"""A warning for a wait that lasts too long: a snapshot whose barrier or writer has not finished.

A wait that never ends must not be silent: without a line in the log, an operator sees only that no
snapshot came, and cannot tell a broker that never acknowledged the outputs from a writer that hangs.
The warning says what is awaited and for how long, after ``after`` seconds, then every ``every``
seconds while it lasts; it never interrupts the wait (the guarantees depend on it).

>>> stall = Stall(after=30.0, every=30.0)
>>> stall.begin(now=100.0)
>>> stall.due(now=120.0), stall.due(now=131.0), stall.due(now=140.0), stall.due(now=162.0)
(None, 31.0, None, 62.0)
>>> stall.end(); stall.due(now=500.0) is None
True
"""

from __future__ import annotations

import time

__all__ = ["Stall"]


class Stall:
    """Times one wait at a time; says when it has lasted long enough to be worth a warning."""

    def __init__(self, after: float = 30.0, every: float = 30.0) -> None:
        self.after, self.every = after, every
        self._began: float | None = None
        self._next = 0.0

    def begin(self, now: float | None = None) -> None:
        self._began = time.monotonic() if now is None else now
        self._next = self._began + self.after

    def end(self) -> None:
        self._began = None

    def due(self, now: float | None = None) -> float | None:
        """Seconds the wait has lasted, when a warning is due now (else None)."""
        if self._began is None:
            return None
        now = time.monotonic() if now is None else now
        if now < self._next:
            return None
        self._next = now + self.every
        return now - self._began
