"""The process protocol against an in-memory peer: no broker, no Redis.

Each side accepts only the messages meant for it; the model side learns a batch and answers it;
the link to the gateway keeps whatever arrives while it waits for a snapshot barrier's answer.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
from collections import deque
from typing import Any

import orjson
import pytest

from learner.core.models import build_model, kind_of
from learner.core.scorecard import Scorecard
from learner.core.step import LearningStep
from learner.errors import GatewayFailed, ProtocolError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.link import GatewayLink
from learner.runtime.model.live_model import LiveModel
from learner.runtime.model.restore import Restored
from learner.runtime.shared.pipes import Duplex, duplex_pipes
from learner.settings import Settings

SCORECARD = Scorecard.new("binary", ("Accuracy",), drift_window=0)
KIND = kind_of(build_model("logreg"))
TO_MODEL = [p.GatewayReady(), p.Batch(1, 0, b"[]", {("in", 0): 3}, 3), p.Flushed(7, SCORECARD),
            p.Report({}, 1, 1, 0, [0.01], {"0": 2}, 1, True), p.GuardTripped(0.5), p.Failure("broken")]
TO_GATEWAY = [p.Start({}, SCORECARD, KIND), p.Results(1, 0, 0, True, [{True: 0.5}]), p.Flush(7),
              p.Seek(2, {("in", 0): 0}, SCORECARD, KIND), p.Rescore(SCORECARD, KIND), p.Commit({("in", 0): 3}),
              p.ArmGuard(None), p.Stop()]


def same(a: Any, b: Any) -> bool:
    """Equal messages (a scorecard compares by what it scored)."""
    if type(a) is not type(b):
        return False
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, Scorecard):
            x, y = (x.task, x.evaluation.values()), (y.task, y.evaluation.values())
        if x != y:
            return False
    return True


def pair() -> tuple[p.Channel, p.Channel]:
    model, gateway = duplex_pipes(multiprocessing.get_context("fork"))
    return p.model_side(model), p.gateway_side(gateway)


@pytest.mark.parametrize("message", TO_MODEL, ids=lambda m: type(m).__name__)
def test_what_the_gateway_sends_reaches_the_model_side(message: Any) -> None:
    model, gateway = pair()
    gateway.send(message)
    assert same(model.receive(), message)


@pytest.mark.parametrize("message", TO_GATEWAY, ids=lambda m: type(m).__name__)
def test_what_the_model_sends_reaches_the_gateway_side(message: Any) -> None:
    model, gateway = pair()
    model.send(message)
    assert same(gateway.receive(), message)


@pytest.mark.parametrize("message", [*TO_GATEWAY[:3], ("batch", 1), "stop"], ids=repr)
def test_the_model_side_refuses_anything_else(message: Any) -> None:
    model, gateway = pair()
    gateway._conn.send_bytes(pickle.dumps(message))
    with pytest.raises(ProtocolError, match="unexpected message from the gateway"):
        model.receive()


@pytest.mark.parametrize("message", [*TO_MODEL[:3], ("results", 1), None], ids=repr)
def test_the_gateway_side_refuses_anything_else(message: Any) -> None:
    model, gateway = pair()
    model._conn.send_bytes(pickle.dumps(message))
    with pytest.raises(ProtocolError, match="unexpected message from the model"):
        gateway.receive()


def test_a_peer_that_goes_away_is_said_in_one_line() -> None:
    model, gateway = pair()
    gateway.close()
    with pytest.raises(GatewayFailed, match="the gateway process went away"):
        model.receive()


def _live(settings: Settings) -> LiveModel:
    step = LearningStep(build_model("logreg"))
    return LiveModel(Restored(step, Scorecard.new(step.task), None, "logreg", {}), settings)


def test_the_model_side_learns_a_batch_and_answers_it() -> None:
    live = _live(Settings(snapshot_every_events=0, snapshot_every_seconds=0))
    events = [{"x": {"a": 1.0}, "y": True}, {"x": {"a": -1.0}}, {"x": {"a": "?"}, "y": False}]
    results = live.learn(p.Batch(1, 0, orjson.dumps(events), {("in", 0): 4}, 4))
    assert results is not None and results.seq == 1 and results.learned == 0 and results.learning
    proba, unlabelled, refused = results.outcomes
    assert proba == {False: 0.5, True: 0.5} and isinstance(unlabelled, dict) and refused.startswith("the model rejected")
    assert live.step.learned == 1 and live.position == {("in", 0): 4} and live.checkpoint.pending == 4
    live.epoch += 1  # a seek: batches read before it are dropped, their offsets not recorded
    assert live.learn(p.Batch(2, 0, b"[]", {("in", 0): 9}, 5)) is None and live.position == {("in", 0): 4}


def _fake_gateway(settings: Settings, conn: Duplex) -> None:
    """A gateway without Kafka: ready, then a report and a batch before the barrier's answer."""
    channel = p.gateway_side(conn)
    channel.send(p.GatewayReady())
    flush = channel.receive()
    assert isinstance(flush, p.Flush)
    channel.send(p.Report({}, 0, 0, 0, [], {}, 1, True))
    channel.send(p.Batch(1, 0, b"[]", {}, 0))
    channel.send(p.Flushed(flush.token, SCORECARD))
    channel.receive()  # Stop


def test_the_link_keeps_what_arrives_while_it_waits_for_a_barrier() -> None:
    link = GatewayLink(Settings(), _fake_gateway)
    try:
        link.wait_ready(timeout=30)
        link.send(p.Flush(3))
        assert link.flushed(3, timeout=30).token == 3
        assert isinstance(link.next(1.0), p.Report) and isinstance(link.next(1.0), p.Batch)
        assert link.next(0.0) is None
    finally:
        link.stop(timeout=10)
    assert not link.alive


def _failing_gateway(settings: Settings, conn: Duplex) -> None:
    p.gateway_side(conn).send(p.Failure("cannot reach Kafka at nowhere:9092: refused"))


def test_a_gateway_failure_is_its_one_line() -> None:
    link = GatewayLink(Settings(), _failing_gateway)
    with pytest.raises(GatewayFailed, match=r"^cannot reach Kafka at nowhere:9092: refused$"):
        link.wait_ready(timeout=30)
    link.stop(timeout=10)


class _Piped:
    """A stand-in for the model's end of the pipe: the messages the gateway has written, in order."""

    def __init__(self, messages: list[p.ToModel]) -> None:
        self.messages = list(messages)

    def ready(self, timeout: float = 0.0) -> bool:
        return bool(self.messages)

    def receive(self) -> p.ToModel:
        return self.messages.pop(0)


def test_the_model_takes_control_messages_before_the_batches_read_with_them() -> None:
    """A barrier's answer behind batches of a slow model would hold the snapshot back for seconds."""
    batches = [p.Batch(seq, 0, b"[]", {}, 0) for seq in (1, 2, 3)]
    flushed = p.Flushed(7, Scorecard.new("binary", ("Accuracy",)))
    link = object.__new__(GatewayLink)
    link.channel, link._backlog = _Piped([batches[0], batches[1], flushed, batches[2]]), deque()  # type: ignore[assignment]
    taken = [link.next(0.0) for _ in range(5)]
    assert taken == [flushed, *batches, None]  # batches in their order, the control message first


def test_a_sliced_batch_answers_as_a_whole_one_and_looks_at_its_messages_between_slices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow model's batch is stepped in slices so that a snapshot's barrier answer is not held for
    seconds; the answers and what is learned are those of the batch stepped at once."""
    from learner.runtime.model import live_model

    monkeypatch.setattr(live_model, "SLICE_SECONDS", 0.0)  # look between every slice
    events = [{"x": {"a": (i % 7) - 3.0, "b": "?" if i == 100 else i % 3}, "y": i % 2 == 0} for i in range(300)]
    batch = p.Batch(1, 0, orjson.dumps(events), {("in", 0): 300}, 300)
    settings = Settings(snapshot_every_events=0, snapshot_every_seconds=0)
    whole, sliced, looks = _live(settings), _live(settings), []
    expected, answered = whole.learn(batch), sliced.learn(batch, lambda: looks.append(1))
    assert expected is not None and answered is not None
    assert answered.outcomes == expected.outcomes and sliced.step.learned == whole.step.learned == 299
    assert len(looks) == -(-300 // live_model.SLICE)
