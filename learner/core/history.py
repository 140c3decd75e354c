"""A learner's figures every few seconds, kept so a chart can show the learning curve afterwards
(README "History and timeline").

>>> point = HistoryPoint(1765000000.0, events_done=12000, events_learned=11950, version=4, rate=850.5,
...                      lag=12, metrics={"Accuracy": {"all": 0.91, "1000": 0.93}},
...                      labels={"joined": 11950, "expired": 3, "waiting": 50})
>>> HistoryPoint.from_json(point.to_json()) == point
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

__all__ = ["HistoryPoint"]


@dataclass(frozen=True)
class HistoryPoint:
    """Input events done, events learned, the version, events/s since the last point, the total lag,
    the online metrics (overall and rolling) and, with a labels topic, the label figures."""

    at: float
    events_done: int
    events_learned: int
    version: int
    rate: float
    lag: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: dict[str, int] | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> HistoryPoint:
        doc: dict[str, Any] = orjson.loads(raw)
        return cls(**{key: doc[key] for key in cls.__dataclass_fields__ if key in doc})
