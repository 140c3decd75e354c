"""The model this process serves and learns, and where it stands in the stream.

The hot path is :meth:`LiveModel.learn`: decode a batch (one ``orjson.loads``), step the model
over it, answer. Everything else (snapshots, rollbacks, the guard) replaces or reads this state
at a batch boundary, never in the middle of a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from learner.core.checkpoint import Checkpoint
from learner.core.labels import LabelJoin, Lost
from learner.core.models import describe_params
from learner.core.positions import Position
from learner.core.scorecard import Scorecard
from learner.core.step import ItemOutcome, Join, LearningStep, Outcome
from learner.runtime.gateway import protocol as p
from learner.runtime.model.restore import Restored
from learner.settings import Settings

__all__ = ["SLICE", "SLICE_SECONDS", "LiveModel"]

#: Events stepped between two looks at the clock when a batch is sliced.
SLICE = 64
#: Seconds of model work after which a sliced batch lets the model process look at its messages.
SLICE_SECONDS = 0.05


class LiveModel:
    """The learning step, its lineage (head, version, spec) and its checkpoint."""

    def __init__(self, restored: Restored, settings: Settings) -> None:
        self.checkpoint = Checkpoint(settings.snapshot_every_events, settings.snapshot_every_seconds,
                                     restored.position)
        self.checkpoint.marks = dict(restored.marks)
        self.epoch = 0  # grows at each seek (a replay); batches read before it are dropped
        self.model_seconds = 0.0  # in the learning step: the model's utilisation, next to wall time
        self.started_at: float | None = None
        self._use(restored)

    def _use(self, restored: Restored) -> None:
        self.step: LearningStep = restored.step
        self.scorecard: Scorecard = restored.scorecard  # as of the last barrier (the gateway's is live)
        self.head: int | None = restored.head  # the version the next snapshot descends from
        self.version: int = restored.head or 0  # what the predictions carry as model_version
        self.spec: str = restored.spec
        self.params = describe_params(restored.step.model)
        self.join: LabelJoin | None = restored.join  # with a labels topic

    def scored(self, scorecard: Scorecard) -> None:
        """The gateway's scorecard as of a snapshot barrier: what the next restore of this lineage brings back."""
        self.scorecard = scorecard

    def rebase(self, head: int) -> None:
        """Redis lost writes of ours: the next snapshot descends from ``head``, what Redis kept."""
        self.head = head

    @property
    def position(self) -> Position:
        return self.checkpoint.position

    @property
    def learning(self) -> bool:
        return self.step.learning

    @learning.setter
    def learning(self, on: bool) -> None:
        self.step.learning = on

    def learn(self, batch: p.Batch, between: Callable[[], None] | None = None) -> p.Results | None:
        """Step the model over one batch, in order; None for a batch read before a seek.

        With ``between``, a batch without a labels topic is stepped in slices, and ``between`` is
        called whenever :data:`SLICE_SECONDS` of model work have passed: a slow model (milliseconds
        per event) takes seconds over a batch, and a snapshot barrier's answer must not wait for it.
        """
        if batch.epoch != self.epoch:
            return None  # the gateway has dropped it too
        if self.started_at is None:
            self.started_at = time.perf_counter()
        learned, events = self.step.learned, orjson.loads(batch.events)
        started = time.perf_counter()
        outcomes: Sequence[ItemOutcome]
        if self.join is None:
            outcomes = self._sliced(events, between) if between is not None else self.step.process_batch(events)
            joins: list[Join] = []
            lost: list[Lost] = []
        else:
            outcomes, joins, lost = self.step.process_items(events, self.join)
        seconds = time.perf_counter() - started
        self.model_seconds += seconds
        self.checkpoint.add(batch.position, batch.count, batch.marks)
        return p.Results(batch.seq, learned, self.version, self.step.learning, outcomes, joins, lost, seconds)

    def _sliced(self, events: list[dict[str, Any]], between: Callable[[], None]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        looked = time.perf_counter()
        for start in range(0, len(events), SLICE):
            outcomes += self.step.process_batch(events[start:start + SLICE])
            if (now := time.perf_counter()) - looked >= SLICE_SECONDS:
                between()
                looked = now
        return outcomes

    def replace(self, restored: Restored, seek: bool) -> None:
        """Continue from another version (a rollback) at this boundary; ``seek``: from its position."""
        learning = self.step.learning  # a tripped guard stays tripped across an operator's rollback
        self._use(restored)
        self.step.learning = learning
        marks = self.checkpoint.marks
        if seek:
            self.epoch += 1
            marks = dict(restored.marks)
        self.checkpoint.reset(restored.position, saved=True)
        self.checkpoint.marks = marks

    def committed(self, version: int) -> None:
        """A snapshot of this lineage was written: it is the head now."""
        self.head = self.version = version
