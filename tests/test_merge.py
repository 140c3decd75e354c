"""The timestamp-ordered merge, as pure logic: the order does not depend on how the bytes arrived."""

from __future__ import annotations

import random

from stream.merge import TimestampMerge
from tests.doubles import Fake

PARTITIONS = [("labels", 0), ("events", 0), ("events", 1), ("events", 2)]


def logs(seed: int) -> dict[tuple[str, int], list[Fake]]:
    """Four partitions with roughly increasing timestamps, some out of order within a partition."""
    rng = random.Random(seed)
    out = {}
    for topic, partition in PARTITIONS:
        ts, messages = 0, []
        for offset in range(200):
            ts += rng.randint(0, 20)
            jitter = -rng.randint(1, 30) if rng.random() < 0.05 else 0  # a producer's clock stepping back
            messages.append(Fake(topic, partition, offset, ts + jitter))
        out[(topic, partition)] = messages
    return out


def merged(seed: int, arrival: random.Random) -> list[tuple[str, int, int]]:
    """Feed the logs in random chunks, partitions interleaved at random; release as we go."""
    merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=1.0)
    merge.assign(PARTITIONS)
    queues = {tp: list(messages) for tp, messages in logs(seed).items()}
    out, now = [], 0.0
    while any(queues.values()):
        tp = arrival.choice([tp for tp, q in queues.items() if q])
        for _ in range(arrival.randint(1, 30)):
            if queues[tp]:
                merge.add(queues[tp].pop(0), now)
        out += [(m.topic(), m.partition(), m.offset()) for _, m in merge.release(now)]
        now += 0.001  # never long enough for a partition to go idle while it still has messages
    for tp in PARTITIONS:
        merge.caught_up(tp, True)
    out += [(m.topic(), m.partition(), m.offset()) for _, m in merge.release(now + 10)]
    assert merge.late == 0
    return out


def test_the_order_is_the_logs_own() -> None:
    for seed in range(5):
        orders = {tuple(merged(seed, random.Random(arrival))) for arrival in range(10)}
        assert len(orders) == 1  # ten different arrivals, one order
        (order,) = orders
        assert len(order) == 4 * 200


def test_partitions_keep_their_offset_order_and_labels_go_first_on_ties() -> None:
    merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=1.0)
    merge.assign([("labels", 0), ("events", 0)])
    for m in [Fake("events", 0, 0, 100), Fake("events", 0, 1, 90), Fake("labels", 0, 0, 100)]:
        merge.add(m)
    merge.caught_up(("labels", 0), True)
    merge.caught_up(("events", 0), True)
    released = [(key, m.topic(), m.offset()) for key, m in merge.release(now=5.0)]
    # event 1's clock stepped back: it counts as 100 (its partition's order holds); the label goes first
    assert released == [((100, 0, 0, 0), "labels", 0), ((100, 1, 0, 0), "events", 0), ((100, 1, 0, 1), "events", 1)]


def test_a_message_after_its_partition_went_idle_is_late_and_counted() -> None:
    merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5)
    merge.assign([("labels", 0), ("events", 0)], now=0.0)
    merge.add(Fake("events", 0, 0, 500), now=0.0)
    merge.caught_up(("labels", 0), True)
    assert [m.offset() for _, m in merge.release(now=1.0)] == [0]  # labels idle: the event goes
    merge.add(Fake("labels", 0, 0, 400), now=1.1)  # but a label older than it comes after all
    assert [m.topic() for _, m in merge.release(now=1.1)] == ["labels"] and merge.late == 1


def test_a_restart_from_the_marks_continues_the_same_order() -> None:
    """The marks (kept in a snapshot) carry each partition's clock over a restart."""
    full = merged(0, random.Random(0))
    cut = 300
    first = TimestampMerge({"labels": 0, "events": 1}, idle_after=1.0)
    first.assign(PARTITIONS)
    for messages in logs(0).values():
        for m in messages:
            first.add(m)
    for tp in PARTITIONS:
        first.caught_up(tp, True)
    released = first.release(now=10.0, limit=cut)
    positions = {}
    for _, m in released:
        positions[(m.topic(), m.partition())] = m.offset() + 1
    second = TimestampMerge({"labels": 0, "events": 1}, idle_after=1.0)
    second.assign(PARTITIONS, first.marks())
    for tp, messages in logs(0).items():
        for m in messages[positions.get(tp, 0):]:
            second.add(m)
    for tp in PARTITIONS:
        second.caught_up(tp, True)
    resumed = [(m.topic(), m.partition(), m.offset()) for _, m in released + second.release(now=10.0)]
    assert resumed == full


def test_with_an_allowance_a_quiet_partition_holds_back_only_what_is_that_recent() -> None:
    merge = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5, allowance_ms=20)
    merge.assign([("labels", 0), ("events", 0)], now=0.0)
    merge.add(Fake("events", 0, 0, 1000), now=0.0)
    assert merge.release(now=0.0, clock_ms=1005) == []  # labels not read to their end: they hold it back
    merge.caught_up(("labels", 0), True)
    assert merge.release(now=0.0, clock_ms=1015) == []  # read to their end, but a label stamped 995..1015 may be in flight
    assert merge.wake_in(clock_ms=1015) == 0.006
    assert [m.offset() for _, m in merge.release(now=0.0, clock_ms=1021)] == [0]  # 20 ms on: it goes, long before idle


def test_a_replay_puts_a_late_message_where_the_first_run_did() -> None:
    """The keys of late messages, given back to the merge, make a replay learn the first run's order."""
    def merge() -> TimestampMerge:
        fresh = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5, allowance_ms=20)
        fresh.assign([("labels", 0), ("events", 0)], now=0.0)
        return fresh

    def released(m: TimestampMerge) -> list[tuple[str, int]]:
        m.caught_up(("labels", 0), True)
        m.caught_up(("events", 0), True)
        return [(message.topic(), message.offset()) for _, message in m.release(now=0.1, clock_ms=10_000)]

    events = [Fake("events", 0, i, 200 * i) for i in range(5)]
    first = merge()
    for m in events:
        first.add(m, now=0.0)
    order = released(first)
    first.add(Fake("labels", 0, 0, 100), now=0.1)  # stamped before events that are gone already: late
    order += released(first)
    assert order == [("events", i) for i in range(5)] + [("labels", 0)] and first.late == 1
    (decision,) = first.decisions()
    assert decision[0] == ("labels", 0, 0)

    plain, replay = merge(), merge()  # a replay from the logs alone; one that is given the first run's decision
    replay.decided(dict([decision]))
    for m in [Fake("labels", 0, 0, 100), *events]:
        plain.add(m)
        replay.add(m)
    assert released(plain) == [("events", 0), ("labels", 0)] + [("events", i) for i in range(1, 5)]
    assert released(replay) == order and replay.late == 0


def test_many_late_messages_keep_short_keys_and_replay_in_their_order() -> None:
    """A backlog of late messages (a backfill into a live topic): each key stays five long, they go in
    the order they came, and a replay given their keys puts every one where it went."""
    def merge() -> TimestampMerge:
        fresh = TimestampMerge({"labels": 0, "events": 1}, idle_after=0.5, allowance_ms=20)
        fresh.assign([("labels", 0), ("labels", 1), ("events", 0)], now=0.0)
        for tp in [("labels", 0), ("labels", 1), ("events", 0)]:
            fresh.caught_up(tp, True)
        return fresh

    events = [Fake("events", 0, i, 1000 + i) for i in range(50)]
    labels = [Fake("labels", i % 2, i // 2, 10 + i) for i in range(40)]  # stamped long before the events
    first, order = merge(), []
    for m in events:
        first.add(m, now=0.0)
    order += [(m.topic(), m.partition(), m.offset()) for _, m in first.release(now=0.0, clock_ms=10_000)]
    rng = random.Random(7)
    for start in range(0, 40, 5):  # the labels come a few at a time, some released between
        for m in labels[start:start + 5]:
            first.add(m, now=0.1)
            for tp in [("labels", 0), ("labels", 1)]:
                first.caught_up(tp, True)
        if rng.random() < 0.5:
            order += [(m.topic(), m.partition(), m.offset()) for _, m in first.release(now=0.1, clock_ms=10_000)]
    order += [(m.topic(), m.partition(), m.offset()) for _, m in first.release(now=0.2, clock_ms=10_000)]
    decisions = first.decisions()
    assert first.late == len(decisions) == 40 and {len(key) for _, key in decisions} == {5}
    assert order[:50] == [("events", 0, i) for i in range(50)]

    replay = merge()
    replay.decided(dict(decisions))
    for m in [*labels, *events]:  # everything at once, labels first: their keys decide
        replay.add(m)
    for tp in [("labels", 0), ("labels", 1), ("events", 0)]:
        replay.caught_up(tp, True)
    assert [(m.topic(), m.partition(), m.offset()) for _, m in replay.release(now=9.0, clock_ms=10_000)] == order
