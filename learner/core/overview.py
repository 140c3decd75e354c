"""What the dashboard shows of one model (README "Dashboard"), as types with one definition each.

The dashboard reads them from Redis (:mod:`learner.state.catalog`) and serves them as JSON to its
page. It holds no signing key, so nothing it reads from a snapshot's metadata is verified: every
snapshot row says so (``verified`` is False), and the page marks it.

>>> row = SnapshotRow(version=3, parent=2, created=1765000000.0, events_learned=7500, reason="periodic",
...                   metrics={"Accuracy": {"all": 0.91}}, model_spec="tree", size=52000, pinned=False, head=True)
>>> row.to_json()["verified"], ModelOverview("fraud", None, None, None, None, None, [row], [], [], None, None,
...                                          0.0).to_json()["snapshots"][0]["version"]
(False, 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from learner.core.status import Heartbeat, ServiceStatus
from learner.core.timeline import TimelineEntry

__all__ = ["ChallengerView", "ModelOverview", "SnapshotRow"]


@dataclass(frozen=True)
class SnapshotRow:
    """One version in the history table: what its metadata says, read without verifying its signature."""

    version: int
    parent: int | None
    created: float
    events_learned: int
    reason: str
    metrics: dict[str, dict[str, float]]
    model_spec: str
    size: int
    pinned: bool
    head: bool
    #: Always False here: the dashboard holds no key (a process holding one could forge snapshots).
    verified: bool = False
    #: Set instead of the fields above when the metadata could not be read.
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChallengerView:
    """A challenger beside its champion: how it began, whether it runs, how it pairs (``pairing`` as its status says)."""

    challenger: str
    spec: str
    from_version: int
    fork: bool
    running: bool
    events_learned: int
    pairing: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelOverview:
    """A model as the dashboard reads it at ``read_at``: its learner's status (live, else the last one
    published), the lease and the guard, its snapshots, its timeline, its challengers and its replicas."""

    name: str
    head: int | None
    #: The running learner's status; None when none has reported lately.
    status: ServiceStatus | None
    #: The last status any learner published (stopped, or gone quiet).
    last_status: ServiceStatus | None
    lease: dict[str, Any] | None
    guard_tripped: str | None
    snapshots: list[SnapshotRow]
    timeline: list[TimelineEntry]
    challengers: list[ChallengerView]
    #: Serve replicas from their heartbeats (None: no Kafka given, or see ``replicas_problem``).
    replicas: list[Heartbeat] | None
    replicas_problem: str | None
    read_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "head": self.head, "read_at": self.read_at,
            "status": None if self.status is None else self.status.to_json(),
            "last_status": None if self.last_status is None else self.last_status.to_json(),
            "lease": self.lease, "guard_tripped": self.guard_tripped,
            "snapshots": [row.to_json() for row in self.snapshots],
            "timeline": [entry.to_json() for entry in self.timeline],
            "challengers": [view.to_json() for view in self.challengers],
            "replicas": None if self.replicas is None else [beat.to_json() for beat in self.replicas],
            "replicas_problem": self.replicas_problem,
        }
