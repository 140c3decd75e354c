"""The dashboard's one Redis reader (README "Dashboard"): however many tabs are open, Redis sees one
reader, refreshing what pages asked for lately about once a second.

A request never reads Redis: it takes the newest copy this reader made (and marks the model as
wanted). The reader refreshes the list of models, then each model wanted in the last minute: its
overview, and its metric history from where it left off, kept up to ``MAX_POINTS`` per model. The
serve replicas' heartbeats come from Kafka, read every ``REPLICAS_EVERY`` seconds when Kafka was
given. So the load on Redis and the memory held are bounded by the models viewed, not by visitors.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from learner.core.status import Heartbeat
from learner.errors import LearnerError
from learner.state.catalog import Catalog

__all__ = ["MAX_POINTS", "Replicas", "SharedReader"]

log = logging.getLogger(__name__)

#: History points kept per model (a day at one every 5 s), and how long a model stays wanted.
MAX_POINTS = 20_000
WANTED_SECONDS = 60.0
REPLICAS_EVERY = 10.0

Replicas = Callable[[str], list[Heartbeat]]


@dataclass
class _Model:
    """What the reader holds of one model: its overview as JSON, and its history (times, and points as JSON)."""

    wanted: float
    overview: bytes | None = None
    summary: dict[str, Any] | None = None
    times: list[float] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    replicas: tuple[list[Heartbeat] | None, str | None] = (None, None)
    replicas_read: float = 0.0


class SharedReader:
    """Reads Redis on a thread of its own; requests take its copies."""

    def __init__(self, catalog: Catalog, replicas: Replicas | None = None, every: float = 1.0) -> None:
        self.catalog, self.replicas, self.every = catalog, replicas, every
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._names: list[str] = []
        self._refreshed = threading.Condition(self._lock)
        self._rounds = 0
        self.problem: str | None = "not read yet"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # -- what requests take ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def summary(self, name: str) -> dict[str, Any]:
        """A line about ``name`` for the list of models, from the newest read (the ask marks it wanted, no wait)."""
        model = self._want(name, 0.0)
        return (model.summary if model is not None else None) or {"name": name}

    def overview(self, name: str, wait: float = 5.0) -> bytes | None:
        """The newest overview of ``name`` (None while it is not in the index); the first ask waits for a read."""
        model = self._want(name, wait)
        return None if model is None else model.overview

    def history(self, name: str, since: float = 0.0, wait: float = 5.0) -> list[dict[str, Any]]:
        """The points after ``since`` (epoch seconds), oldest first."""
        model = self._want(name, wait)
        if model is None:
            return []
        with self._lock:
            return model.points[bisect.bisect_right(model.times, since):]

    def _want(self, name: str, wait: float) -> _Model | None:
        deadline = time.monotonic() + wait
        with self._lock:
            if self._rounds and name not in self._names:
                return None  # not a model of this Redis: nothing is kept for it
            model = self._models.setdefault(name, _Model(time.monotonic()))
            model.wanted = time.monotonic()
            last = self._rounds + 2  # a whole round that began after this ask
            while model.overview is None and self._rounds < last and (left := deadline - time.monotonic()) > 0:
                self._refreshed.wait(left)
            return model

    # -- the reading thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.refresh()
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def refresh(self) -> None:
        """One round: read what is wanted, then wake the requests waiting for it (also when Redis failed)."""
        try:
            self._round()
            self.problem = None
        except LearnerError as error:
            if self.problem != str(error):
                log.warning("cannot read Redis: %s (the page shows the last figures read)", error)
            self.problem = str(error)
        except Exception as error:  # a bug must not stop the one reader: the page would freeze, unexplained
            log.exception("reading the models failed")
            self.problem = f"reading failed: {type(error).__name__} (see the dashboard's log)"
        with self._lock:
            self._rounds += 1
            self._refreshed.notify_all()

    def _round(self) -> None:
        names = self.catalog.names()
        with self._lock:
            self._names = names
            now = time.monotonic()
            for gone in [n for n, m in self._models.items() if now - m.wanted > WANTED_SECONDS]:
                del self._models[gone]  # nobody looks at it any more: its memory goes
            wanted = [(n, m) for n, m in self._models.items() if n in names]
        for name, model in wanted:
            self._read(name, model)

    def _read(self, name: str, model: _Model) -> None:
        if self.replicas is not None and time.monotonic() - model.replicas_read >= REPLICAS_EVERY:
            model.replicas_read = time.monotonic()
            try:
                model.replicas = (self.replicas(name), None)
            except LearnerError as error:
                model.replicas = (None, str(error))
        read = self.catalog.overview(name, *model.replicas)
        status = read.status or read.last_status
        summary = {"name": name, "head": read.head, "running": read.status is not None,
                   "learning": status.learning if status else None, "guard_tripped": read.guard_tripped,
                   "events_learned": status.events_learned if status else None,
                   "metrics": status.metrics if status else {}, "challengers": len(read.challengers)}
        overview = orjson.dumps(read.to_json())
        since = model.times[-1] if model.times else 0.0
        fresh = [p for p in self.catalog.history(name, since) if p.at > since]
        with self._lock:
            model.overview, model.summary = overview, summary
            model.times.extend(p.at for p in fresh)
            model.points.extend(orjson.loads(p.to_json()) for p in fresh)
            if len(model.times) > MAX_POINTS:
                del model.times[:-MAX_POINTS], model.points[:-MAX_POINTS]
