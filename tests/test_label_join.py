"""The label join against a plain reference (dicts, no packing, no shortcuts), on random streams.

Pure: the join's compact storage and its fast paths (the front timestamp it keeps so that most
items cost two comparisons, the stale entries it drops lazily) must not change what is joined,
expired or lost, nor any count.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from learner.core.labels import COUNTS, Joined, LabelJoin, Lost


class Reference:
    """The rules of :class:`LabelJoin`, written the obvious way."""

    def __init__(self, ttl_ms: int, max_pending: int, early_ms: int) -> None:
        self.ttl_ms, self.max_pending, self.early_ms = ttl_ms, max_pending, early_ms
        self.counts = dict.fromkeys(COUNTS, 0)
        self.pending: dict[Any, tuple[dict[str, Any], Any, int]] = {}  # insertion order = arrival order
        self.early: dict[Any, tuple[Any, int]] = {}
        self.done: dict[Any, str] = {}

    def arrive(self, key: Any, x: dict[str, Any], outcome: Any, ts: int) -> Any:
        if key in self.early:
            y, _ = self.early.pop(key)
            self.counts["early"] += 1
            self.counts["joined"] += 1
            self.done[key] = "joined"
            return ("joined", x, outcome, 0, y)
        if key in self.pending:
            self.counts["replaced"] += 1
            del self.pending[key]
        self.pending[key] = (x, outcome, ts)
        return None

    def label(self, key: Any, y: Any, ts: int) -> Any:
        self.counts["received"] += 1
        if key in self.pending:
            x, outcome, at = self.pending.pop(key)
            self.counts["joined"] += 1
            self.done[key] = "joined"
            return ("joined", x, outcome, max(0, ts - at), None)
        if self.done.get(key) == "joined":
            self.counts["duplicate"] += 1
            return "duplicate"
        if self.done.get(key) == "expired":
            self.counts["expired"] += 1
            return "expired"
        self.early.setdefault(key, (y, ts))
        return None

    def advance(self, ts: int) -> list[Any]:
        while self.pending:
            key, (_, _, at) = next(iter(self.pending.items()))
            if len(self.pending) <= self.max_pending and at >= ts - self.ttl_ms:
                break
            del self.pending[key]
            self.counts["expired"] += 1
            self.done[key] = "expired"
        lost = []
        for key, (_, at) in list(self.early.items()):
            if at >= ts - self.early_ms:
                break
            del self.early[key]
            self.counts["unknown"] += 1
            lost.append(("unknown", key))
        return lost


def seen(answer: Joined | Lost | None) -> Any:
    if isinstance(answer, Joined):
        return ("joined", answer.x, answer.outcome, answer.waited_ms, answer.y)
    if isinstance(answer, Lost):
        return answer.kind
    return None


def features(rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.8:
        return {f"f{i}": rng.gauss(0, 1) for i in range(4)}
    if kind < 0.9:
        return {"n": rng.randint(-5, 5), "flag": rng.random() < 0.5}
    return {"city": rng.choice(["Lyon", "Oslo"]), "v": rng.random()}  # not packable: the fallback


@pytest.mark.parametrize("seed", range(12))
def test_same_joins_expiries_and_counts_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    ttl, max_pending, early = rng.choice([(50, 1000, 10), (400, 8, 30), (10_000, 25, 0)])
    join, reference = LabelJoin(ttl, max_pending, early), Reference(ttl, max_pending, early)
    ids = [rng.randrange(60) for _ in range(3000)]
    ts = 0
    for step, key in enumerate(ids):
        ts += rng.choice([0, 0, 1, 2, 5, 20])  # the merged timestamps never go back
        assert [lost.kind for lost in join.advance(ts)] == [kind for kind, _ in reference.advance(ts)], step
        if rng.random() < 0.55:
            x, outcome = features(rng), rng.choice([{False: 0.25, True: 0.75}, (rng.random(), None), "why"])
            assert seen(join.arrive(key, x, outcome, ts)) == reference.arrive(key, x, outcome, ts), step
        else:
            y = rng.random() < 0.5
            assert seen(join.label(key, y, ts)) == reference.label(key, y, ts), step
        assert join.waiting == len(reference.pending), step
    assert join.counts == reference.counts


def test_joined_entries_leave_nothing_behind() -> None:
    """A day's TTL and a stream whose labels come 50 events late: what waits is those 50, nothing stale."""
    join = LabelJoin(ttl_ms=86_400_000, max_pending=1_000_000, early_ms=1000)
    for i in range(20_000):
        join.advance(i)
        join.arrive(i, {"a": float(i)}, {False: 0.5, True: 0.5}, ts=i)
        if i >= 50:
            assert isinstance(join.label(i - 50, True, ts=i), Joined)
    assert join.waiting == 50 and len(join._order) <= 51
