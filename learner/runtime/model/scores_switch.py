"""A champion writes its scores topic while it has challengers, and only then (README "Experiments").

The control plane's poll counts the model's challengers; this part turns the gateway's writing on
when the first one registers and off when the last is removed, so that a model without challengers
pays nothing. A challenger's own process never writes it.
"""

from __future__ import annotations

import logging

from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.settings import Settings
from learner.topics import TopicNames

__all__ = ["ScoresSwitch"]

log = logging.getLogger(__name__)


class ScoresSwitch:
    """Follows the number of challengers; tells the gateway when scores are to be written."""

    def __init__(self, link: GatewayLink, settings: Settings) -> None:
        self.link = link
        self.champion = settings.role in ("all", "learn")
        self.topic = TopicNames(settings.name).scores
        self.on = False

    def follow(self, challengers: int) -> None:
        on = self.champion and challengers > 0
        if on != self.on:
            self.on = on
            self.link.send(p.WriteScores(on))
            log.info("%d challenger(s): writing what is scored to %s" if on else
                     "no challengers left: no longer writing %s", *((challengers, self.topic) if on else (self.topic,)))
