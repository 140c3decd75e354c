"""A model's fleet as ``learner status`` shows it: the head, its last snapshot, the learner that
holds the lease (or the last word of one that stopped or went quiet), the guard, and the serve
replicas heard from. One type, for the table and for ``--json`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learner.core.status import Heartbeat, ServiceStatus
from learner.errors import LearnerError
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.lease import LeaseInfo
from learner.state.lease import holder as lease_holder
from learner.state.snapshots import SnapshotMeta, SnapshotStore

__all__ = ["FleetStatus", "gather"]


@dataclass(frozen=True)
class FleetStatus:
    name: str
    head: int | None
    last_snapshot: SnapshotMeta | None
    #: The running learner's status; None when none has reported in the last 10 s.
    service: ServiceStatus | None
    #: The last status any learner published in the last day (``stopped`` after a clean stop).
    last_service: ServiceStatus | None
    lease: LeaseInfo | None
    guard_tripped: str | None
    #: The serve replicas heard from (None: not asked, or they could not be listed, see ``replicas_problem``).
    replicas: list[Heartbeat] | None
    replicas_problem: str | None

    def to_json(self) -> dict[str, Any]:
        meta = self.last_snapshot
        return {
            "name": self.name, "head": self.head,
            "last_snapshot": None if meta is None else {"version": meta.version, "created": meta.created,
                                                        "events_learned": meta.events_learned, "metrics": meta.metrics},
            "service": None if self.service is None else self.service.to_json(),
            "last_service": None if self.last_service is None else self.last_service.to_json(),
            "lease": None if self.lease is None else self.lease.as_dict(),
            "guard_tripped": self.guard_tripped,
            "replicas": None if self.replicas is None else [beat.to_json() for beat in self.replicas],
            "replicas_problem": self.replicas_problem,
        }


def _replicas(settings: Settings | None) -> tuple[list[Heartbeat] | None, str | None]:
    """The serve replicas heard from lately, or why they could not be listed; (None, None) unless
    the command was pointed at a Kafka (--bootstrap-servers, the Kafka properties, or their variables)."""
    if settings is None or not {"bootstrap_servers", "kafka_config", "kafka_config_file"} & settings.model_fields_set:
        return None, None
    from learner.runtime.replica.registry import heard

    try:
        return heard(settings, timeout=2.0), None
    except LearnerError as error:
        return None, str(error)


def gather(store: SnapshotStore, settings: Settings | None = None) -> FleetStatus:
    head = store.head()
    control = ControlPlane(store)
    replicas, problem = _replicas(settings)
    return FleetStatus(store.name, head, store.meta(head) if head is not None else None, control.service_status(),
                       control.last_service_status(), lease_holder(store), control.guard_stop(), replicas, problem)
