"""The follower: a serve replica's thread that keeps the model it serves current (README "Scale out").

It wakes on an announcement (:mod:`learner.state.announce`) or every ``--follow-poll`` seconds,
whichever comes first, looks at the head, the rollback count and the live publication
(:mod:`learner.state.live`), and decides with :func:`choose` what should be served. Verifying,
reading and unpickling a model happen here, off the hot path; the replica's loop takes the result
at a batch boundary (:meth:`Follower.take`). A model that does not load is logged and counted once,
and the replica serves on with the one it has until the learner publishes another.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from learner.core.step import LearningStep
from learner.errors import RedisUnavailable, SnapshotMissing, StateError
from learner.state.live import LiveMeta, LiveStore
from learner.state.snapshots import SnapshotStore

__all__ = ["Follower", "Served", "Target", "choose"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What a replica should serve: a snapshot (``version``), or the live model descending from it."""

    source: Literal["snapshot", "live"]
    version: int  # what its predictions carry as model_version (0 before the first snapshot)
    identity: tuple[object, ...]  # equal identities: nothing to load


@dataclass(frozen=True)
class Served:
    """A loaded model, ready to swap in: predict-only."""

    step: LearningStep
    target: Target
    seconds: float  # how long reading, verifying and unpickling took


def choose(head: int | None, rollbacks: int, live: LiveMeta | None, head_parent: int | None = None,
           head_learned: int = 0) -> Target | None:
    """What to serve, given the head (its parent and events learned), the rollback count and the live model.

    The live model is served while it belongs to the current lineage: it has seen every rollback,
    and it descends from the head (or, just after the learner wrote the head, from the head's
    parent, with more events learned than the head has). Otherwise the head snapshot is.

    >>> live = LiveMeta("m", head=4, rollbacks=1, learned=900, epoch=2, created=0.0, river_version="x",
    ...                 size=1, checksum="c")
    >>> choose(4, 1, live).source, choose(4, 1, live).version
    ('live', 4)
    >>> choose(4, 2, live).source  # a rollback since: the live model belongs to a discarded lineage
    'snapshot'
    >>> choose(5, 1, live, head_parent=4, head_learned=800).source  # ahead of the new head, same lineage
    'live'
    >>> choose(5, 1, live, head_parent=4, head_learned=1000).source
    'snapshot'
    >>> choose(None, 0, None) is None
    True
    """
    if live is not None and live.rollbacks == rollbacks and (
            live.head == head or (head is not None and live.head == head_parent and live.learned > head_learned)):
        return Target("live", live.head or 0, ("live", live.checksum, live.created))
    if head is None:
        return None
    return Target("snapshot", head, ("snapshot", head))


class Follower:
    """Loads every new model the learner publishes, from a daemon thread."""

    def __init__(self, store: SnapshotStore, poll: float, force: bool = False) -> None:
        self.store, self.live, self.poll, self.force = store, LiveStore(store), poll, force
        self.announcements = store.announcements()
        self.head: int | None = None  # the head as last seen
        self.behind = 0  # versions in the history newer than the one served
        self.failures = 0
        self.last_failure: str | None = None
        self.redis_problem: str | None = None
        self.looked = threading.Event()  # set after each look (tests and start-up wait on it)
        self._lock = threading.Lock()
        self._ready: Served | None = None
        self._served: Target | None = None
        self._failed: tuple[object, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="follower")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.announcements.close()

    def take(self) -> Served | None:
        """The model loaded since the last call, if any (the replica swaps it in now)."""
        with self._lock:
            served, self._ready = self._ready, None
        if served is not None:
            self._served = served.target
        return served

    def look(self) -> None:
        """One look at what the learner published; load it if it is new (on the follower's thread)."""
        try:
            self._look()
        finally:
            self.looked.set()

    def _look(self) -> None:
        try:
            target = self._target()
            self.redis_problem = None
        except RedisUnavailable as error:
            if self.redis_problem is None:
                log.warning("%s: serving on with the model at hand, and looking again", error)
            self.redis_problem = str(error)
            return
        except StateError as error:  # the live model's metadata is unreadable or badly signed
            self._failed_to_load(("meta", str(error)), error)
            return
        pending = self._ready.target if self._ready is not None else self._served
        if target is None or (pending is not None and target.identity == pending.identity):
            return
        if target.identity == self._failed:
            return
        started = time.perf_counter()
        try:
            step = self._load(target)
        except RedisUnavailable as error:
            self.redis_problem = str(error)
            return
        except StateError as error:
            self._failed_to_load(target.identity, error)
            return
        with self._lock:
            self._ready = Served(step, target, time.perf_counter() - started)

    def _target(self) -> Target | None:
        store = self.store
        head = store.head()
        self.head = head
        rollbacks = store.rollbacks()
        live = self.live.meta()
        parent, learned = None, 0
        if head is not None and live is not None and live.head != head:
            try:
                meta = store.meta(head)
                parent, learned = meta.parent, meta.events_learned
            except SnapshotMissing:
                pass
        target = choose(head, rollbacks, live, parent, learned)
        served = self._served.version if self._served is not None else None
        self.behind = 0 if head is None or served == head else store.count_newer(served or 0)
        return target

    def _load(self, target: Target) -> LearningStep:
        if target.source == "live":
            meta = self.live.meta()
            if meta is None or (meta.checksum, meta.created) != target.identity[1:]:
                raise SnapshotMissing("the live model changed while it was read; looking again")
            state = self.live.load(meta, self.force)
        else:
            state = self.store.load(target.version, self.force).state
        step = LearningStep(state.model, state.learned)
        step.learning = False  # a replica predicts only
        return step

    def _failed_to_load(self, identity: tuple[object, ...], error: StateError) -> None:
        if identity == self._failed:
            return
        self._failed = identity
        self.failures += 1
        self.last_failure = str(error)
        log.error("cannot serve the new model (%s): serving on with the one at hand", error)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.look()
            self.announcements.wait(self.poll)
