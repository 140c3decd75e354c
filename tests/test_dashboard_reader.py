"""The dashboard's one reader (README "Dashboard"), with a catalog double: what it keeps is bounded by
the models viewed, never by the visitors or the names they ask for. Pure logic; the real Redis is in
tests/test_dashboard.py."""

from __future__ import annotations

import pytest

from learner.core.history import HistoryPoint
from learner.core.overview import ModelOverview
from learner.core.status import Heartbeat
from learner.runtime.dashboard import reader as module
from learner.runtime.dashboard.reader import SharedReader


class Catalog:
    """Two models; each read of history hands out the points after ``since`` (inclusive, as Redis does)."""

    def __init__(self) -> None:
        self.points = {"a": [HistoryPoint(float(t), t, t, 1, 1.0, 0) for t in range(1, 6)], "b": []}
        self.overviews = 0

    def names(self) -> list[str]:
        return sorted(self.points)

    def overview(self, name: str, replicas: list[Heartbeat] | None = None,
                 replicas_problem: str | None = None) -> ModelOverview:
        self.overviews += 1
        return ModelOverview(name, 1, None, None, None, None, [], [], [], replicas, replicas_problem, 0.0)

    def history(self, name: str, since: float = 0.0, count: int = 20_000) -> list[HistoryPoint]:
        return [p for p in self.points[name] if p.at >= since][-count:]


def test_reads_only_what_pages_ask_for_and_forgets_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog()
    shared = SharedReader(catalog)  # type: ignore[arg-type]
    shared.refresh()
    assert catalog.overviews == 0 and shared.names() == ["a", "b"]  # nobody looked at a model yet
    assert shared.overview("nope", wait=0) is None and "nope" not in shared._models
    shared.summary("a")
    shared.refresh()
    assert catalog.overviews == 1 and [p["at"] for p in shared.history("a", wait=0)] == [1, 2, 3, 4, 5]
    catalog.points["a"].append(HistoryPoint(6.0, 6, 6, 1, 1.0, 0))
    shared.refresh()
    assert [p["at"] for p in shared.history("a", since=4.0, wait=0)] == [5, 6]  # no point twice
    monkeypatch.setattr(module, "MAX_POINTS", 3)
    catalog.points["a"].append(HistoryPoint(7.0, 7, 7, 1, 1.0, 0))
    shared.refresh()
    assert [p["at"] for p in shared.history("a", wait=0)] == [5, 6, 7]
    monkeypatch.setattr(module, "WANTED_SECONDS", -1.0)  # a minute after the last page closed
    shared.refresh()
    assert shared._models == {}
