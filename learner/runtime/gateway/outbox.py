"""What the gateway sends to the model process, in the order the model needs it.

A batch waits its turn: a slow model (milliseconds per event) takes seconds per batch, and up to
``MAX_IN_FLIGHT`` batches may be queued. A control message must not wait behind them: the answer
to a snapshot barrier (the snapshot completes only when the model has it), a report, a guard trip,
a failure. So the writer thread sends control messages ahead of batches not yet sent, batches in
their order, and the end last. Reordering is safe: a barrier's answer describes the events before
the barrier, whatever the model learns after it; a report is numbers; a guard trip is acted on sooner.

>>> from learner.runtime.gateway import protocol as p
>>> outbox = Outbox()
>>> for message in [p.Batch(1, 0, b"[]", {}, 0), None, p.GuardTripped(0.5), p.Batch(2, 0, b"[]", {}, 0)]:
...     outbox.put(message)
>>> [type(outbox.get()).__name__ for _ in range(4)]
['GuardTripped', 'Batch', 'Batch', 'NoneType']
"""

from __future__ import annotations

import itertools
import queue

from learner.runtime.gateway import protocol as p

__all__ = ["Outbox"]

_CONTROL, _BATCH, _END = 0, 1, 2


class Outbox:
    """A queue with two lanes and an end: control messages first, then batches in order, then None."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, p.ToModel | None]] = queue.PriorityQueue()
        self._order = itertools.count()

    def put(self, message: p.ToModel | None) -> None:
        rank = _END if message is None else _BATCH if isinstance(message, p.Batch) else _CONTROL
        self._queue.put((rank, next(self._order), message))

    def get(self) -> p.ToModel | None:
        return self._queue.get()[2]
