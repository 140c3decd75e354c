"""Taking snapshots without stalling the stream (SPEC R-SNAP).

Pickling a large model takes as long as it takes (an adaptive random forest: around a second), so
it happens in a forked child: ``fork()`` gives the child a consistent, copy-on-write image of the
model at an event boundary, the child pickles, signs and writes it to Redis, and the parent goes
on streaming meanwhile. The parent's pause is the fork itself.

A snapshot may also be *completed* later: the child is forked at the boundary, then waits for the
rest of its state (the service's evaluation, which comes with the gateway's confirmation that
every prediction up to the boundary is published). The parent learns on meanwhile, and hands the
rest over with :meth:`Snapshotter.complete`; if it never does (it stops first), nothing is written.

One snapshot is in flight at a time. The child dies with its parent (``PR_SET_PDEATHSIG``), and the
write is fenced in Redis anyway, so an orphan can never move the head behind a new process's back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from learner.state.snapshots import Fenced, SnapshotError, SnapshotStore, dump_state

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Outcome:
    """How one snapshot ended."""

    version: int
    ok: bool
    error: str = ""
    fenced: bool = False
    size: int = 0
    seconds: float = 0.0
    offsets: dict[tuple[str, int], int] | None = None


@dataclass
class _InFlight:
    pid: int
    pipe: int
    version: int
    offsets: dict[tuple[str, int], int]
    started: float
    rest: int | None = None  # write end of the pipe the child waits on for the rest of its state


class Snapshotter:
    """Writes one snapshot at a time, in a forked child (background) or in-process."""

    def __init__(self, store: SnapshotStore, keep: int, background: bool = True) -> None:
        self.store = store
        self.keep = keep
        self.background = background and hasattr(os, "fork")
        self._in_flight: _InFlight | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    def start(self, state: dict[str, Any], fields: dict[str, Any], offsets: dict[tuple[str, int], int],
              expected_head: int | None, epoch: int | None, completed_later: bool = False,
              rollbacks: int | None = None) -> int | Outcome:
        """Begin a snapshot of ``state``; returns its version (background) or its outcome (in-process).

        With ``completed_later`` (background only) the child waits for :meth:`complete`. The write
        is refused if the head, the lease epoch or the rollback count has moved on meanwhile.
        """
        version = self.store.next_version()
        job = _Job(state, {**fields, "version": version}, expected_head, epoch, self.keep, rollbacks)
        if not self.background:
            return self._finish(version, offsets, time.monotonic(), _run(job.write, self.store))
        read_end, write_end = os.pipe()
        rest_read, rest_write = os.pipe() if completed_later else (None, None)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            if rest_write is not None:
                os.close(rest_write)
            _child(job, self.store, write_end, rest_read)
        os.close(write_end)
        if rest_read is not None:
            os.close(rest_read)
        self._in_flight = _InFlight(pid, read_end, version, dict(offsets), time.monotonic(), rest_write)
        return version

    @property
    def waiting(self) -> bool:
        """Whether the snapshot in flight still waits for :meth:`complete`."""
        return self._in_flight is not None and self._in_flight.rest is not None

    def complete(self, state: dict[str, Any], fields: dict[str, Any]) -> None:
        """Hand the waiting child the rest of its state and metadata; it writes the snapshot now."""
        job = self._in_flight
        if job is None or job.rest is None:
            return
        data = pickle.dumps((state, fields), protocol=pickle.HIGHEST_PROTOCOL)
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

    def poll(self) -> Outcome | None:
        """The outcome of the snapshot in flight, if it has finished; never blocks."""
        job = self._in_flight
        if job is None:
            return None
        pid, _status = os.waitpid(job.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._collect(job)

    def wait(self) -> Outcome | None:
        """Block until the snapshot in flight (if any) has finished; one still waiting is abandoned."""
        job = self._in_flight
        if job is None:
            return None
        self.abandon()
        os.waitpid(job.pid, 0)
        return self._collect(job)

    def _collect(self, job: _InFlight) -> Outcome:
        self._in_flight = None
        chunks = []
        while chunk := os.read(job.pipe, 65536):
            chunks.append(chunk)
        os.close(job.pipe)
        report = orjson.loads(b"".join(chunks) or b'{"ok": false, "error": "the snapshot process died"}')
        return self._finish(job.version, job.offsets, job.started, report)

    def _finish(self, version: int, offsets: dict[tuple[str, int], int], started: float,
                report: dict[str, Any]) -> Outcome:
        seconds = time.monotonic() - started
        return Outcome(version, bool(report["ok"]), report.get("error", ""), bool(report.get("fenced")),
                       int(report.get("size", 0)), seconds, offsets)


@dataclass
class _Job:
    """The work of one snapshot, given a store (the child builds its own Redis connection)."""

    state: dict[str, Any]
    fields: dict[str, Any]
    expected_head: int | None
    epoch: int | None
    keep: int
    rollbacks: int | None = None

    def write(self, target: SnapshotStore) -> dict[str, Any]:
        blob = dump_state(self.state)
        meta = target.build_meta(blob, **self.fields)
        target.write(meta, blob, self.expected_head, self.epoch, self.rollbacks)
        target.apply_retention(self.keep)
        return {"ok": True, "size": len(blob)}

    def wait_for_rest(self, pipe: int) -> bool:
        """Read the rest of the state from the parent; False if the parent gave up (or died)."""
        with open(pipe, "rb", closefd=True) as source:
            data = source.read()
        if not data:
            return False
        state, fields = pickle.loads(data)
        self.state, self.fields = {**self.state, **state}, {**self.fields, **fields}
        return True


def _run(write: Callable[[SnapshotStore], dict[str, Any]], store: SnapshotStore) -> dict[str, Any]:
    try:
        return write(store)
    except Fenced as error:
        return {"ok": False, "fenced": True, "error": str(error)}
    except (SnapshotError, redis.RedisError, OSError) as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def _child(job: _Job, parent: SnapshotStore, pipe: int, rest: int | None) -> None:
    """Body of the forked child: write, report on the pipe, and leave without running any cleanup."""
    report: dict[str, Any] = {"ok": False, "error": "the snapshot process failed"}
    try:
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if rest is not None and not job.wait_for_rest(rest):
            report = {"ok": False, "error": "abandoned: the stream stopped before its outputs were confirmed"}
            return
        # A fresh connection: the parent's pool may be mid-use by another thread at fork time.
        pool = parent.client.connection_pool
        client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class,
                                                                  **pool.connection_kwargs))
        report = _run(job.write, SnapshotStore(client, parent.name, parent.signer))
    except BaseException as error:  # noqa: BLE001 - the child must always report and exit
        report = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    finally:
        try:
            os.write(pipe, orjson.dumps(report))
        finally:
            os._exit(0)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.debug("PR_SET_PDEATHSIG unavailable")
