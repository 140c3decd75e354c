"""The label join against a plain reference (dicts, no packing, no shortcuts), on random streams.

Pure: the join's compact storage and its fast paths (the front timestamp it keeps so that most
items cost two comparisons, the stale entries it drops lazily, the newest entries kept unpacked)
must not change what is joined, expired or lost, nor any count; nor does pickling it midway.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from learner.core import labels
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


@pytest.mark.parametrize("young", [(labels.YOUNG_EVENTS, labels.YOUNG_VALUES), (3, 1_000), (1_000, 9)])
@pytest.mark.parametrize("seed", range(12))
def test_same_joins_expiries_and_counts_as_the_reference(seed: int, young: tuple[int, int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Also with few entries unpacked (by count, then by feature values), and pickled now and then."""
    monkeypatch.setattr(labels, "YOUNG_EVENTS", young[0])
    monkeypatch.setattr(labels, "YOUNG_VALUES", young[1])
    rng = random.Random(seed)
    ttl, max_pending, early = rng.choice([(50, 1000, 10), (400, 8, 30), (10_000, 25, 0)])
    join, reference = LabelJoin(ttl, max_pending, early), Reference(ttl, max_pending, early)
    ids = [rng.randrange(60) for _ in range(3000)]
    ts = 0
    for step, key in enumerate(ids):
        if step % 997 == 996:
            join = pickle.loads(pickle.dumps(join))
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
    unpacked = [entry for entry in join._pending.values() if type(entry) is tuple]
    assert len(unpacked) <= young[0] and join._young_values == sum(len(entry[0]) for entry in unpacked)


def test_joined_entries_leave_nothing_behind() -> None:
    """A day's TTL and a stream whose labels come 50 events late: what waits is those 50, nothing stale."""
    join = LabelJoin(ttl_ms=86_400_000, max_pending=1_000_000, early_ms=1000)
    for i in range(20_000):
        join.advance(i)
        join.arrive(i, {"a": float(i)}, {False: 0.5, True: 0.5}, ts=i)
        if i >= 50:
            assert isinstance(join.label(i - 50, True, ts=i), Joined)
    assert join.waiting == 50 and len(join._order) <= 51 and not join._stale
    assert len(join._young) <= labels.YOUNG_EVENTS and join._young_values == 50  # the 50 waiting, unpacked


def test_the_newest_wait_unpacked_and_a_label_learns_the_dict_that_was_predicted() -> None:
    join = LabelJoin(ttl_ms=86_400_000, max_pending=1_000_000, early_ms=1000)
    first = {"a": 1.5, "n": 2}
    join.arrive("first", first, {False: 0.5, True: 0.5}, ts=0)
    for i in range(labels.YOUNG_EVENTS):  # "first" is now the oldest of YOUNG_EVENTS + 1: packed
        join.arrive(i, {"a": float(i), "n": i}, {False: 0.5, True: 0.5}, ts=i)
    assert type(join._pending["first"]) is bytes and type(join._pending[0]) is tuple
    packed, young = join.label("first", True, ts=9), join.label(7, True, ts=9)
    assert isinstance(packed, Joined) and packed.x == first and packed.x is not first
    assert isinstance(young, Joined) and young.x == {"a": 7.0, "n": 7} and young.waited_ms == 2
    assert all(type(blob) is bytes for blob in pickle.loads(pickle.dumps(join))._pending.values())


#: A join with three events waiting (one of them came twice, one has text features and a
#: regressor's prediction) and one joined, as the release before 2026-12 pickled it (blobs began
#: with a sequence number; the schemas lived in the join).
EARLIER_RELEASE = (
    "eJxNUc9r1EAUTnbdbdb1UIqXInhYLxWshyKCUrDQY6iCd4mzM2+dqclMNpmpu8gWEQwKc/P5f/lnFP+J+iYZxMDL+755835982Xy63qU9N8Oj/zU2r"
    "KoWrx4/8fPK7YpatBC6Q94cTP2GbCm3PZhYlNunLYthrSsAQ7qCgTmqZ9eGqUHuAebWjUBJ37P6Y/afNIBz4SrS8WZhcAmfd2AqE5dMj4kE7kEbvts"
    "RylQsm0bur/D/CHz2b/ZwgQpw/Pn42GR5Gv0Kdl+xDevBv87+kdnsxhBn3I8P44qJJvob29HSRbx/tnnBVd2u3i5eNOWZrFD56eFaQQ06OfclCUNqo"
    "xu0U8ErB3gT3z8Fo/kgU+XKO/LA/CzQsPGFi2sMb/j7xarxuhISZBISc9cUOlBkR36ewOMveQhVfWTQhgNFJUP8jRPO2z9vD/6/1aIdcgo0kAF1RKa"
    "qGrRcgkVCzKSbDX++N5hRxpsyFZkGgd+ha87BMof7hdK9G8tn8jjjkaWJz5bOlVa1W+9Kg2ztLV84cdKBxSq5Kl89g3zkQttbeO4HdqOT08E0l+s0Y"
    "9OBYJ7+hefPt3o")


def test_a_join_pickled_by_an_earlier_release_goes_on_where_it_was() -> None:
    import base64
    import pickle
    import zlib

    join = LabelJoin.__new__(LabelJoin)
    join.__setstate__(pickle.loads(zlib.decompress(base64.b64decode(EARLIER_RELEASE))))
    assert join.waiting == 2 and join.counts["joined"] == 1 and join.counts["replaced"] == 1
    assert isinstance(join.label("b", True, ts=150), Lost)  # joined before the upgrade: a duplicate
    late_a = join.label("a", False, ts=150)
    assert isinstance(late_a, Joined) and late_a.x == {"f": 9.5, "n": 9} and late_a.waited_ms == 20  # the newer "a"
    assert [lost.kind for lost in join.advance(ts=200)] == []
    join.advance(ts=121 + 60_000)  # "c" (stamped 120) expires a minute later
    assert join.waiting == 0 and join.counts["expired"] == 1
    assert join.label("c", 1.0, ts=60_200).kind == "expired"  # type: ignore[union-attr]
