"""The model process's side of the merge's late messages (README "Delayed labels"): record where
they went before anything that follows them is published, and hand the records to the gateway
when it starts or seeks, so that a restart, a takeover or a replay puts them in the same place."""

from __future__ import annotations

import logging
from collections.abc import Callable

from learner.errors import StateError
from learner.runtime.gateway import protocol as p
from learner.state.lease import Lease
from learner.state.snapshots import SnapshotStore

__all__ = ["LateOrder"]

log = logging.getLogger(__name__)


class LateOrder:
    """Records of one model's late messages (nothing to do without a labels topic)."""

    def __init__(self, store: SnapshotStore, lease: Lease, labelled: bool,
                 reachable: Callable[[], bool] = lambda: True) -> None:
        self.store, self.lease, self.labelled = store, lease, labelled
        #: Whether Redis answered at the last look of the state thread: while it does not, no record
        #: is tried (a try would hold the stream for the client's timeout).
        self.reachable = reachable
        self.unrecorded = 0  # late messages not recorded since Redis went away (warned once per outage)

    def record(self, batch: p.Batch) -> None:
        """Called before the batch is stepped: its answers are published only after this returns.
        With Redis away the stream goes on; only a replay of these messages could order them anew."""
        if not batch.late:
            return
        try:
            if not self.reachable():
                raise StateError("Redis does not answer")
            self.store.late.record(batch.late, self.lease.epoch or 0)
        except StateError as error:
            if not self.unrecorded:
                log.warning("could not record where late messages went (%s): a replay may order them differently",
                            error)
            self.unrecorded += len(batch.late)
        else:
            if self.unrecorded:
                log.warning("recording late messages again; %d were not recorded", self.unrecorded)
                self.unrecorded = 0

    def decided(self, strict: bool = False) -> p.Decisions:
        """Every recorded late message's place, for a gateway that starts or seeks; ``strict``: a
        Redis failure is raised (at start), not logged."""
        if not self.labelled:
            return {}
        try:
            return self.store.late.load()
        except StateError as error:
            if strict:
                raise
            log.warning("could not read where late messages went (%s): a replay orders them anew", error)
            return {}
