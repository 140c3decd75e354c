"""What happened to a model, as typed entries on one time axis (README "History and timeline").

The audit log says in words who did what; a chart needs the same moments as data: what kind of
thing happened, when, at which version and after how many events learned, who and why. Each entry
is one of a bounded set of kinds, so that a page can draw each kind its own way and filter them.

>>> entry = TimelineEntry("drift", 1765000000.5, version=7, events=5120, why="the error rate rose",
...                       detail={"kind": "performance", "what": "error rate"})
>>> TimelineEntry.from_fields(entry.to_fields()) == entry
True
>>> entry.to_fields()["kind"], sorted(entry.to_fields())
('drift', ['at', 'detail', 'events', 'kind', 'version', 'who', 'why'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

__all__ = ["KINDS", "Kind", "TimelineEntry"]

Kind = Literal["snapshot", "rollback", "promotion", "drift", "guard_trip", "guard_resume", "lease", "fallback"]
#: Every kind of entry, in the order a legend lists them.
KINDS: tuple[str, ...] = get_args(Kind)


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of a model's life: a snapshot, a rollback, a promotion, a drift alarm, a guard trip or
    resume, a lease change, a fallback to an older version."""

    kind: Kind
    at: float
    version: int | None = None
    #: Events learned by the lineage at that moment, when known.
    events: int | None = None
    who: str = ""
    why: str = ""
    #: Kind-specific facts (a drift's kind and what drifted, a rollback's target and mode, ...).
    detail: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        """As the fields of a Redis stream entry (strings; absent numbers as empty strings)."""
        return {"kind": self.kind, "at": f"{self.at:.3f}", "version": "" if self.version is None else str(self.version),
                "events": "" if self.events is None else str(self.events), "who": self.who, "why": self.why,
                "detail": orjson.dumps(self.detail).decode()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> TimelineEntry:
        """Read back what :meth:`to_fields` wrote (an unknown kind from a newer release is kept as it is)."""
        version, events = fields.get("version", ""), fields.get("events", "")
        return cls(fields.get("kind", ""), float(fields.get("at", 0) or 0),  # type: ignore[arg-type]
                   int(version) if version else None, int(events) if events else None, fields.get("who", ""),
                   fields.get("why", ""), orjson.loads(fields.get("detail") or "{}"))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "version": self.version, "events": self.events, "who": self.who,
                "why": self.why, "detail": self.detail}
