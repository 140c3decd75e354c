"""A running challenger paired with its champion, event by event, as both learn the same stream.

The champion writes each event it scores to its scores topic (README "Experiments"); the challenger
scores the same events itself. Each scored event is keyed by where it was learned: the event's own
``(0, partition, offset)`` on the input topic, or, with a labels topic, its label's ``(1, partition,
offset)``. Both sides learn in the same merged order, so along one partition the keys of each side
only grow; that makes the rules simple and the state small:

- an event pairs once, with the first answer of each side (a champion that restarts or replays
  after a rollback sends some keys again: they are ignored);
- once a key pairs, every earlier key of that partition still waiting on either side never will
  (the other side did not score it: it came before the challenger's start, or before the champion
  knew of challengers), and is dropped and counted as ``unpaired``;
- keys below the challenger's start are ignored.

Pure; pickled inside the challenger's scorecard, so a snapshot holds exactly the pairs of the events
its offsets cover, and the scores topic's offset read so far.

>>> live = LivePairing("binary", ("Accuracy",), floor={(0, 0): 10})
>>> live.champion([(0, 0, 9, True, True, None), (0, 0, 10, True, True, None), (0, 0, 11, False, True, None)])
>>> live.ours([(0, 0, 10, True, False, None), (0, 0, 11, False, False, None), (0, 0, 12, True, True, None)])
>>> live.champion([(0, 0, 11, False, False, None)])  # sent again after a restart: the first answer stands
>>> report = live.report()
>>> report["paired_events"], report["metrics"]["Accuracy"]["all"], report["champion"]["Accuracy"]["all"]
(2, 0.5, 0.5)
>>> report["waiting"], report["unpaired"]
({'champion': 0, 'challenger': 1}, 0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from learner.core.evaluation import DEFAULT_WINDOW
from learner.core.models import Task
from learner.core.pairing import Pairing

__all__ = ["MAX_WAITING", "LivePairing", "Scored"]

#: One scored event: source (0 input, 1 labels), partition, offset, label, prediction, probabilities
#: (partition and offset as confluent-kafka's messages type them: never None on a consumed message).
Scored = tuple[int, Any, Any, Any, Any, Any]
#: Answers of one side waiting for the other's, at most (the champion's: the reader stops reading;
#: the challenger's: the oldest are dropped as unpaired).
MAX_WAITING = 200_000

_Stream = tuple[int, int]
_Answer = tuple[Any, Any, Any]


class _Side:
    """One side's answers waiting for the other's, by key, and their keys in order per partition."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[int, int, int], _Answer] = {}
        self.order: dict[_Stream, deque[int]] = {}

    def add(self, stream: _Stream, offset: int, answer: _Answer) -> None:
        self.waiting[(*stream, offset)] = answer
        self.order.setdefault(stream, deque()).append(offset)

    def drop_before(self, stream: _Stream, offset: int) -> int:
        """Forget what waits on ``stream`` below ``offset``; how many answers that dropped."""
        order, dropped = self.order.get(stream), 0
        while order and order[0] < offset:
            dropped += self.waiting.pop((*stream, order.popleft()), None) is not None
        return dropped

    def drop_oldest(self) -> int:
        stream = max(self.order, key=lambda s: len(self.order[s]))
        order = self.order[stream]
        return self.waiting.pop((*stream, order.popleft()), None) is not None if order else 0


class LivePairing:
    """The pairs of one challenger with its champion, and what waits to be paired (see the module's docstring)."""

    def __init__(self, task: Task, metrics: tuple[str, ...], floor: dict[_Stream, int], since: float = 0.0,
                 window: int = DEFAULT_WINDOW) -> None:
        self.pairing = Pairing(task, metrics, window)
        #: When the challenger's start version was written (epoch seconds): the champion's scores
        #: of the events after it were written after about then.
        self.since = since
        #: The first offset the challenger learns, per (source, partition): its start.
        self.floor = dict(floor)
        #: The next offset to read on the champion's scores topic (None: not read yet).
        self.scores_offset: int | None = None
        self.watermark: dict[_Stream, int] = {}
        self.unpaired = 0
        self._theirs, self._ours = _Side(), _Side()

    def champion(self, scored: Iterable[Scored]) -> None:
        """The champion's answers, as read from its scores topic."""
        self._add(scored, self._theirs, self._ours, theirs_first=True)

    def ours(self, scored: Iterable[Scored]) -> None:
        """The challenger's own answers, as it scores them."""
        self._add(scored, self._ours, self._theirs, theirs_first=False)
        while len(self._ours.waiting) > MAX_WAITING:
            self.unpaired += self._ours.drop_oldest()

    @property
    def champion_waiting(self) -> int:
        return len(self._theirs.waiting)

    def _add(self, scored: Iterable[Scored], side: _Side, other: _Side, theirs_first: bool) -> None:
        floor, watermark = self.floor, self.watermark
        for source, partition, offset, y, prediction, proba in scored:
            stream = (source, partition)
            key = (source, partition, offset)
            if offset < floor.get(stream, 0) or offset <= watermark.get(stream, -1) or key in side.waiting:
                continue  # before the start, already paired or passed, or sent again
            match = other.waiting.pop(key, None)
            if match is None:
                side.add(stream, offset, (y, prediction, proba))
                continue
            answer = (y, prediction, proba)
            ours, theirs = (match, answer) if theirs_first else (answer, match)
            self.pairing.add_one(ours, theirs)
            watermark[stream] = offset
            self.unpaired += side.drop_before(stream, offset) + other.drop_before(stream, offset)

    def report(self) -> dict[str, Any]:
        """The pairing's report (``paired_events``, ``champion``, ``metrics``, ``difference``), and what
        waits on each side and was left unpaired."""
        return self.pairing.report() | {"waiting": {"champion": len(self._theirs.waiting),
                                                    "challenger": len(self._ours.waiting)},
                                        "unpaired": self.unpaired}
