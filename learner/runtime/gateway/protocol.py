"""The messages between the model process and the gateway, and the channel that carries them.

Every message is a small frozen dataclass; each side accepts only its own union and dispatches
with ``match``; anything else is a :class:`~learner.errors.ProtocolError` on either side. A
message crosses the pipe pickled once (highest protocol); a batch carries its events as one JSON
array, which the model process decodes with one ``orjson.loads``.

::

    gateway ── Batch(seq, epoch, events, position, count) ──────────────────────────────► model
    gateway ◄── Results(seq, learned, version, learning, outcomes) ─────────────────────── model
    gateway ◄── Flush(token) ──  then  ── Flushed(token, scorecard) ──────────────────────► model
    gateway ◄── Seek(epoch, position, scorecard, kind) | Rescore(scorecard, kind) ────────── model
    gateway ◄── Commit(position) ── (what a snapshot made durable, for lag tools) ───────── model
    gateway ◄── ArmGuard(armed | None) ── ;  ── GuardTripped(value) ─────────────────────► model
    gateway ◄── WriteScores(on) ── (the model has challengers, or no longer) ─────────────── model
    gateway ── Report(...) every second; Failure(reason) once, if it fails ────────────────► model
    gateway ◄── Start(position, scorecard, kind) once; Stop() at the end ─────────────────── model

``Flush`` is the snapshot barrier: when the gateway answers it, every result the model sent before
it is encoded, produced and acknowledged by the broker, and the scorecard covers exactly those
events. ``epoch`` grows at each seek: batches read before it are dropped by both sides.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from learner.core.drift import Detection
from learner.core.guard import ArmedGuard
from learner.core.labels import Lost
from learner.core.models import ModelKind
from learner.core.positions import Position
from learner.core.scorecard import Scorecard
from learner.core.step import ItemOutcome, Join
from learner.errors import GatewayFailed, ProtocolError
from learner.runtime.shared.pipes import Duplex
from stream.merge import Key

#: Late messages' keys in the merge, by (topic, partition, offset) (see learner.state.late_log).
Decisions = dict[tuple[str, int, int], Key]

__all__ = [
    "ArmGuard", "Batch", "Channel", "Commit", "Failure", "Flush", "Flushed", "GatewayReady",
    "GuardTripped", "Report", "Rescore", "Results", "Seek", "Start", "Stop", "ToGateway", "ToModel", "WriteScores",
]


# -- from the gateway to the model process -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GatewayReady:
    """The gateway is connected and the topics exist; it waits for :class:`Start`."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Validated events to step the model over, in order, as one JSON array of ``{"x", "y"}``.

    With a labels topic, the array holds events and labels in their merged order (see
    :meth:`learner.core.step.LearningStep.process_items`), and ``marks`` the merge's monotone
    timestamp of each partition touched. ``position`` is where each partition it touched stands
    after it; ``count`` counts every message consumed for it, dead letters included.
    """

    seq: int
    epoch: int
    events: bytes
    position: Position
    count: int
    marks: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Keys the merge gave late messages of this batch: recorded before its answers are published.
    late: list[tuple[tuple[str, int, int], Key]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Flushed:
    """Answer to :class:`Flush`: everything before it is published; the scorecard of exactly that."""

    token: int
    scorecard: Scorecard


@dataclass(frozen=True, slots=True)
class Report:
    """The gateway's numbers, every second: totals since it started, samples since the last report."""

    metrics: dict[str, dict[str, float]]
    consumed: int
    predicted: int
    dead_lettered: int
    latencies: list[float]
    lag: dict[str, int]
    assigned: int
    broker_ok: bool
    drifts: list[Detection] = field(default_factory=list)
    #: With a labels topic: messages that came after their partition was taken for idle (out of order).
    late: int = 0
    #: A challenger's pairs with its champion (see learner.core.live_pairing.LivePairing.report).
    pairing: dict[str, Any] | None = None
    #: Dead letters by kind (totals since the gateway started).
    dead_letters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GuardTripped:
    """The guarded rolling metric crossed the margin; the model process decides what happens."""

    value: float


@dataclass(frozen=True, slots=True)
class Failure:
    """The gateway failed (one line); it stops after sending this."""

    reason: str


ToModel = GatewayReady | Batch | Flushed | Report | GuardTripped | Failure


# -- from the model process to the gateway -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Start:
    """Begin consuming: every partition at ``position`` (from the beginning when absent)."""

    position: Position
    scorecard: Scorecard
    kind: ModelKind
    marks: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Where earlier runs put late messages: a replay puts them there too.
    decided: Decisions = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Results:
    """The model's answers to one :class:`Batch`, in order.

    Per event: the class probabilities (a classifier whose label is its most probable class), a
    ``(prediction, probabilities or None)`` pair, or a string: why the model refused the event.
    ``learned`` is the count of events learned before the batch; ``version`` the model's version.
    """

    seq: int
    learned: int
    version: int
    learning: bool
    outcomes: Sequence[ItemOutcome]
    #: With a labels topic: the joins of labels with their events' predictions, and the early labels
    #: that expired without their event.
    joins: list[Join] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    #: The model's own time on the batch (seconds): the gateway sizes the next batches by it.
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Flush:
    """The snapshot barrier (see the module's docstring)."""

    token: int


@dataclass(frozen=True, slots=True)
class Seek:
    """Go to ``position`` (a rollback with replay); batches of older epochs are dropped."""

    epoch: int
    position: Position
    scorecard: Scorecard
    kind: ModelKind
    marks: dict[tuple[str, int], int] = field(default_factory=dict)
    decided: Decisions = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rescore:
    """Score from this scorecard on (a rollback that continues from the stream position)."""

    scorecard: Scorecard
    kind: ModelKind


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit this position to the consumer group: what a snapshot made durable, for lag tools."""

    position: Position


@dataclass(frozen=True, slots=True)
class ArmGuard:
    """Watch the guarded metric against ``armed`` (None: stop watching)."""

    armed: ArmedGuard | None


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish: flush what is produced and exit."""


@dataclass(frozen=True, slots=True)
class WriteScores:
    """Write what is scored to the scores topic (the model has challengers), or stop (it has none)."""

    on: bool


ToGateway = Start | Results | Flush | Seek | Rescore | Commit | ArmGuard | WriteScores | Stop


class Channel:
    """One side's end of the pipe pair: typed messages out, typed messages in (checked)."""

    def __init__(self, conn: Duplex, accepts: Any, peer: str, gone: type[Exception]) -> None:
        self._conn = conn
        self._accepts = accepts
        self._peer = peer
        self._gone = gone

    def send(self, message: ToGateway | ToModel) -> None:
        self._conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether a message is waiting (within ``timeout`` seconds)."""
        return self._conn.poll(timeout)

    def receive(self) -> Any:
        """The next message (blocking); ProtocolError if it is not one this side accepts."""
        try:
            raw = self._conn.recv_bytes()
        except (EOFError, OSError):
            raise self._gone(f"the {self._peer} process went away") from None
        message = pickle.loads(raw)
        if not isinstance(message, self._accepts):
            raise ProtocolError(f"unexpected message from the {self._peer}: {type(message).__name__}")
        return message

    def close(self) -> None:
        self._conn.close()


def model_side(conn: Duplex) -> Channel:
    """The model process's channel: it accepts what the gateway sends."""
    return Channel(conn, ToModel.__args__, "gateway", GatewayFailed)


def gateway_side(conn: Duplex) -> Channel:
    """The gateway's channel: it accepts what the model process sends (EOFError when it is gone)."""
    return Channel(conn, ToGateway.__args__, "model", EOFError)
