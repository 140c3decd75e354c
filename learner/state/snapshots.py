"""Versioned, signed model snapshots in Redis (SPEC R-SNAP, R-EXACT).

A snapshot is one Redis hash ``learner:{NAME}:snap:<version>`` holding the pickled state (model,
evaluation, events learned), its metadata as JSON (offsets learned up to, lineage, versions of
everything) and the metadata's signature. One Lua script writes it and moves the head in one
atomic step, after checking the writer's fencing epoch and that the head is still the version the
writer descends from: a paused writer, or one that missed a rollback, cannot overwrite a newer
lineage. Keys of one model share the hash tag ``{NAME}`` so they live in one Redis Cluster slot.
"""

from __future__ import annotations

import logging
import pickle
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis
import river

from learner import __version__
from learner.state.audit import AuditLog
from learner.state.signing import Signer, checksum

log = logging.getLogger(__name__)


class SnapshotError(Exception):
    """Base of the snapshot errors; the message is one line for the operator."""


class SnapshotMissing(SnapshotError):
    """The requested version does not exist (or was deleted by retention)."""


class SnapshotRefused(SnapshotError):
    """The snapshot exists but must not be loaded: bad signature, corrupt blob, other river version."""


class Fenced(SnapshotError):
    """The write was refused: another writer holds the lease, or the head moved (a rollback)."""


# KEYS[1] head, KEYS[2] versions (zset), KEYS[3] this snapshot's hash, KEYS[4] lease hash,
# KEYS[5] rollback hash
# ARGV[1] version, ARGV[2] meta JSON, ARGV[3] signature, ARGV[4] blob,
# ARGV[5] the writer's lease epoch ('' = no lease), ARGV[6] the head the writer descends from ('' = none),
# ARGV[7] the rollbacks the writer has adopted ('' = do not check)
# Returns 1, or an error reply starting with FENCED, HEAD_MOVED or ROLLED_BACK. The last one catches
# a rollback to the version that is still the head, which leaves the head where it was.
_WRITE = """
if ARGV[5] ~= '' then
  local epoch = redis.call('HGET', KEYS[4], 'epoch')
  if epoch ~= ARGV[5] then
    return redis.error_reply('FENCED lease epoch is ' .. tostring(epoch) .. ', this writer has ' .. ARGV[5])
  end
end
local head = redis.call('GET', KEYS[1]) or ''
if head ~= ARGV[6] then
  return redis.error_reply('HEAD_MOVED head is ' .. head .. ', this writer descends from ' .. ARGV[6])
end
if ARGV[7] ~= '' then
  local seq = redis.call('HGET', KEYS[5], 'seq') or '0'
  if seq ~= ARGV[7] then
    return redis.error_reply('ROLLED_BACK rollback ' .. seq .. ' happened, this writer has seen ' .. ARGV[7])
  end
end
redis.call('HSET', KEYS[3], 'meta', ARGV[2], 'sig', ARGV[3], 'blob', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] head, KEYS[2] versions, KEYS[3] pinned (set), KEYS[4] the snapshot's hash; ARGV[1] version
# Returns 1 when deleted, an error reply when it is the head or pinned.
_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.error_reply('version ' .. ARGV[1] .. ' is the head') end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return redis.error_reply('version ' .. ARGV[1] .. ' is pinned') end
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[4])
"""


# KEYS[1] head, KEYS[2] the target snapshot's hash, KEYS[3] rollback hash
# ARGV[1] version, ARGV[2] replay (0/1), ARGV[3] time, ARGV[4] the head the caller read ('' = none),
# ARGV[5] the stream position to continue from (JSON; '' with replay: the version's own offsets)
# Returns the previous head ('' if none), or an error reply when the version does not exist or the
# head moved since the caller read it (the position was computed from it).
# 'seq' counts rollbacks: a rollback to the version that is already the head must still be seen.
_ROLLBACK = """
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('no snapshot ' .. ARGV[1]) end
local previous = redis.call('GET', KEYS[1]) or ''
if previous ~= ARGV[4] then return redis.error_reply('HEAD_MOVED') end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'version', ARGV[1], 'replay', ARGV[2], 'at', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'seq', 1)
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[3], 'position_of', 'position')
else
  redis.call('HSET', KEYS[3], 'position_of', ARGV[1], 'position', ARGV[5])
end
return previous
"""


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

    def offsets_by_partition(self) -> dict[tuple[str, int], int]:
        """Offsets keyed as the consumer keys them: ``(topic, partition)``."""
        return offsets_from_meta(self.offsets)


def offsets_from_meta(offsets: dict[str, int]) -> dict[tuple[str, int], int]:
    """``{"topic:partition": offset}`` back to ``{(topic, partition): offset}``."""
    out = {}
    for key, offset in offsets.items():
        topic, _, partition = key.rpartition(":")
        out[(topic, int(partition))] = offset
    return out


def furthest(*positions: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Per partition, the furthest of several stream positions.

    >>> furthest({("in", 0): 5, ("in", 1): 9}, {("in", 0): 7})
    {('in', 0): 7, ('in', 1): 9}
    """
    out: dict[tuple[str, int], int] = {}
    for position in positions:
        for partition, offset in position.items():
            out[partition] = max(offset, out.get(partition, offset))
    return out


def offsets_to_meta(offsets: dict[tuple[str, int], int]) -> dict[str, int]:
    """``{(topic, partition): offset}`` as JSON-friendly ``{"topic:partition": offset}``."""
    return {f"{topic}:{partition}": offset for (topic, partition), offset in sorted(offsets.items())}


def describe_params(model: Any) -> dict[str, Any]:
    """The model's hyperparameters as JSON (River keeps them as given to the constructor)."""
    try:
        return orjson.loads(orjson.dumps(model._get_params(), default=repr))  # type: ignore[no-any-return]
    except (AttributeError, TypeError, orjson.JSONEncodeError):
        return {"repr": repr(model)}


def connect(redis_url: str) -> redis.Redis:
    """A Redis client, checked: an unreachable Redis is one clear error, not a later traceback."""
    # A Redis that stops answering must surface as an error, not hang the service (and its lease).
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as error:
        raise SnapshotError(f"cannot reach Redis at {redis_url}: {error}") from None
    return client


class SnapshotStore:
    """The snapshots of one model name in one Redis."""

    def __init__(self, client: redis.Redis, name: str, signer: Signer) -> None:
        self.client = client
        self.name = name
        self.signer = signer
        self._prefix = f"learner:{{{name}}}:"
        self._write = client.register_script(_WRITE)
        self._delete = client.register_script(_DELETE)
        self._rollback = client.register_script(_ROLLBACK)
        #: Set by ``load_head`` when the head did not load and an older version was used instead.
        self.fallback: str | None = None
        self.audit = AuditLog(client, self.key("audit"))

    def key(self, suffix: str) -> str:
        """A Redis key of this model (all in one cluster slot)."""
        return self._prefix + suffix

    def head(self) -> int | None:
        raw = self.client.get(self.key("head"))
        return int(raw) if raw is not None else None

    def versions(self) -> list[int]:
        """Stored versions, oldest first."""
        return [int(v) for v in self.client.zrange(self.key("versions"), 0, -1)]

    def next_version(self) -> int:
        """Reserve a version number; numbers only grow, and a failed write leaves a gap."""
        return int(self.client.incr(self.key("seq")))

    def pinned(self) -> set[int]:
        return {int(v) for v in self.client.smembers(self.key("pinned"))}

    def pin(self, version: int, pinned: bool = True) -> None:
        """Pin (keep forever, and mark as known good) or unpin a version."""
        self.meta(version)  # exists and verifies
        if pinned:
            self.client.sadd(self.key("pinned"), version)
        else:
            self.client.srem(self.key("pinned"), version)

    def rollback(self, version: int, replay: bool) -> int | None:
        """Make ``version`` the head; a running service adopts it. Returns the previous head.

        With ``replay`` the stream restarts from the version's own offsets. Without, it continues
        from the furthest position known (the previous head's, or the version's own if further):
        recorded now, so a service that was stopped, or crashes before adopting, never re-learns
        what the rollback discarded; a running service records its live position when it adopts.
        """
        target = self.meta(version)  # exists and verifies: never point the head at something unloadable
        keys = [self.key("head"), self.key(f"snap:{version}"), self.key("rollback")]
        for _ in range(5):
            head = self.head()
            position = "" if replay else orjson.dumps(offsets_to_meta(
                furthest(target.offsets_by_partition(), self._position_of(head))))
            try:
                previous = self._rollback(keys=keys, args=[version, int(replay), time.time(),
                                                           "" if head is None else head, position])
            except redis.ResponseError as error:
                if str(error) == "HEAD_MOVED":
                    continue  # a snapshot landed meanwhile: compute the position again
                raise SnapshotMissing(f"{self.name!r} has {error}") from None
            return int(previous) if previous else None
        raise SnapshotError(f"the head of {self.name!r} keeps moving; try the rollback again")

    def _position_of(self, version: int | None) -> dict[tuple[str, int], int]:
        """Where the stream stood at ``version``: a rollback's recorded position, else its offsets."""
        if version is None:
            return {}
        try:
            return self.rolled_back_position(version) or self.meta(version).offsets_by_partition()
        except SnapshotError:
            return {}  # an unreadable head: the target's own offsets will do

    def record_position(self, version: int, offsets: dict[tuple[str, int], int]) -> None:
        """Remember the stream position a rollback to ``version`` continues from (no replay)."""
        self.client.hset(self.key("rollback"), mapping={"position_of": version,
                                                        "position": orjson.dumps(offsets_to_meta(offsets))})

    def rolled_back_position(self, version: int) -> dict[tuple[str, int], int] | None:
        """The position to resume ``version`` from, if it is a rollback's and nothing newer exists."""
        raw_version, raw = self.client.hmget(self.key("rollback"), ["position_of", "position"])
        if raw is None or raw_version is None or int(raw_version) != version:
            return None
        return offsets_from_meta(orjson.loads(raw))

    def rollback_request(self) -> tuple[int, bool, int] | None:
        """The last rollback: (version, replay, how many rollbacks so far)."""
        raw = self.client.hmget(self.key("rollback"), ["version", "replay", "seq"])
        if raw[0] is None:
            return None
        return int(raw[0]), raw[1] == b"1", int(raw[2])

    def build_meta(self, state_blob: bytes, **fields: Any) -> SnapshotMeta:
        """Metadata for a blob, with the runtime versions filled in."""
        return SnapshotMeta(
            name=self.name, created=time.time(), river_version=river.__version__,
            python_version=platform.python_version(), project_version=__version__,
            size=len(state_blob), checksum=checksum(state_blob), **fields,
        )

    def write(self, meta: SnapshotMeta, blob: bytes, expected_head: int | None, epoch: int | None = None,
              rollbacks: int | None = None) -> None:
        """Store a snapshot and make it the head, atomically; raise Fenced if not allowed.

        ``expected_head`` is the head the writer last saw (usually ``meta.parent``) and ``rollbacks``
        the number of rollbacks it has adopted (:meth:`rollback_request`): if an operator rolled back
        in between, even to the head itself, the write is refused rather than silently undoing it.
        """
        raw_meta = meta.to_json()
        keys = [self.key("head"), self.key("versions"), self.key(f"snap:{meta.version}"), self.key("lease"),
                self.key("rollback")]
        args = [meta.version, raw_meta, self.signer.sign(raw_meta), blob, "" if epoch is None else epoch,
                "" if expected_head is None else expected_head, "" if rollbacks is None else rollbacks]
        try:
            self._write(keys=keys, args=args)
        except redis.ResponseError as error:
            if str(error).startswith(("FENCED", "HEAD_MOVED", "ROLLED_BACK")):
                raise Fenced(f"snapshot {meta.version} of {self.name!r} refused: {error}") from None
            raise

    def delete(self, version: int) -> bool:
        """Delete a version; refuses the head and pinned versions. False when it did not exist."""
        keys = [self.key("head"), self.key("versions"), self.key("pinned"), self.key(f"snap:{version}")]
        try:
            return bool(self._delete(keys=keys, args=[version]))
        except redis.ResponseError as error:
            raise SnapshotError(f"cannot delete: {error}") from None

    def apply_retention(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions, sparing the head and pinned ones."""
        protected = self.pinned() | {self.head()}
        victims = [v for v in self.versions()[:-keep] if v not in protected]
        return [v for v in victims if self.delete(v)]

    def meta(self, version: int) -> SnapshotMeta:
        """The verified metadata of a version (no unpickling)."""
        raw, signature = self.client.hmget(self.key(f"snap:{version}"), ["meta", "sig"])
        if raw is None:
            raise SnapshotMissing(f"{self.name!r} has no snapshot {version}")
        if not self.signer.verify(raw, (signature or b"").decode()):
            raise SnapshotRefused(_signature_problem(self.name, version, signature, self.signer))
        return SnapshotMeta.from_json(raw)

    def load(self, version: int, force: bool = False) -> tuple[SnapshotMeta, Any]:
        """Verify, then unpickle one version: its metadata and its state."""
        meta = self.meta(version)
        if meta.river_version != river.__version__ and not force:
            raise SnapshotRefused(
                f"snapshot {version} of {self.name!r} was written by river {meta.river_version}, "
                f"this is river {river.__version__}; pass --force to load it anyway"
            )
        blob = self.client.hget(self.key(f"snap:{version}"), "blob")
        if blob is None or checksum(blob) != meta.checksum:
            raise SnapshotRefused(f"snapshot {version} of {self.name!r} is corrupt: its checksum does not match")
        return meta, pickle.loads(blob)

    def load_head(self, force: bool = False) -> tuple[SnapshotMeta, Any] | None:
        """The head, or (loudly) its newest ancestor that loads; None for a new model.

        Ancestors, not merely older versions: after a rollback, older numbers include the branch
        the operator discarded. Only when a version's own metadata is unreadable (so its parent is
        unknown) does the walk fall back to the next older number.
        """
        head = self.head()
        if head is None:
            return None
        version: int | None = head
        while version is not None:
            try:
                loaded = self.load(version, force)
            except SnapshotMissing as error:
                log.error("%s; trying its parent", error)
                version = self._parent_or_older(version)
                continue
            except SnapshotRefused as error:
                if "river" in str(error) and version == head:
                    raise
                log.error("%s; trying its parent", error)
                version = self._parent_or_older(version)
                continue
            if version != head:
                self.fallback = f"head {head} of {self.name!r} is unusable: fell back to version {version}"
                log.error("%s", self.fallback)
            return loaded
        raise SnapshotRefused(f"no snapshot of {self.name!r} can be loaded (head was {head})")

    def _parent_or_older(self, version: int) -> int | None:
        """Where the walk to a loadable ancestor goes next from ``version``."""
        try:
            parent = self.meta(version).parent
        except SnapshotError:
            parent = None
        else:
            if parent is None or parent < version:
                return parent
        return next((v for v in reversed(self.versions()) if v < version), None)


def _signature_problem(name: str, version: int, signature: bytes | None, signer: Signer) -> str:
    if signature == b"unsigned" and signer.enabled:
        return f"snapshot {version} of {name!r} is unsigned; only --insecure-no-signing loads it"
    if not signer.enabled:
        return f"snapshot {version} of {name!r} is signed; give --signing-key to load it"
    return f"snapshot {version} of {name!r} has a bad signature (tampered, or another signing key): not loaded"


def dump_state(state: Any) -> bytes:
    """Pickle a step's state (highest protocol: large models serialise much faster)."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
