"""The live model: the learner's frequent, lightweight publication for serve replicas (README "Scale out").

Versions in the history are what operators list, pin and roll back to, at the snapshot cadence
(``--snapshot-every-events``/``-seconds``). Replicas want fresher models than that, so a learner
also overwrites one hash, ``learner:{NAME}:live``, every ``--live-every-seconds``: the model and
the count of events it has learned, signed like a snapshot, fenced by the lease epoch, and
labelled with the head it descends from and the rollbacks it has seen. It is never a version: it
is not listed, kept, pinned or rolled back to, and a learner restarts from the head, never from it.

A replica serves the live model only while it belongs to the current lineage (see
:func:`learner.runtime.replica.follower.choose`): after a rollback, the live model of the discarded
lineage is ignored until the learner publishes one that has seen the rollback.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import orjson
import redis

from learner.core.snapshot_state import SnapshotState
from learner.errors import BadSignature, CorruptSnapshot, Fenced, OtherRiverVersion
from learner.state import scripts
from learner.state.announce import announce
from learner.state.failures import translated
from learner.state.pickled import dump_state, load_state
from learner.state.replies import as_bytes
from learner.state.signing import checksum
from learner.state.snapshots import RIVER_VERSION, SnapshotStore

__all__ = ["LiveMeta", "LiveStore"]


@dataclass(frozen=True)
class LiveMeta:
    """What a live publication says about itself (signed)."""

    name: str
    head: int | None  # the version it descends from: what its predictions carry as model_version
    rollbacks: int  # the rollbacks its learner had adopted: a newer rollback makes it stale
    learned: int
    epoch: int
    created: float
    river_version: str
    size: int
    checksum: str

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> LiveMeta:
        return cls(**orjson.loads(raw))


class LiveStore:
    """Write (the learner) and read (the replicas) one model's live publication."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.keys = store.keys
        self._write = store.redis.register_script(scripts.WRITE_LIVE)

    @translated
    def publish(self, state: SnapshotState, head: int | None, rollbacks: int, epoch: int) -> LiveMeta:
        """Pickle, sign and write ``state`` (the model and its count) if ``epoch`` still holds the lease."""
        blob = dump_state(state)
        meta = LiveMeta(self.store.name, head, rollbacks, state.learned, epoch, time.time(), RIVER_VERSION, len(blob),
                        checksum(blob))
        raw = meta.to_json()
        try:
            self._write(keys=[self.keys.lease, self.keys.live], args=[epoch, raw, self.store.signer.sign(raw), blob])
        except redis.ResponseError as error:
            if scripts.refusal_code(error) == "FENCED":
                raise Fenced(f"live model of {self.store.name!r} refused: {error}") from None
            raise
        announce(self.store.redis, self.keys, "live")
        return meta

    @translated
    def meta(self) -> LiveMeta | None:
        """The verified metadata of the live publication; None when there is none."""
        raw, signature = (as_bytes(r) for r in self.store.redis.hmget(self.keys.live, ["meta", "sig"]))
        if raw is None:
            return None
        if not self.store.signer.verify(raw, (signature or b"").decode()):
            raise BadSignature(f"the live model of {self.store.name!r} has a bad signature: not loaded")
        try:
            return LiveMeta.from_json(raw)
        except (orjson.JSONDecodeError, TypeError) as error:
            raise CorruptSnapshot(f"the live model of {self.store.name!r} has unreadable metadata: {error}") from None

    @translated
    def load(self, meta: LiveMeta, force: bool = False) -> SnapshotState:
        """The state ``meta`` describes, verified (checksum, river version unless ``force``) then unpickled."""
        if meta.river_version != RIVER_VERSION and not force:
            raise OtherRiverVersion(f"the live model of {self.store.name!r} was written by river "
                                    f"{meta.river_version}, this is river {RIVER_VERSION}")
        blob = as_bytes(self.store.redis.hget(self.keys.live, "blob"))
        if blob is None or checksum(blob) != meta.checksum:
            raise CorruptSnapshot(f"the live model of {self.store.name!r} changed or is corrupt: checksum mismatch")
        try:
            return load_state(blob)
        except CorruptSnapshot as error:
            raise CorruptSnapshot(f"the live model of {self.store.name!r} {error}") from None
