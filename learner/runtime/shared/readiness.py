"""Whether the service is ready (``/readyz``), and if not, why: one line an operator can act on.

The main loop records what it knows (its phase, the gateway's last report, whether Redis answered
its last look); the HTTP thread only reads it, so a probe never waits on Redis or Kafka itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from learner.runtime.gateway.protocol import Report

__all__ = ["Phase", "Readiness"]

#: starting: connecting, checking topics, restoring; standby: waiting for the lease; streaming;
#: stopping: the last snapshot, then exit.
Phase = Literal["starting", "standby", "streaming", "stopping"]


@dataclass
class Readiness:
    """What the main loop knows about the service's health."""

    bootstrap_servers: str
    gateway_alive: Callable[[], bool] = lambda: True
    phase: Phase = "starting"
    lease_holder: str | None = None  # who holds the lease while this process waits for it
    report: Report | None = None
    redis_problem: str | None = None  # why Redis did not answer the last look, if it did not
    notes: list[str] = field(default_factory=list)

    def standby(self, holder: str | None) -> None:
        """Waiting for the lease that ``holder`` (when known) holds."""
        self.phase, self.lease_holder = "standby", holder

    def reason(self) -> str | None:
        """Why the service is not ready, or None when it is."""
        if self.phase == "standby":
            return f"standby: waiting for the lease held by {self.lease_holder or 'another process'}"
        if self.phase == "starting":
            return "starting: connecting and restoring the model"
        if self.phase == "stopping":
            return "stopping"
        if not self.gateway_alive():
            return "the gateway process is not running"
        if self.report is None or not self.report.assigned:
            return "no input partition assigned yet"
        if not self.report.broker_ok:
            return f"Kafka at {self.bootstrap_servers} does not answer"
        if self.redis_problem:
            return self.redis_problem
        return None
