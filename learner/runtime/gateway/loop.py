"""The gateway: the process that moves bytes between Kafka and the model process.

River's predict and learn run in the model process, which holds the GIL for nearly all of its
time; everything else an event needs (consume, decode and validate, dead letters, encode, produce,
score the prediction, watch for drift) runs here, on the other core. A batch crosses as one JSON
array of the validated events, which the model decodes with one ``orjson.loads``: its key cache
hands River the same feature-name objects every event, which makes River's own dict lookups
measurably faster than with unpickled copies. A classifier answers with its probabilities alone;
the label (the most probable class) is taken here, off the model's core.

It keeps its loop and threads only: reading a batch is :mod:`learner.runtime.shared.intake`'s,
publishing :mod:`learner.runtime.shared.publish`'s, scoring :mod:`learner.core.scoring`'s (pure).
The messages are in :mod:`learner.runtime.gateway.protocol`. Three threads: the main loop (consume,
forward, publish, report), and the two of :mod:`learner.runtime.gateway.model_pipe`: a reader that
drains the pipe from the model process (so the model never blocks on a send) and a writer that
sends to it (a batch is larger than the pipe, and a blocking write must not stop the main loop
from publishing meanwhile).
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import time
from collections import deque
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message

from learner.connections import Connections
from learner.core.evaluation import Scored
from learner.core.models import ModelKind
from learner.core.positions import Position
from learner.core.predictions import label_of
from learner.core.scorecard import Scorecard
from learner.core.scoring import Scoring
from learner.errors import LearnerError, ProtocolError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.batch_sizer import BatchSizer
from learner.runtime.gateway.merged_input import MergedInput
from learner.runtime.gateway.model_pipe import ModelPipe
from learner.runtime.gateway.scores import GatewayScores
from learner.runtime.roles import role_of
from learner.runtime.shared.broker_watch import BrokerWatch, lag
from learner.runtime.shared.intake import LABEL, Intake, Reader
from learner.runtime.shared.pipes import Duplex
from learner.runtime.shared.process import die_with_parent, lower_priority, tune_for_streaming
from learner.runtime.shared.publish import Publisher
from learner.runtime.shared.stall import Stall
from learner.settings import Settings
from stream.errors import StreamError
from stream.fetch_watch import FetchWatch
from stream.merge import Key

__all__ = ["Gateway", "gateway_main"]

log = logging.getLogger(__name__)

#: Batches sent to the model and not yet answered; enough to keep both cores busy.
MAX_IN_FLIGHT = 6
#: Seconds between metric reports to the model process.
METRICS_EVERY = 1.0
#: Seconds the main loop waits for the model's answer while a batch is in flight and Kafka is quiet.
ANSWER_WAIT = 0.005


class Gateway:
    """Kafka in, Kafka out, for one model process."""

    def __init__(self, settings: Settings, connections: Connections, conn: Duplex) -> None:
        self.settings = settings
        self.connections = connections
        self.pipe = ModelPipe(p.gateway_side(conn))
        self.channel, self.inbox, self.outbox = self.pipe.channel, self.pipe.inbox, self.pipe.outbox
        #: The batches in flight, by their number: their answers are matched with what was kept of them.
        self.pending: dict[int, Intake] = {}
        self.sizer = BatchSizer(settings.batch_size)  # batches of a few tens of ms of model work
        self.seq = 0
        self.running = True
        self.reported = 0.0
        self.epoch = 0
        self.consumed = self.predicted = 0
        self.latencies: list[float] = []
        self.positions: Position = {}  # of the input topic's partitions, for the lag
        #: ``--role learn`` scores every prediction but publishes none (serve replicas do).
        self.publishing = role_of(settings).publishes
        self.start_position: Position = {}
        self.scoring: Scoring | None = None
        self.flushing: int | None = None  # the barrier being served: messages after it wait in `held`
        self.held: deque[p.ToGateway] = deque()
        self.flush_stall = Stall()  # outputs the broker never acknowledges: say so
        self.admin = connections.admin()
        self.producer = connections.producer()
        self.publisher = Publisher(self.producer, settings.output_topic, settings.dead_letter_topic, settings.name,
                                   dead_letters=role_of(settings).dead_letters)
        self.reader = Reader(settings.max_event_bytes, self.publisher.dead, settings.labels_topic)
        self.scores = GatewayScores(settings, connections, self.producer)  # README "Experiments"
        self.broker = BrokerWatch(self.producer, connections.describe_kafka(), "nothing is lost; outputs wait in the "
                                  "producer's queue and are retried, and the stream resumes when it is back")
        self.topics = [settings.input_topic, *([settings.labels_topic] if settings.labels_topic else [])]
        self.consumer = connections.consumer(self.topics, on_assign=self._on_assign)
        self.fetching = FetchWatch(self.consumer)  # librdkafka can stop fetching after an outage
        self.start_marks: dict[tuple[str, int], int] = {}
        #: With a labels topic: events and labels, merged in timestamp order.
        self.merged = MergedInput(settings, self.consumer) if settings.labels_topic else None

    def run(self) -> None:
        """Serve the model process until it says stop (or goes away)."""
        start = wait_for_start(self.channel)
        self.start_position, self.scoring = start.position, Scoring(start.scorecard, start.kind)
        self.start_marks = dict(start.marks)
        if self.merged is not None:
            self.merged.merge.decided(start.decided)
        self.consumer.start(join_group=False)
        tune_for_streaming()
        self.pipe.start()
        while self.running:
            self._complete_flush()
            self._handle(block=len(self.pending) >= MAX_IN_FLIGHT and self.flushing is None)
            if self.running and len(self.pending) < MAX_IN_FLIGHT:
                wait = 0 if self.pending else self.merged.wait(0.05) if self.merged is not None else 0.05
                messages = self.consumer.consume(self.sizer.size, wait)
                self.consumed += len(messages)
                if self.merged is not None:
                    if released := self.merged.take(messages, self.sizer.size):
                        self._forward(self.reader.merged(released))
                    elif self.pending:
                        self._handle(block=True, timeout=ANSWER_WAIT)
                elif messages:
                    self._forward(self.reader.events(messages, self.settings.input_topic))
                elif self.pending:
                    self._handle(block=True, timeout=ANSWER_WAIT)
            self.publisher.check()
            self.scores.poll(self.scoring.card if self.scoring else None)
            self._report()
        self.outbox.put(None)
        self.consumer.close()
        self.scores.close()
        self.producer.flush()

    def _handle(self, block: bool, timeout: float = 0.5) -> None:
        """Act on everything the model process has sent so far (what came after a barrier that is
        still being served waits for it, but a stop is never kept waiting)."""
        while self.held and self.flushing is None:
            self._dispatch(self.held.popleft())
        try:
            message = self.inbox.get(timeout=timeout) if block else self.inbox.get_nowait()
            while True:
                if self.flushing is not None and not isinstance(message, p.Stop):
                    self.held.append(message)
                else:
                    self._dispatch(message)
                message = self.inbox.get_nowait()
        except queue.Empty:
            return

    def _dispatch(self, message: p.ToGateway) -> None:
        match message:
            case p.Results():
                self._publish(message)
            case p.Flush(token):
                self.flushing = token
                self.flush_stall.begin()
            case p.Seek(epoch, position, scorecard, kind, marks, decided):
                self._seek(epoch, position, scorecard, kind, marks, decided)
            case p.Rescore(scorecard, kind):
                self._rescore(scorecard, kind)
            case p.Commit(position):
                self.consumer.commit(position)
            case p.ArmGuard(armed):
                if self.scoring is not None:
                    self.scoring.arm(armed)
            case p.WriteScores(on):
                self.scores.switch(on)
            case p.Stop():
                self.running = False
            case _:
                raise ProtocolError(f"the gateway does not handle {type(message).__name__}")

    def _forward(self, intake: Intake) -> None:
        """Send a decoded batch to the model and keep it until its answers come back."""
        input_topic = self.settings.input_topic
        self.positions.update((tp, offset) for tp, offset in intake.done.items() if tp[0] == input_topic)
        self.seq += 1
        self.pending[self.seq] = intake
        marks: dict[tuple[str, int], int] = {}
        late: list[tuple[tuple[str, int, int], Key]] = []
        if self.merged is not None:
            merged = self.merged.merge.marks()
            marks = {tp: merged[tp] for tp in intake.done if tp in merged}
            late = self.merged.merge.decisions()
        self.outbox.put(p.Batch(self.seq, self.epoch, intake.payload(), intake.done, intake.count, marks, late))

    def _publish(self, results: p.Results) -> None:
        """Publish and score the answers to one batch, in order: a prediction per event, a dead letter
        per event the model refused and per label lost, and each join of a label scored where it
        happened (with the prediction made at the time). The service's hottest loop: locals bound once."""
        intake = self.pending.pop(results.seq, None)
        if intake is None:
            return  # a batch dropped by a seek
        self.sizer.answered(len(results.outcomes), results.seconds)
        scoring, publisher = self.scoring, self.publisher
        assert scoring is not None
        send = publisher.prediction if self.publishing else None
        dead, label, learns_unlabelled = publisher.dead, label_of, scoring.learns_unlabelled
        scored: list[tuple[Any, Any, Any]] = []  # scored as a batch once published: see Scoring.score
        score = scored.append
        keep, input_topic = self.scores.scored.append if self.scores.collecting else None, self.settings.input_topic
        version, ts, learned, learning = results.version, time.time(), results.learned, results.learning
        joins = iter(results.joins)
        upcoming = next(joins, None)
        predicted = 0
        for index, ((message, given_id, y), result) in enumerate(zip(intake.kept, results.outcomes, strict=True)):
            if given_id is LABEL:
                if result is not None:  # lost: (kind, reason)
                    dead(message, str(result[1]), f"label_{result[0]}")
            elif isinstance(result, str):
                dead(message, result, "rejected")
            else:  # a classifier's probabilities alone (a dict, a Counter): its label is the most probable class
                prediction, proba = result if isinstance(result, tuple) else (label(result), result)
                if send is not None:
                    send(message, given_id, prediction, proba, version, learned, ts)
                predicted += 1
                if y is not None:
                    score((y, prediction, proba))
                    if keep is not None:  # with challengers: keyed by where it was learned
                        keep((0, message.partition(), message.offset(), y, prediction, proba))
                    learned += learning
                elif learns_unlabelled:
                    learned += learning
            while upcoming is not None and upcoming[0] == index:  # labels learned at this item
                _, outcome, answer, _ = upcoming
                prediction, proba = outcome if isinstance(outcome, tuple) else (label(outcome), outcome)
                score((answer, prediction, proba))
                if keep is not None:
                    at = intake.kept[index][0]
                    keep((int(at.topic() != input_topic), at.partition(), at.offset(), answer, prediction, proba))
                if learning and not learns_unlabelled:
                    learned += 1
                upcoming = next(joins, None)
        if self.merged is not None:
            for lost in results.lost:  # early labels whose event never came
                publisher.lost_label(lost, self.merged.labels_topic)
        self._score(scoring, scored, intake, challengers=keep is not None)
        self.predicted += predicted
        if intake.kept and len(self.latencies) < 1000 and (latency := latency_of(intake.kept[-1][0], ts)) is not None:
            self.latencies.append(latency)  # one sample per batch: its last event

    def _score(self, scoring: Scoring, scored: list[Scored], intake: Intake, challengers: bool) -> None:
        """Score a published batch: its labelled predictions, then its features for input drift."""
        if (tripped := scoring.score(scored)) is not None:
            self.outbox.put(p.GuardTripped(tripped))  # once; re-armed when learning resumes
        scoring.observe(intake.features)
        if challengers:
            self.scores.answered(scoring.card)

    def _complete_flush(self) -> None:
        """Once every prediction produced before the barrier is acknowledged (however long the broker
        is away), hand over the scorecard of exactly those events.

        A copy, taken now: the writer thread pickles it later, while this loop scores on, and the
        snapshot must not count events that come after its offsets.
        """
        if self.flushing is None:
            return
        if outstanding := self.publisher.outstanding():
            self.producer.wait(0.005)
            if (lasted := self.flush_stall.due()) is not None:
                log.warning("a snapshot has waited %.0fs for Kafka to acknowledge %d predictions and dead letters "
                            "published before it (Kafka at %s)", lasted, outstanding, self.broker.where)
            return
        self.flush_stall.end()
        assert self.scoring is not None
        token, self.flushing = self.flushing, None
        self.outbox.put(p.Flushed(token, self.scoring.copy_card()))

    def _seek(self, epoch: int, position: Position, scorecard: Scorecard, kind: ModelKind,
              marks: dict[tuple[str, int], int], decided: p.Decisions) -> None:
        """Reposition (a rollback with replay): unanswered batches are dropped, the model drops them too."""
        self.pending.clear()
        self.epoch = epoch
        self._rescore(scorecard, kind)
        if self.merged is not None:
            self.merged.clear(marks, position)
            self.merged.merge.decided(decided)
        for topic, partition in sorted(self.consumer.assigned):  # partitions it never saw: from the start
            self.consumer.seek(topic, partition, position.get((topic, partition), OFFSET_BEGINNING))

    def _rescore(self, scorecard: Scorecard, kind: ModelKind) -> None:
        """Score from this scorecard on (a rollback); the guard is re-armed by the model process."""
        if self.scoring is None:
            self.scoring = Scoring(scorecard, kind)
        else:
            self.scoring.use(scorecard, kind)

    def _report(self) -> None:
        now = time.monotonic()
        if now - self.reported < METRICS_EVERY or self.scoring is None:
            return
        self.reported = now
        self.fetching.check(now, self.consumed, bool(self.pending), broker_answers := self.broker.check(now))
        self.outbox.put(p.Report(self.scoring.card.evaluation.values(), self.consumed, self.predicted,
                                 self.publisher.dead_lettered, self.latencies, lag(self.consumer, self.positions),
                                 len(self.consumer.assigned), broker_answers, self.scoring.take_drifts(),
                                 self.merged.merge.late if self.merged else 0, self.scores.report(self.scoring.card),
                                 self.publisher.dead_letter_kinds))
        self.latencies = []

    def _on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """Start each partition at the snapshot's offset; partitions it never saw, from the beginning."""
        if self.merged is not None:
            self.merged.assign(partitions, self.start_marks, self.start_position)
        return {tp: self.start_position.get(tp, OFFSET_BEGINNING) for tp in partitions}


def wait_for_start(channel: p.Channel) -> p.Start:
    """The model process's Start (it has restored its state and holds the lease)."""
    message = channel.receive()
    match message:
        case p.Start():
            return message
        case p.Stop():
            raise EOFError("stopped before it started")
        case _:
            raise ProtocolError(f"the gateway expected Start from the model process, got {type(message).__name__}")


def latency_of(message: Message, now: float) -> float | None:
    """Seconds from a message's Kafka timestamp to ``now`` (None: it has no timestamp)."""
    kind, stamp = message.timestamp()
    return max(0.0, now - stamp / 1000) if kind and stamp > 0 else None


def prepare_topics(gateway: Gateway) -> None:
    """Wait for the broker (up to --startup-timeout); fail early and clearly on a missing input
    topic; create the output topics if needed."""
    settings = gateway.settings
    partitions = gateway.connections.wait_for_kafka(gateway.admin, tuple(gateway.topics))[settings.input_topic]
    outputs = {settings.dead_letter_topic: partitions} if gateway.publisher.writes_dead_letters else {}
    outputs |= gateway.scores.topics()
    if gateway.publishing:
        outputs[settings.output_topic] = partitions
    for name in gateway.admin.ensure(outputs):
        log.info("created topic %r with %d partitions", name, partitions)
    gateway.producer.ping()


def gateway_main(settings: Settings, conn: Duplex) -> None:
    """Entry point of the gateway process: report any failure to the model process as one line."""
    die_with_parent()
    lower_priority(role_of(settings).gateway_priority(settings))
    sys.setswitchinterval(0.0005)  # the pipe threads must get the GIL back quickly from the main loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the model process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gateway: Gateway | None = None
    try:
        gateway = Gateway(settings, Connections(settings), conn)
        prepare_topics(gateway)
        gateway.channel.send(p.GatewayReady())
        gateway.run()
    except EOFError:
        return  # the model process went away first: nothing to report to
    except (StreamError, LearnerError) as error:
        _report(conn, gateway, str(error))
    except Exception as error:  # whatever it is, the model process must hear of it
        log.exception("gateway failed")
        _report(conn, gateway, f"gateway failed: {type(error).__name__}: {error}")


def _report(conn: Duplex, gateway: Gateway | None, text: str) -> None:
    """Tell the model process; through the writer thread when it runs, so frames never interleave."""
    if gateway is not None and gateway.pipe.writing:
        gateway.outbox.put(p.Failure(text))
        gateway.outbox.put(None)
        assert gateway.pipe.writer is not None
        gateway.pipe.writer.join(10)
        return
    try:
        p.gateway_side(conn).send(p.Failure(text))
    except OSError:
        pass
