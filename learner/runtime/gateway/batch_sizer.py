"""How many events the gateway puts in a batch: as many as the model works through in a few tens
of milliseconds, never more than ``--batch-size``.

A batch's predictions are published when the model has answered all of it, so a model that costs
milliseconds per event (a forest) would answer a 2,000-event batch in seconds: a prediction would
wait for its 1,999 neighbours, the stream would move in bursts, and a snapshot barrier would wait
behind whole batches. Sized by the model's own time per event (reported with each answer), a batch
is a bounded amount of work whatever the model: a fast model still gets ``--batch-size`` (its
2,000 events take under :data:`BATCH_SECONDS`), a slow one gets a few events at a time, and the
batches in flight keep it busy either way. Pure: it only sees the answers' figures.

>>> sizer = BatchSizer(limit=2000)
>>> sizer.size  # before any answer: small, in case the model is slow
64
>>> sizer.answered(events=64, seconds=64 * 0.000015)  # 15 µs per event: the whole limit fits
>>> sizer.size
2000
>>> for _ in range(20):
...     sizer.answered(events=sizer.size, seconds=sizer.size * 0.002)  # the model turns slow: 2 ms per event
>>> sizer.size
20
"""

from __future__ import annotations

__all__ = ["BATCH_SECONDS", "BatchSizer"]

#: Model work per batch the sizer aims at (seconds): well under the 100 ms a person notices.
BATCH_SECONDS = 0.04
#: The first batches' size, before the model's speed is known.
FIRST = 64
#: Weight of the newest answer in the running estimate of the model's time per event.
ALPHA = 0.3


class BatchSizer:
    """The size of the next batch (see the module's docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = min(limit, FIRST)
        self.per_event: float | None = None  # seconds of model work per event, smoothed

    def answered(self, events: int, seconds: float) -> None:
        """The model answered a batch of ``events`` items in ``seconds`` of its own work."""
        if events <= 0:
            return
        sample = seconds / events
        self.per_event = sample if self.per_event is None else ALPHA * sample + (1 - ALPHA) * self.per_event
        self.size = self.limit if self.per_event <= 0 else max(1, min(self.limit, int(BATCH_SECONDS / self.per_event)))
