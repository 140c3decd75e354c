"""A challenger's paired comparison on three partitions, through the real broker and Redis: the sum of the
paired per-event losses equals the one computed offline per event, each event paired once, across a
``kill -9`` of either side. Both models answer each event whatever the order (they learn nothing), so the
interleaving of the partitions, which no one defines, cannot change a figure."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import make_stack
from tests.test_challengers import challenger, rows_of, wait_challenger

pytestmark = pytest.mark.integration

EVENTS = [{"id": i, "x": {"i": i, "a": (i * 37 % 101) / 50 - 1}, "y": (i * 7) % 10 < 6} for i in range(1200)]
COMMON = ("--lease-ttl", "2", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0", "--batch-size", "50",
          "--metric", "Accuracy")


def test_paired_losses_on_three_partitions_sum_to_the_offline_ones(broker: object, redis_server: object) -> None:
    stack = make_stack(broker, redis_server, partitions=3)  # type: ignore[arg-type]

    def produce(start: int, end: int) -> None:
        for partition in range(3):
            stack.produce([orjson.dumps(e) for e in EVENTS[start:end] if e["id"] % 3 == partition],
                          partition=partition)

    try:
        produce(0, 300)
        champion = stack.start("--model", "tests.models:constant_true", *COMMON)
        stack.wait_status(lambda s: s["events_done"] >= 300)
        head = stack.store().head()
        assert head is not None
        sign = challenger(stack, "sign", "--model", "tests.models:sign_of_a", "--from-version", str(head),
                          "--lease-ttl", "2")
        stack.wait_for_log("writing what is scored to", index=0)  # the champion knows: the next events pair
        produce(300, 900)
        wait_challenger(stack, "sign", 600)
        stack.wait_status(lambda s: s["events_done"] >= 700)
        for killed in (sign, champion):  # kill -9 mid-stream: each begins again from its own snapshot
            killed.kill()
            killed.wait()
        produce(900, 1200)
        champion = stack.start("--model", "tests.models:constant_true", *COMMON)
        sign = challenger(stack, "sign", "--model", "tests.models:sign_of_a", "--lease-ttl", "2")
        wait_challenger(stack, "sign", 1200)
        deadline = time.monotonic() + 180
        while (row := rows_of(stack)["sign"])["paired_events"] < 900:  # the champion's last scores
            assert time.monotonic() < deadline, row
            time.sleep(0.2)
        for process in (sign, champion):
            assert stack.stop(process) == 0
        row = rows_of(stack)["sign"]
    finally:
        stack.cleanup()

    tail = EVENTS[300:]  # scored by the champion after it knew of the challenger: paired, each once
    ours = [(e["x"]["a"] > 0) != e["y"] for e in tail]  # type: ignore[operator]
    theirs = [e["y"] is not True for e in tail]
    assert row["paired_events"] == len(tail) and row["waiting"] == {"champion": 0, "challenger": 0}
    assert round(row["difference"]["value"] * len(tail)) == sum(ours) - sum(theirs)
    assert row["difference"]["value"] == pytest.approx((sum(ours) - sum(theirs)) / len(tail))
    assert row["metrics"]["Accuracy"]["all"] == pytest.approx(1 - sum(ours) / len(tail))
    assert row["champion"]["Accuracy"]["all"] == pytest.approx(1 - sum(theirs) / len(tail))
