"""One writer per model (README "One writer per model"): a lease in Redis with expiry and a fencing epoch.

A random holder token says who holds the lease; it cannot order two holders. The epoch can: it
is INCRemented each time the lease changes hands, stored in the lease, and the snapshot write
script refuses any writer whose epoch is not the lease's current one. A holder that was paused
past its expiry (GC, SIGSTOP, a partition) while another process took over therefore fails its
next write and its next renewal, and stops; it can never overwrite the new holder's lineage.

A lease that expired while nobody took it over (Redis was unreachable from the holder for a
while, say) is still the holder's: the epoch counter proves that no one acquired it since, so
the renewal takes it back with the same epoch.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis

from learner.core.timeline import TimelineEntry
from learner.errors import LeaseLost
from learner.state import scripts
from learner.state.audit import operator
from learner.state.failures import translated
from learner.state.index import ModelIndex
from learner.state.replies import as_int, as_text
from learner.state.snapshots import SnapshotStore

__all__ = ["Lease", "LeaseInfo", "holder"]

log = logging.getLogger(__name__)


class LeaseInfo:
    """Who holds a model's lease, and with which epoch (as ``learner status`` shows it)."""

    def __init__(self, who: str, epoch: int) -> None:
        self.who, self.epoch = who, epoch

    def as_dict(self) -> dict[str, object]:
        return {"who": self.who, "epoch": self.epoch}


def holder(store: SnapshotStore) -> LeaseInfo | None:
    """Who holds the lease of ``store``'s model now, if anyone (for ``learner status``)."""
    return Lease._holder(store.redis, store.keys.lease)


class Lease:
    """The lease of one model name, as held (or awaited) by this process."""

    def __init__(self, store: SnapshotStore, ttl: float) -> None:
        self._redis, self._keys, self._audit, self._timeline = store.redis, store.keys, store.audit, store.timeline
        self._index, self._name = ModelIndex(store.redis), store.name
        self.ttl_ms = int(ttl * 1000)
        self.token = uuid.uuid4().hex
        self.who = operator()
        self.epoch: int | None = None
        self._renewed = 0.0
        self._acquire = self._redis.register_script(scripts.ACQUIRE_LEASE)
        self._renew = self._redis.register_script(scripts.RENEW_LEASE)
        self._release = self._redis.register_script(scripts.RELEASE_LEASE)

    @property
    def held(self) -> bool:
        return self.epoch is not None

    @translated
    def try_acquire(self) -> bool:
        epoch = int(self._acquire(keys=[self._keys.lease, self._keys.epoch], args=[self.token, self.ttl_ms, self.who]))
        if epoch:
            self.epoch, self._renewed = epoch, time.monotonic()
            self._audit.append("lease", f"acquired, epoch {epoch}", self.who)
            self._note("acquired", epoch)
            self._index.note(self._name)  # the models of this Redis, listed without SCAN
            log.info("lease acquired (epoch %d)", epoch)
        return bool(epoch)

    def holder(self) -> LeaseInfo | None:
        """Who holds the lease now, if anyone."""
        return self._holder(self._redis, self._keys.lease)

    @staticmethod
    @translated
    def _holder(client: redis.Redis, key: str) -> LeaseInfo | None:
        who, epoch = client.hmget(key, ["who", "epoch"])
        return None if who is None else LeaseInfo(as_text(who) or "", as_int(epoch) or 0)

    def renewal_due(self) -> bool:
        return self.epoch is not None and time.monotonic() - self._renewed >= self.ttl_ms / 3000

    def renew_if_due(self) -> None:
        """Renew at a third of the expiry; raise LeaseLost when the lease is no longer ours."""
        if self.renewal_due():
            self.renew()

    @translated
    def renew(self) -> None:
        """Renew now (or take back a lease that expired unclaimed); LeaseLost if another holds it."""
        epoch = self.epoch
        if epoch is None:
            raise LeaseLost("this process does not hold the lease")
        keys = [self._keys.lease, self._keys.epoch]
        if not int(self._renew(keys=keys, args=[self.token, epoch, self.ttl_ms, self.who])):
            self.lost()
            raise LeaseLost(f"lost the lease of epoch {epoch} (paused past its expiry?); another process "
                            "holds the model now, so this one stops without writing")
        self._renewed = time.monotonic()

    def lost(self) -> None:
        """Record that the lease is gone: nothing may be written or released any more."""
        epoch, self.epoch = self.epoch, None
        try:
            self._audit.append("lease", f"lost, epoch {epoch}", self.who)
        except Exception:  # recording it is best effort: the loss stands either way
            log.debug("could not record the lease loss in the audit log")
        self._note("lost", epoch)

    @translated
    def release(self) -> None:
        """Hand the lease back at once, so that a standby takes over without waiting out the expiry."""
        if self.epoch is not None and int(self._release(keys=[self._keys.lease], args=[self.token])):
            self._audit.append("lease", f"released, epoch {self.epoch}", self.who)
            self._note("released", self.epoch)
        self.epoch = None

    def _note(self, what: str, epoch: int | None) -> None:
        self._timeline.note(TimelineEntry("lease", time.time(), who=self.who, why=what, detail={"epoch": epoch}))
