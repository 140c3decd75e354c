"""What a running program says about itself, as types with one definition each.

A learner's status crosses three seams: the model process builds it, its HTTP thread serves it
on ``/status``, and the control plane publishes it in Redis for ``learner status`` (and whatever
else reads it) to read back. A serve replica's status is served on its ``/status`` and its
heartbeat travels on Kafka. Each is a frozen dataclass here, written to JSON and read back by its
own two methods, so no reader looks a field up by a string of its own; the JSON is what earlier
releases wrote (README "Monitoring").

>>> status = ServiceStatus(model_version=3, head=3, events_learned=300, events_done=300, metrics={},
...                        lag={"0": 0}, dead_lettered=0, learning=True, model="logreg")
>>> ServiceStatus.from_json(status.to_json()) == status
True
>>> sorted(status.to_json())[:4]
['dead_lettered', 'dead_letters', 'drift', 'events_done']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from learner.core.drift import Detection

__all__ = ["GuardView", "Heartbeat", "RedisHealth", "ReplicaStatus", "ServiceStatus"]

Metrics = dict[str, dict[str, float]]


@dataclass(frozen=True)
class RedisHealth:
    """Whether Redis answers this process, and what is wrong when it does not."""

    up: bool = True
    problem: str | None = None


@dataclass(frozen=True)
class GuardView:
    """The guard while it is armed: its rule and the reference it compares with."""

    metric: str
    window: str
    reference: float
    pinned_version: int


@dataclass(frozen=True)
class ServiceStatus:
    """A learner (``--role all`` or ``learn``): the model it holds, how far it is, how it does."""

    model_version: int
    head: int | None
    events_learned: int
    events_done: int
    metrics: Metrics
    lag: dict[str, int]
    dead_lettered: int
    learning: bool
    model: str
    fallback: str | None = None
    #: Rollbacks of this model adopted (or seen at the start).
    rollbacks: int = 0
    redis: RedisHealth = field(default_factory=RedisHealth)
    #: With a labels topic: ``waiting`` and the count of each case of the join, and ``late``.
    labels: dict[str, int] | None = None
    drift: list[Detection] = field(default_factory=list)
    guard: GuardView | None = None
    #: Set when published in Redis (epoch seconds); ``stopped`` only by a clean stop's final status.
    updated: float | None = None
    stopped: float | None = None
    #: A challenger's pairs with its champion: paired_events, champion, metrics, difference, waiting, unpaired.
    pairing: dict[str, Any] | None = None
    #: Dead letters by kind since the start (README "Input events"); their sum is ``dead_lettered``.
    dead_letters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for stamp in ("updated", "stopped", "pairing"):
            if out[stamp] is None:
                del out[stamp]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ServiceStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}  # a newer release may say more
        values["redis"] = RedisHealth(**raw.get("redis", {}))
        values["drift"] = [Detection(**d) for d in raw.get("drift", [])]
        values["guard"] = GuardView(**raw["guard"]) if raw.get("guard") else None
        return cls(**values)

    def stamped(self, now: float, stopped: bool = False) -> ServiceStatus:
        """This status as published at ``now`` (and, after a clean stop, marked stopped)."""
        return replace(self, updated=now, stopped=now if stopped else None)


@dataclass(frozen=True)
class ReplicaStatus:
    """A serve replica: the model it serves, how far behind the head, its share of the input."""

    name: str
    replica: str
    group: str
    model_version: int | None
    source: str | None
    learned: int | None
    head: int | None
    versions_behind: int
    reloads: int
    last_reload_seconds: float | None
    reload_failures: int
    last_reload_failure: str | None
    partitions: list[int]
    consumed: int
    predicted: int
    dead_lettered: int
    redis: RedisHealth
    role: str = "serve"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Heartbeat:
    """One replica, as it last said on the heartbeat topic: the version it serves and its share of the input."""

    replica: str
    group: str
    model_version: int | None
    source: str | None
    learned: int | None
    partitions: list[int]
    predicted: int
    at: float
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Heartbeat:
        return cls(**raw)

