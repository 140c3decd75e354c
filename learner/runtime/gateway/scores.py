"""The champion's scores topic (README "Experiments"): what the champion scored, for its challengers to pair.

While a model has challengers, its gateway writes, per answered batch, one message to
``learner.<name>.scores`` (one partition): a JSON list of the events it scored, each as
``[source, partition, offset, label, prediction, probabilities]`` (source 0: the input topic, 1: the
labels topic, where the event was learned; probabilities as ``[[class, p], ...]`` so that classes
keep their JSON types). A challenger's gateway reads that topic into its
:class:`~learner.core.live_pairing.LivePairing`, from the offset its snapshot recorded, and stops
reading while too many of the champion's answers wait for its own (it is behind).

Nothing here is in the champion's way: writing is asynchronous, only while challengers exist, and
at-least-once like the predictions (a challenger ignores what it has already paired).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from confluent_kafka import KafkaException

from learner.connections import Connections
from learner.core.live_pairing import MAX_WAITING, LivePairing, Scored
from learner.core.predictions import plain, plain_proba
from learner.core.scorecard import Scorecard
from learner.errors import ProtocolError
from learner.settings import Settings
from learner.topics import TopicNames
from stream import AsyncProducer
from stream.errors import StreamError

__all__ = ["GatewayScores", "ScoreReader", "ScoreWriter", "decode_scored", "encode_scored"]

log = logging.getLogger(__name__)

#: Seconds a challenger looks back before its start version was written, for the champion's scores.
LOOK_BACK = 60.0
#: Scores messages read per poll, at most.
READ_BATCH = 50
#: Scored events per message, at most (well under the broker's message size with class probabilities).
PER_MESSAGE = 500


def _pairs(proba: Any) -> list[list[Any]] | None:
    return None if proba is None else [[label, p] for label, p in proba.items()]


def encode_scored(scored: list[Scored]) -> bytes:
    """A batch of scored events as one message.

    >>> encode_scored([(0, 2, 17, True, False, {False: 0.75, True: 0.25})])
    b'[[0,2,17,true,false,[[false,0.75],[true,0.25]]]]'
    """
    rows = [[s, p, o, y, prediction, _pairs(proba)] for s, p, o, y, prediction, proba in scored]
    try:
        return orjson.dumps(rows)
    except TypeError:  # NumPy scalars and the like: made plain only when the encoder refuses them
        return orjson.dumps([[s, p, o, plain(y), plain(pr), _pairs(plain_proba(pb))] for s, p, o, y, pr, pb in rows])


def decode_scored(raw: bytes) -> list[Scored]:
    """What :func:`encode_scored` wrote.

    >>> decode_scored(encode_scored([(1, 0, 5, 2.5, 2.0, None)]))
    [(1, 0, 5, 2.5, 2.0, None)]
    """
    try:
        return [(s, p, o, y, prediction, None if proba is None else {label: q for label, q in proba})
                for s, p, o, y, prediction, proba in orjson.loads(raw)]
    except (orjson.JSONDecodeError, TypeError, ValueError) as error:
        raise ProtocolError(f"a message on the scores topic is not a list of scored events: {error}") from None


class ScoreWriter:
    """The champion's side: what an answered batch scored, in messages of at most ``PER_MESSAGE`` events,
    while challengers exist. A scores topic that cannot be written turns the writing off (one line in
    the log): the champion's own work never fails for an experiment."""

    def __init__(self, producer: AsyncProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.on = False

    def write(self, scored: list[Scored]) -> None:
        for start in range(0, len(scored), PER_MESSAGE):
            value = encode_scored(scored[start:start + PER_MESSAGE])
            try:
                try:  # partition 0, the one challengers read, even on a topic the broker made with more
                    self.producer.produce_fast(self.topic, value, None, partition=0)
                except BufferError:  # the local queue is full: wait for the broker to drain it
                    self.producer.produce(self.topic, value, None, partition=0)
            except (KafkaException, StreamError) as error:
                log.error("cannot write %s (%s): the challengers' comparison stops here", self.topic, error)
                self.on = False
                return


class ScoreReader:
    """The challenger's side: reads the champion's scores into the pairing its scorecard holds."""

    def __init__(self, connections: Connections, topic: str) -> None:
        self.topic = topic
        self.consumer = connections.consumer([topic], on_assign=self._on_assign)
        self.reading: LivePairing | None = None  # the pairing the consumer is positioned for
        self.started = False

    def poll(self, pairing: LivePairing | None) -> None:
        """Read what is there (never waiting) into ``pairing``."""
        if pairing is None:
            return
        if pairing is not self.reading:  # the first poll, or a rollback brought back another scorecard
            self._position(pairing)
        if pairing is not self.reading or pairing.champion_waiting >= MAX_WAITING:
            return  # far ahead of this challenger: read on when it has caught up
        for message in self.consumer.consume(READ_BATCH, 0):
            pairing.champion(decode_scored(message.value() or b"[]"))
            pairing.scores_offset = (message.offset() or 0) + 1

    def _position(self, pairing: LivePairing) -> None:
        if pairing.scores_offset is None:  # the first start: from a little before the start version was written
            found = self.consumer.offset_for_time(self.topic, 0, int((pairing.since - LOOK_BACK) * 1000))
            pairing.scores_offset = found if found is not None else self.consumer.end_offset(self.topic, 0)
        if self.started:
            try:
                self.consumer.seek(self.topic, 0, pairing.scores_offset)
            except KafkaException as error:  # not fetching yet: the next poll tries again
                log.debug("cannot seek %s yet: %s", self.topic, error)
                return
            self.reading = pairing
        else:
            self.reading = pairing  # the assignment hook reads its offset
            self.consumer.start(join_group=False)
            self.started = True
        log.info("pairing with the champion from offset %d of %s", pairing.scores_offset, self.topic)

    def _on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        offset = self.reading.scores_offset if self.reading is not None else None
        return dict.fromkeys(partitions, offset)

    def close(self) -> None:
        self.consumer.close()


class GatewayScores:
    """The gateway's part in experiments: a champion's writer, a challenger's reader and its own answers."""

    def __init__(self, settings: Settings, connections: Connections, producer: AsyncProducer) -> None:
        self.topic = TopicNames(settings.name).scores
        self.writer = ScoreWriter(producer, self.topic)
        self.reader = ScoreReader(connections, self.topic) if settings.role == "challenger" else None
        #: The events scored in the batch being answered (only while they are wanted).
        self.scored: list[Scored] = []
        self.collecting = self.reader is not None

    def topics(self) -> dict[str, int]:
        """The topics this gateway needs before it starts (a challenger reads the scores topic)."""
        return {self.topic: 1} if self.reader is not None else {}

    def switch(self, on: bool) -> None:
        """The model process says whether the model has challengers (a champion's gateway); the topic
        exists by then: a challenger's gateway creates it before the challenger registers."""
        self.writer.on = on
        self.collecting = on or self.reader is not None

    def answered(self, card: Scorecard) -> None:
        """A batch is answered: its scored events go to the scores topic, or into the challenger's pairing."""
        scored, self.scored = self.scored, []
        if self.writer.on:
            self.writer.write(scored)
        if card.pairing is not None:
            card.pairing.ours(scored)

    def poll(self, card: Scorecard | None) -> None:
        if self.reader is not None and card is not None:
            self.reader.poll(card.pairing)

    def report(self, card: Scorecard) -> dict[str, Any] | None:
        return card.pairing.report() if card.pairing is not None else None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
