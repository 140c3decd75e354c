"""A learner that waits: a hot standby for a model whose lease another process holds (README "One
writer per model").

Its gateway is connected meanwhile, so that it takes over within a batch of the lease expiring; it
rides out a Redis outage like a running service does, and says once who holds the lease.
"""

from __future__ import annotations

import logging
import time

from learner.errors import GatewayFailed, RedisUnavailable
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.shared.readiness import Readiness
from learner.state.lease import Lease

__all__ = ["STANDBY_POLL", "wait_for_lease"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the lease while waiting for it as a standby.
STANDBY_POLL = 0.5


def wait_for_lease(lease: Lease, readiness: Readiness, link: GatewayLink) -> None:
    """Block until the lease is ours; /readyz says ``standby`` and who holds it meanwhile."""
    announced, unavailable = False, False
    while True:
        try:
            if lease.try_acquire():
                break
            holder = lease.holder()
        except RedisUnavailable as error:  # a standby rides out an outage too
            if not unavailable:
                log.warning("standby: %s; waiting", error)
            unavailable = True
            time.sleep(STANDBY_POLL * 4)
            continue
        unavailable = False
        readiness.standby(holder.who if holder else None)
        if not announced:
            log.warning("standby: %s holds the lease; taking over when it expires", holder.who if holder else "another process")
            announced = True
        if not link.alive:
            raise GatewayFailed("the gateway process died")
        time.sleep(STANDBY_POLL)
    readiness.phase = "starting"
