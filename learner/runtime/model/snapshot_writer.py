"""Writing snapshots without stalling the stream (README "Snapshots, history and rollback"): a forked child pickles and writes.

Pickling a large model takes as long as it takes (an adaptive random forest: a quarter of a
second and more), so it happens in a forked child: ``fork()`` gives the child a consistent,
copy-on-write image of the model at an event boundary, the child pickles, signs and writes it to
Redis, and the parent goes on streaming meanwhile. The parent's pause is the fork itself.

A snapshot may be *completed* later: the child is forked at the boundary, then waits for the rest
of its state (the scorecard, which comes with the gateway's confirmation that every prediction up
to the boundary is published). The parent learns on meanwhile and hands the rest over with
:meth:`SnapshotWriter.complete`; if it never does (it stops first), the child writes nothing.

One snapshot is in flight at a time. The child dies with its parent (``PR_SET_PDEATHSIG``), and the
write is fenced in Redis anyway, so an orphan can never move the head behind a new process's back.
All of a background snapshot's Redis work (reserving its version included) happens in the child:
the stream never waits on Redis for a snapshot.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import dataclass, replace
from typing import Any

from learner.core.positions import Position
from learner.core.scorecard import Scorecard
from learner.core.snapshot_state import SnapshotState
from learner.core.timeline import TimelineEntry
from learner.errors import LearnerError, StateError
from learner.runtime.shared.forked import Forked
from learner.state.pickled import dump_state
from learner.state.snapshots import SnapshotStore

__all__ = ["SnapshotJob", "SnapshotRest", "SnapshotWriter", "WriteOutcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotJob:
    """One snapshot to write: the state at a boundary and what its write must check."""

    state: SnapshotState
    fields: dict[str, Any]  # SnapshotMeta fields the writer knows (parent, offsets, spec, reason, ...)
    position: Position
    expected_head: int | None
    epoch: int | None
    rollbacks: int | None
    keep: int


@dataclass(frozen=True)
class SnapshotRest:
    """What completes a job after the barrier: the scorecard of exactly the events its offsets cover
    (``None`` in tests that need no evaluation), and its metric values for the metadata."""

    scorecard: Scorecard | None
    metrics: dict[str, dict[str, float]]

    def completes(self, job: SnapshotJob) -> SnapshotJob:
        fields = {**job.fields, "metrics": self.metrics}
        if self.scorecard is not None and self.scorecard.pairing is not None:  # a challenger's standing, as of here
            fields["extra"] = {**fields.get("extra", {}), "pairing": self.scorecard.pairing.report()}
        return replace(job, state=replace(job.state, scorecard=self.scorecard), fields=fields)


@dataclass(frozen=True)
class WriteOutcome:
    """How one snapshot ended: its version, and the error when it was not written."""

    version: int | None  # None when it failed before a version was reserved
    position: Position
    error: LearnerError | None = None
    size: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _InFlight:
    child: Forked[WriteOutcome]
    position: Position
    started: float
    rest: int | None = None  # write end of the pipe the child waits on for the rest of its state


class SnapshotWriter:
    """Writes one snapshot at a time, in a forked child (background) or in-process."""

    def __init__(self, store: SnapshotStore, background: bool = True) -> None:
        self.store = store
        self.background = background and hasattr(os, "fork")
        self._in_flight: _InFlight | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    def write_now(self, job: SnapshotJob) -> WriteOutcome:
        """Write in this process (the stream waits): the shutdown snapshot, or no background."""
        started = time.monotonic()
        outcome = _write(job, self.store)
        return replace(outcome, seconds=time.monotonic() - started)

    def start(self, job: SnapshotJob, completed_later: bool = False) -> None:
        """Fork the child that writes ``job`` (and reserves its version).

        With ``completed_later`` the child waits for :meth:`complete` before it writes.
        """
        rest_read, rest_write = os.pipe() if completed_later else (None, None)
        store = self.store
        child = Forked(lambda: _in_child(job, store, rest_read), lambda error: _failed(job, error),
                       close_in_child=() if rest_write is None else (rest_write,))
        if rest_read is not None:
            os.close(rest_read)
        self._in_flight = _InFlight(child, dict(job.position), time.monotonic(), rest_write)

    def complete(self, rest: SnapshotRest) -> None:
        """Hand the waiting child the rest of its state and metadata; it writes the snapshot now."""
        job = self._in_flight
        if job is None or job.rest is None:
            return
        data = pickle.dumps(rest, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with open(job.rest, "wb", closefd=True) as pipe:
                pipe.write(data)
        except OSError:
            pass  # the child is gone: poll() reports it
        job.rest = None

    def abandon(self) -> None:
        """The rest will never come (the stream stopped first): the waiting child writes nothing."""
        job = self._in_flight
        if job is not None and job.rest is not None:
            os.close(job.rest)
            job.rest = None

    def poll(self) -> WriteOutcome | None:
        """The outcome of the snapshot in flight, if it has finished; never blocks."""
        job = self._in_flight
        if job is None:
            return None
        finished, outcome = job.child.poll()
        return self._collected(job, outcome) if finished else None

    def wait(self) -> WriteOutcome | None:
        """Block until the snapshot in flight (if any) has finished; one still waiting is abandoned."""
        job = self._in_flight
        if job is None:
            return None
        self.abandon()
        return self._collected(job, job.child.wait())

    def _collected(self, job: _InFlight, outcome: WriteOutcome | None) -> WriteOutcome:
        self._in_flight = None
        seconds = time.monotonic() - job.started
        if outcome is None:
            return WriteOutcome(None, job.position, StateError("the snapshot process died"), seconds=seconds)
        return replace(outcome, position=job.position, seconds=seconds)


def _write(job: SnapshotJob, store: SnapshotStore) -> WriteOutcome:
    """Reserve a version, pickle, sign, write (fenced), apply retention; a refusal or a Redis failure
    is the outcome."""
    version: int | None = None
    try:
        version = store.next_version()
        blob = dump_state(job.state)
        meta = store.build_meta(blob, version=version, **job.fields)
        store.write(meta, blob, job.expected_head, job.epoch, job.rollbacks)
        store.timeline.note(TimelineEntry("snapshot", meta.created, version, meta.events_learned, why=meta.reason,
                                          detail={"parent": meta.parent, "size": meta.size}))
        store.apply_retention(job.keep)
    except LearnerError as error:
        return WriteOutcome(version, job.position, error)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as error:  # the state did not pickle
        return WriteOutcome(version, job.position, StateError(f"{type(error).__name__}: {error}"))
    return WriteOutcome(version, job.position, size=len(blob))


def _wait_for_rest(job: SnapshotJob, pipe: int) -> SnapshotJob | None:
    """Read the rest of the state from the parent; None if the parent gave up (or died)."""
    with open(pipe, "rb", closefd=True) as source:
        data = source.read()
    if not data:
        return None
    rest: SnapshotRest = pickle.loads(data)
    return rest.completes(job)


def _in_child(job: SnapshotJob, parent: SnapshotStore, rest: int | None) -> WriteOutcome:
    """The forked child's work: wait for the rest (if it comes later), then write."""
    completed = job if rest is None else _wait_for_rest(job, rest)
    if completed is None:
        return WriteOutcome(None, job.position, StateError("abandoned: the stream stopped before its outputs were confirmed"))
    return _write(completed, parent.reconnected())  # new connections: the parent's may be mid-use at fork time


def _failed(job: SnapshotJob, error: BaseException) -> WriteOutcome:
    return WriteOutcome(None, job.position, StateError(f"{type(error).__name__}: {error}"))
