"""Versioned, signed model snapshots in Redis (README "Snapshots, history and rollback" and "Exactly-once
learning, at-least-once outputs").

A snapshot is one Redis hash (:meth:`Keys.snapshot`) holding the pickled state (model, online
evaluation, events learned, ...), its metadata as JSON (the position learned up to, lineage,
versions of everything) and the metadata's signature. One Lua script writes it and moves the head
in one atomic step, after checking the writer's fencing epoch, that the head is still the version
the writer descends from, and that no rollback happened since the writer last looked: a paused
writer, or one that missed a rollback, cannot overwrite a newer lineage.

Loading verifies before it unpickles: the signature over the metadata, then the blob's SHA-256
against the checksum inside the signed metadata, then the river version. Only then is the blob
unpickled, and an unpickling failure is a :class:`~learner.errors.CorruptSnapshot` like a bad
checksum, so callers fall back or refuse the same way.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis
import river

from learner import __version__
from learner.core.positions import Position, from_json_keys, furthest, to_json_keys
from learner.core.snapshot_state import SnapshotState
from learner.errors import (
    BadSignature,
    CorruptSnapshot,
    Fenced,
    HeadMoved,
    HistoryRefused,
    OtherRiverVersion,
    RolledBack,
    SnapshotMissing,
    SnapshotRefused,
    StateError,
    WriteRefused,
)
from learner.state import scripts
from learner.state.announce import Announcements, announce
from learner.state.audit import AuditLog
from learner.state.challengers import Challengers
from learner.state.failures import translated
from learner.state.history import MetricHistory
from learner.state.keys import Keys
from learner.state.late_log import LateLog
from learner.state.pickled import load_state
from learner.state.replies import as_bytes, as_int
from learner.state.signing import UNSIGNED, Signer, checksum
from learner.state.timeline import Timeline

__all__ = ["RIVER_VERSION", "LoadedSnapshot", "RollbackRecord", "SnapshotMeta", "SnapshotStore"]

#: The river version this process runs, recorded in every snapshot and checked at every load.
RIVER_VERSION: str = river.__version__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

_REFUSALS: dict[str, type[WriteRefused]] = {"FENCED": Fenced, "HEAD_MOVED": HeadMoved, "ROLLED_BACK": RolledBack}


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot says about itself; signed, never changed after the write."""

    name: str
    version: int
    parent: int | None
    created: float
    events_learned: int
    offsets: dict[str, int]
    metrics: dict[str, dict[str, float]]
    model_spec: str
    model_params: dict[str, Any]
    river_version: str
    python_version: str
    project_version: str
    size: int
    checksum: str
    reason: str = "periodic"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> SnapshotMeta:
        return cls(**orjson.loads(raw))

    def position(self) -> Position:
        """The offsets learned up to, keyed as the consumer keys them: ``(topic, partition)``."""
        return from_json_keys(self.offsets)


@dataclass(frozen=True)
class RollbackRecord:
    """The last rollback of a model: to which version, with replay or not, and how many so far."""

    version: int
    replay: bool
    seq: int


@dataclass(frozen=True)
class LoadedSnapshot:
    """A verified, unpickled snapshot; ``fallback`` says why it is not the head, when it is not."""

    meta: SnapshotMeta
    state: SnapshotState
    fallback: str | None = None


class SnapshotStore:
    """The snapshots of one model name in one Redis.

    ``reconnect`` builds a new client like this one: a forked child must not share its parent's
    connections (:meth:`reconnected`).
    """

    def __init__(self, client: redis.Redis, name: str, signer: Signer,
                 reconnect: Callable[[], redis.Redis] | None = None, challenger: str | None = None) -> None:
        self.redis = client  # for the state layer only: everything else goes through methods
        self.name, self.challenger = name, challenger
        self.keys = Keys(name, challenger)
        self.signer = signer
        self._reconnect = reconnect
        self._write = client.register_script(scripts.WRITE_SNAPSHOT)
        self._delete = client.register_script(scripts.DELETE_SNAPSHOT)
        self._rollback = client.register_script(scripts.ROLLBACK)
        self.audit, self.late = AuditLog(client, self.keys.audit), LateLog(client, self.keys.late)
        self.timeline, self.history = Timeline(client, self.keys.timeline), MetricHistory(client, self.keys.history)
        #: The model's challengers (the same registry from every lineage of the model).
        self.challengers = Challengers(client, self.keys)

    def reconnected(self) -> SnapshotStore:
        """The same store on new connections (for a forked child)."""
        if self._reconnect is not None:
            client = self._reconnect()
        else:
            pool = self.redis.connection_pool
            client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class,
                                                                      **pool.connection_kwargs))
        return SnapshotStore(client, self.name, self.signer, self._reconnect, self.challenger)

    @property
    def label(self) -> str:
        """How messages name this lineage: ``'fraud'``, or ``challenger 'trees' of 'fraud'``."""
        return repr(self.name) if self.challenger is None else f"challenger {self.challenger!r} of {self.name!r}"

    def lineage(self, challenger: str | None) -> SnapshotStore:
        """The store of another lineage of the same model (None: the champion's), on the same connections."""
        return SnapshotStore(self.redis, self.name, self.signer, self._reconnect, challenger)

    def announcements(self) -> Announcements:
        """A subscription to this model's announcements (new head, rollback, live model)."""
        return Announcements(self.redis, self.keys)

    @translated
    def ping(self) -> None:
        self.redis.ping()

    def follow_master(self) -> None:
        """On Sentinel: ask for the master's address, which makes idle connections follow a failover
        at once (redis-py's pool disconnects them when the address changed); a no-op otherwise."""
        follow = getattr(getattr(self.redis, "connection_pool", None), "get_master_address", None)
        if callable(follow):
            try:
                follow()
            except Exception as error:  # Sentinel did not answer: the next command's failure is what counts
                log.debug("Sentinel did not answer: %s", error)

    @translated
    def head(self) -> int | None:
        return as_int(self.redis.get(self.keys.head))

    @translated
    def versions(self) -> list[int]:
        """Stored versions, oldest first."""
        return [int(v) for v in self.redis.zrange(self.keys.versions, 0, -1)]  # type: ignore[arg-type]

    @translated
    def count_newer(self, version: int) -> int:
        """How many stored versions are newer than ``version`` (how far a replica is behind)."""
        return int(self.redis.zcount(self.keys.versions, f"({version}", "+inf"))

    @translated
    def next_version(self) -> int:
        """Reserve a version number; numbers only grow, and a failed write leaves a gap."""
        return int(self.redis.incr(self.keys.seq))

    @translated
    def pinned(self) -> set[int]:
        return {int(v) for v in self.redis.smembers(self.keys.pinned)}

    @translated
    def pin(self, version: int, pinned: bool = True) -> None:
        """Pin (keep forever, and mark as known good) or unpin a version."""
        self.meta(version)  # exists and verifies
        if pinned:
            self.redis.sadd(self.keys.pinned, version)
        else:
            self.redis.srem(self.keys.pinned, version)

    # -- rollbacks ----------------------------------------------------------------------------------

    @translated
    def rollback(self, version: int, replay: bool) -> int | None:
        """Make ``version`` the head; a running service adopts it. Returns the previous head.

        With ``replay`` the stream restarts from the version's own offsets. Without, it continues
        from the furthest position known (the previous head's, or the version's own if further):
        recorded now, so a service that was stopped, or crashes before adopting, never re-learns
        what the rollback discarded; a running service records its live position when it adopts.
        """
        target = self.meta(version)  # exists and verifies: never point the head at something unloadable
        keys = [self.keys.head, self.keys.snapshot(version), self.keys.rollback]
        for _ in range(5):
            head = self.head()
            position = b"" if replay else orjson.dumps(to_json_keys(furthest(target.position(),
                                                                             self._position_of(head))))
            try:
                previous = self._rollback(keys=keys, args=[version, int(replay), time.time(),
                                                           "" if head is None else head, position])
            except redis.ResponseError as error:
                if scripts.refusal_code(error) == "HEAD_MOVED":
                    continue  # a snapshot landed meanwhile: compute the position again
                raise SnapshotMissing(f"{self.label} has no snapshot {version}") from None
            announce(self.redis, self.keys, "rollback")
            return int(previous) if previous else None
        raise StateError(f"the head of {self.label} keeps moving; try the rollback again")

    def _position_of(self, version: int | None) -> Position:
        """Where the stream stood at ``version``: a rollback's recorded position, else its offsets."""
        if version is None:
            return {}
        try:
            return self.rolled_back_position(version) or self.meta(version).position()
        except SnapshotRefused:
            return {}  # an unreadable head: the target's own offsets will do
        except SnapshotMissing:
            return {}

    @translated
    def record_position(self, version: int, position: Position) -> None:
        """Remember the stream position a rollback to ``version`` continues from (no replay)."""
        self.redis.hset(self.keys.rollback, mapping={"position_of": version,
                                                     "position": orjson.dumps(to_json_keys(position))})

    @translated
    def rolled_back_position(self, version: int) -> Position | None:
        """The position to resume ``version`` from, if it is a rollback's and nothing newer exists."""
        raw_version, raw = self.redis.hmget(self.keys.rollback, ["position_of", "position"])
        if raw is None or as_int(raw_version) != version:
            return None
        return from_json_keys(orjson.loads(as_bytes(raw) or b"{}"))

    @translated
    def last_rollback(self) -> RollbackRecord | None:
        """The last rollback, with the count of rollbacks so far; None if there never was one."""
        version, replay, seq = self.redis.hmget(self.keys.rollback, ["version", "replay", "seq"])
        if version is None:
            return None
        return RollbackRecord(int(version), as_bytes(replay) == b"1", as_int(seq) or 0)

    def rollbacks(self) -> int:
        """How many rollbacks this model has had (the count the write script checks)."""
        record = self.last_rollback()
        return 0 if record is None else record.seq

    # -- writing ------------------------------------------------------------------------------------

    def build_meta(self, state_blob: bytes, **fields: Any) -> SnapshotMeta:
        """Metadata for a blob, with the runtime versions filled in."""
        return SnapshotMeta(
            name=self.name, created=time.time(), river_version=RIVER_VERSION,
            python_version=platform.python_version(), project_version=__version__,
            size=len(state_blob), checksum=checksum(state_blob), **fields,
        )

    @translated
    def write(self, meta: SnapshotMeta, blob: bytes, expected_head: int | None, epoch: int | None = None,
              rollbacks: int | None = None, move_head: bool = True) -> None:
        """Store a snapshot and make it the head, atomically; raise a WriteRefused if not allowed.

        ``move_head=False`` stores it beside the head (a promotion: a rollback to it follows, which a running
        service adopts, where a head moved without one would look like a lost write). ``expected_head`` is
        the head the writer last saw (usually ``meta.parent``) and ``rollbacks`` the number of rollbacks it
        has adopted: if an operator rolled back in between, even to the head itself, the write is refused.
        """
        raw_meta = meta.to_json()
        keys = [self.keys.head, self.keys.versions, self.keys.snapshot(meta.version), self.keys.lease,
                self.keys.rollback]
        args: list[bytes | str | int] = [meta.version, raw_meta, self.signer.sign(raw_meta), blob,
                                         "" if epoch is None else epoch, "" if expected_head is None else expected_head,
                                         "" if rollbacks is None else rollbacks, int(move_head)]
        try:
            self._write(keys=keys, args=args)
        except redis.ResponseError as error:
            refusal = _REFUSALS.get(scripts.refusal_code(error))
            if refusal is None:
                raise
            raise refusal(f"snapshot {meta.version} of {self.label} refused: {error}") from None
        if move_head:
            announce(self.redis, self.keys, "head")

    @translated
    def delete(self, version: int) -> bool:
        """Delete a version; refuses the head and pinned versions. False when it did not exist."""
        keys = [self.keys.head, self.keys.versions, self.keys.pinned, self.keys.snapshot(version)]
        try:
            return bool(self._delete(keys=keys, args=[version]))
        except redis.ResponseError as error:
            if scripts.refusal_code(error) in ("IS_HEAD", "IS_PINNED"):
                raise HistoryRefused(f"cannot delete: {str(error).split(' ', 1)[1]}") from None
            raise

    def apply_retention(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions, sparing the head and pinned ones."""
        protected = self.pinned() | {self.head()}
        victims = [v for v in self.versions()[:-keep] if v not in protected]
        return [v for v in victims if self.delete(v)]

    # -- reading ------------------------------------------------------------------------------------

    @translated
    def meta(self, version: int) -> SnapshotMeta:
        """The verified metadata of a version (no unpickling)."""
        replies = self.redis.hmget(self.keys.snapshot(version), ["meta", "sig"])
        raw, signature = as_bytes(replies[0]), as_bytes(replies[1])
        if raw is None:
            raise SnapshotMissing(f"{self.label} has no snapshot {version}")
        if not self.signer.verify(raw, (signature or b"").decode()):
            raise BadSignature(_signature_problem(self.name, version, signature, self.signer))
        try:
            return SnapshotMeta.from_json(raw)
        except (orjson.JSONDecodeError, TypeError) as error:
            raise CorruptSnapshot(f"snapshot {version} of {self.label} has unreadable metadata: {error}") from None

    @translated
    def load(self, version: int, force: bool = False) -> LoadedSnapshot:
        """Verify, then unpickle one version."""
        meta = self.meta(version)
        if meta.river_version != RIVER_VERSION and not force:
            raise OtherRiverVersion(
                f"snapshot {version} of {self.label} was written by river {meta.river_version}, "
                f"this is river {RIVER_VERSION}; pass --force to load it anyway"
            )
        blob = as_bytes(self.redis.hget(self.keys.snapshot(version), "blob"))
        if blob is None or checksum(blob) != meta.checksum:
            raise CorruptSnapshot(f"snapshot {version} of {self.label} is corrupt: its checksum does not match")
        try:
            state = load_state(blob)
        except CorruptSnapshot as error:
            raise CorruptSnapshot(f"snapshot {version} of {self.label} {error}") from None
        return LoadedSnapshot(meta, state)

    def load_head(self, force: bool = False) -> LoadedSnapshot | None:
        """The head, or (loudly) its newest ancestor that loads; None for a new model (see :mod:`learner.state.lineage`)."""
        from learner.state.lineage import load_head

        return load_head(self, force)


def _signature_problem(name: str, version: int, signature: bytes | None, signer: Signer) -> str:
    if signature == UNSIGNED.encode() and signer.enabled:
        return f"snapshot {version} of {name!r} is unsigned; only --insecure-no-signing loads it"
    if not signer.enabled:
        return f"snapshot {version} of {name!r} is signed; give --signing-key to load it"
    return f"snapshot {version} of {name!r} has a bad signature (tampered, or another signing key): not loaded"
