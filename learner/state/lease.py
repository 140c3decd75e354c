"""One writer per model (SPEC R-LEASE): a lease in Redis with expiry and a fencing epoch.

A random holder token says who holds the lease; it cannot order two holders. The epoch can: it
is INCRemented each time the lease changes hands, stored in the lease, and the snapshot write
script (``learner.state.snapshots``) refuses any writer whose epoch is not the lease's current one. A
holder that was paused past its expiry (GC, SIGSTOP, a partition) therefore fails its next write
and its next renewal, and stops; it can never overwrite the new holder's lineage.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis

from learner.state.audit import AuditLog, operator

log = logging.getLogger(__name__)

# KEYS[1] lease hash, KEYS[2] epoch counter; ARGV[1] holder token, ARGV[2] ttl in ms, ARGV[3] description
# Returns the new epoch, or 0 when another holder has the lease.
_ACQUIRE = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', epoch, 'who', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return epoch
"""

# KEYS[1] lease hash; ARGV[1] holder token, ARGV[2] epoch, ARGV[3] ttl in ms
# Returns 1 when renewed, 0 when the lease is no longer ours.
_RENEW = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] lease hash; ARGV[1] holder token. Returns 1 when released.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(Exception):
    """Another process holds the model now; this one must stop learning at once."""


class Lease:
    """The lease of one model name, as held (or awaited) by this process."""

    def __init__(self, client: redis.Redis, key: str, epoch_key: str, audit: AuditLog, ttl: float) -> None:
        self.client, self.key, self.epoch_key, self.audit = client, key, epoch_key, audit
        self.ttl_ms = int(ttl * 1000)
        self.token = uuid.uuid4().hex
        self.who = operator()
        self.epoch: int | None = None
        self._renewed = 0.0
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def try_acquire(self) -> bool:
        epoch = int(self._acquire(keys=[self.key, self.epoch_key], args=[self.token, self.ttl_ms, self.who]))
        if epoch:
            self.epoch, self._renewed = epoch, time.monotonic()
            self.audit.append("lease", f"acquired, epoch {epoch}", self.who)
        return bool(epoch)

    def holder(self) -> str | None:
        who = self.client.hget(self.key, "who")
        return who.decode() if who else None

    def wait(self, poll: float = 0.5, stopping: object = None) -> None:
        """Block as a hot standby until the lease is ours."""
        announced = False
        while not self.try_acquire():
            if not announced:
                log.warning("standby: %s holds the lease; taking over when it expires", self.holder())
                announced = True
            if stopping is not None and getattr(stopping, "stopping", False):
                raise KeyboardInterrupt
            time.sleep(poll)
        log.info("lease acquired (epoch %d)", self.epoch)

    def renew_if_due(self) -> None:
        """Renew at a third of the expiry; raise LeaseLost when the lease is no longer ours."""
        now = time.monotonic()
        if now - self._renewed < self.ttl_ms / 3000:
            return
        epoch = self.epoch
        if not int(self._renew(keys=[self.key], args=[self.token, epoch, self.ttl_ms])):
            self.lost()
            raise LeaseLost(f"lost the lease of epoch {epoch} (paused past its expiry?); another process "
                            "holds the model now, so this one stops without writing")
        self._renewed = now

    def lost(self) -> None:
        """Record that the lease is gone: nothing may be written or released any more."""
        self.audit.append("lease", f"lost, epoch {self.epoch}", self.who)
        self.epoch = None

    def release(self) -> None:
        if self.epoch is not None and int(self._release(keys=[self.key], args=[self.token])):
            self.audit.append("lease", f"released, epoch {self.epoch}", self.who)
        self.epoch = None
