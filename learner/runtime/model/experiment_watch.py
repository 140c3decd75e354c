"""What the control plane says about experiments (README "Experiments"), for the model process.

A champion writes its scores topic while it has challengers, and only then: the control poll counts
them, and this part turns the gateway's writing on when the first one registers and off when the
last is removed, so that a model without challengers pays nothing. A challenger stops (with its
last snapshot) once it is no longer registered: it was promoted or removed. A champion with
``--auto-promote`` starts its :class:`~learner.runtime.model.auto_promoter.AutoPromoter` here.
"""

from __future__ import annotations

import logging

from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.model.auto_promoter import AutoPromoter
from learner.settings import Settings
from learner.state.control import ControlView
from learner.state.lease import Lease
from learner.state.snapshots import SnapshotStore
from learner.topics import TopicNames

__all__ = ["ExperimentWatch"]

log = logging.getLogger(__name__)


class ExperimentWatch:
    """Follows the model's challengers: tells the gateway when scores are to be written; retires a challenger."""

    def __init__(self, link: GatewayLink, settings: Settings, store: SnapshotStore, lease: Lease) -> None:
        self.link = link
        self.champion = settings.role in ("all", "learn")
        self.challenger = settings.challenger if settings.role == "challenger" else None
        self.topic = TopicNames(settings.name).scores
        self.on = False
        if self.champion and settings.auto_promote:
            AutoPromoter(store, lease, settings).start()

    def follow(self, challengers: int) -> None:
        """The model has ``challengers``: write the scores topic while it has any (a champion)."""
        on = self.champion and challengers > 0
        if on != self.on:
            self.on = on
            self.link.send(p.WriteScores(on))
            log.info("%d challenger(s): writing what is scored to %s" if on else
                     "no challengers left: no longer writing %s", *((challengers, self.topic) if on else (self.topic,)))

    def retired(self, view: ControlView) -> bool:
        """Whether this process, a challenger, is no longer registered (promoted or removed): time to stop."""
        if self.challenger is None or view.enrolled is not False:
            return False
        log.warning("challenger %r is no longer registered (promoted or removed): stopping", self.challenger)
        return True
