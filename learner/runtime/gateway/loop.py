"""The gateway: the process that moves bytes between Kafka and the model process.

River's predict and learn run in the model process, which holds the GIL for nearly all of its
time; everything else an event needs (consume, decode and validate, dead letters, encode, produce,
score the prediction, watch for drift) runs here, on the other core. A batch crosses as one JSON
array of the validated events, which the model decodes with one ``orjson.loads``: its key cache
hands River the same feature-name objects every event, which makes River's own dict lookups
measurably faster than with unpickled copies. A classifier answers with its probabilities alone;
the label (the most probable class) is taken here, off the model's core.

The messages are in :mod:`learner.runtime.gateway.protocol`. Three threads: the main loop (consume,
forward, publish, report), a reader that drains the pipe from the model process (so the model
never blocks on a send) and a writer that sends to it (a batch is larger than the pipe, and a
blocking write must not stop the main loop from publishing meanwhile).
"""

from __future__ import annotations

import copy
import logging
import queue
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Message

from learner.connections import Connections
from learner.core.drift import Detection
from learner.core.evaluation import RollingValue
from learner.core.models import ModelKind
from learner.core.positions import Position
from learner.core.predictions import label_of, plain, plain_proba
from learner.core.scorecard import Scorecard
from learner.errors import LearnerError, ProtocolError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.merged_input import MergedInput
from learner.runtime.gateway.prediction_sink import PredictionSink
from learner.runtime.roles import role_of
from learner.runtime.shared.pipes import Duplex
from learner.runtime.shared.process import die_with_parent, lower_priority, tune_for_streaming
from learner.settings import Settings
from stream import DeadLetters, InvalidEvent, decode_event, decode_label, encode_prediction
from stream.errors import StreamError

__all__ = ["Gateway", "GuardWatch", "gateway_main"]

log = logging.getLogger(__name__)

#: Batches sent to the model and not yet answered; enough to keep both cores busy.
MAX_IN_FLIGHT = 6
#: Seconds between metric reports to the model process.
METRICS_EVERY = 1.0
#: Labelled events between two guard checks: a dip of the rolling metric is shorter than a batch.
GUARD_EVERY = 100
#: Seconds between checks that the broker still answers (for /readyz).
BROKER_CHECK_EVERY = 5.0
#: Seconds the main loop waits for the model's answer while a batch is in flight and Kafka is quiet.
ANSWER_WAIT = 0.005


class GuardWatch:
    """The guarded metric's rolling value, kept current event by event while the guard is armed."""

    def __init__(self, armed: p.ArmedGuard, scorecard: Scorecard) -> None:
        self.armed = armed
        self.value = RollingValue(scorecard.evaluation, armed.rule.metric)
        self.countdown = GUARD_EVERY

    def update(self, y: Any, prediction: Any, proba: Any) -> float | None:
        """Score one labelled event; every GUARD_EVERY, the value when it crossed the margin."""
        self.value.update(y, prediction, proba)
        self.countdown -= 1
        if self.countdown:
            return None
        self.countdown = GUARD_EVERY
        rule, current = self.armed.rule, self.value.get()
        return current if rule.tripped_by({rule.metric: {rule.window: current}}, self.armed.reference) else None


class Gateway:
    """Kafka in, Kafka out, for one model process."""

    def __init__(self, settings: Settings, connections: Connections, conn: Duplex) -> None:
        self.settings = settings
        self.connections = connections
        self.channel = p.gateway_side(conn)
        self.inbox: queue.Queue[p.ToGateway] = queue.Queue()
        self.outbox: queue.Queue[p.ToModel | None] = queue.Queue()
        #: Per batch in flight: (message, id, label) of each event sent to the model (with a labels
        #: topic, of each event or label: the id is None for a label), and the events' features.
        self.pending: dict[int, tuple[list[tuple[Message, Any, Any]], list[dict[str, Any]]]] = {}
        self.seq = 0
        self.running = True
        self.reported = 0.0
        self.epoch = 0
        self.consumed = self.predicted = 0
        self.latencies: list[float] = []
        self.positions: dict[int, int] = {}
        self.drifts: list[Detection] = []
        self.guard: GuardWatch | None = None
        self.broker_ok, self.pinged = True, 0.0
        #: ``--role learn`` scores every prediction but publishes none (serve replicas do).
        self.publishing = role_of(settings).publishes
        self.start_position: Position = {}
        self.scorecard: Scorecard | None = None
        self.kind: ModelKind | None = None
        self.writer: threading.Thread | None = None
        self.flushing: int | None = None  # the barrier being served: messages after it wait in `held`
        self.held: deque[p.ToGateway] = deque()
        self.admin = connections.admin()
        self.producer = connections.producer()
        self.dead_letters = DeadLetters(self.producer, settings.dead_letter_topic)
        self.sink = PredictionSink(self.producer, settings.output_topic, settings.name)
        self.topics = [settings.input_topic, *([settings.labels_topic] if settings.labels_topic else [])]
        self.consumer = connections.consumer(self.topics, on_assign=self._on_assign)
        self.start_marks: dict[tuple[str, int], int] = {}
        #: With a labels topic: events and labels, merged in timestamp order.
        self.merged = MergedInput(settings, self.consumer) if settings.labels_topic else None

    def prepare_topics(self) -> None:
        """Wait for the broker (up to --startup-timeout); fail early and clearly on a missing input
        topic; create the output topics if needed."""
        settings = self.settings
        counts = self.connections.wait_for_kafka(self.admin, tuple(self.topics))
        partitions = counts[settings.input_topic]
        outputs = {settings.dead_letter_topic: partitions}
        if self.publishing:
            outputs[settings.output_topic] = partitions
        created = self.admin.ensure(outputs)
        for name in created:
            log.info("created topic %r with %d partitions", name, partitions)
        self.producer.ping()

    def run(self) -> None:
        """Serve the model process until it says stop (or goes away)."""
        start = self._wait_for_start()
        self.start_position, self.scorecard, self.kind = start.position, start.scorecard, start.kind
        self.start_marks = dict(start.marks)
        self.consumer.start(join_group=False)
        tune_for_streaming()
        threading.Thread(target=self._read_model, daemon=True, name="from-model").start()
        self.writer = threading.Thread(target=self._write_model, daemon=True, name="to-model")
        self.writer.start()
        while self.running:
            self._complete_flush()
            self._handle(block=len(self.pending) >= MAX_IN_FLIGHT and self.flushing is None)
            if self.running and len(self.pending) < MAX_IN_FLIGHT:
                messages = self.consumer.consume(self.settings.batch_size, 0 if self.pending else 0.05)
                if self.merged is not None:
                    released = self.merged.take(messages, self.settings.batch_size)
                    self.consumed += len(messages)
                    if released:
                        self._forward_items(released)
                    elif self.pending:
                        self._handle(block=True, timeout=ANSWER_WAIT)
                elif messages:
                    self._forward(messages)
                elif self.pending:
                    self._handle(block=True, timeout=ANSWER_WAIT)
            self.producer.poll()
            self.producer.check()
            self._report()
        self.outbox.put(None)
        self.consumer.close()
        self.producer.flush()

    def _wait_for_start(self) -> p.Start:
        message = self.channel.receive()
        match message:
            case p.Start():
                return message
            case p.Stop():
                raise EOFError("stopped before it started")
            case _:
                raise ProtocolError(f"the gateway expected Start from the model process, got {type(message).__name__}")

    def _read_model(self) -> None:
        """Drain the pipe continuously, so the model process never blocks on a send."""
        try:
            while True:
                self.inbox.put(self.channel.receive())
        except EOFError:
            self.inbox.put(p.Stop())
        except LearnerError as error:
            log.error("%s", error)
            self.inbox.put(p.Stop())

    def _write_model(self) -> None:
        """Send from a thread (see the module's docstring)."""
        try:
            while (message := self.outbox.get()) is not None:
                self.channel.send(message)
        except OSError:
            self.inbox.put(p.Stop())

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
            case p.Seek(epoch, position, scorecard, kind, marks):
                self._seek(epoch, position, scorecard, kind, marks)
            case p.Rescore(scorecard, kind):
                self._use(scorecard, kind)
            case p.Commit(position):
                self.consumer.commit(position)
            case p.ArmGuard(armed):
                self.guard = None if armed is None or self.scorecard is None else GuardWatch(armed, self.scorecard)
            case p.Stop():
                self.running = False
            case _:
                raise ProtocolError(f"the gateway does not handle {type(message).__name__}")

    def _forward(self, messages: list[Message]) -> None:
        """Decode a batch; send the good events to the model, the bad ones to the dead-letter topic."""
        self.consumed += len(messages)
        events: list[bytes] = []
        kept: list[tuple[Message, Any, Any]] = []
        features: list[dict[str, Any]] = []
        done: dict[Any, int] = {}
        max_bytes, dead = self.settings.max_event_bytes, self.dead_letters.send
        for message in messages:
            try:
                event = decode_event(message.value(), max_bytes)
            except InvalidEvent as error:
                dead(message, str(error))
            else:
                events.append(event.raw)
                kept.append((message, event.id, event.y))
                features.append(event.x)
            done[message.partition()] = message.offset()  # type: ignore[assignment]
        self.positions.update((partition, offset + 1) for partition, offset in done.items())
        self.seq += 1
        self.pending[self.seq] = (kept, features)
        topic = self.settings.input_topic
        self.outbox.put(p.Batch(self.seq, self.epoch, b"[" + b",".join(events) + b"]",
                                {(topic, partition): offset + 1 for partition, offset in done.items()}, len(messages)))

    def _forward_items(self, released: list[tuple[tuple[int, int, int, int], Message]]) -> None:
        """Events and labels in the merged order: decoded, bad ones dead-lettered, the rest to the model.

        Each item carries its merged timestamp ``t`` (the stream's clock for label expiry); an event
        its id ``k`` (given, or topic:partition:offset); a label its source ``s`` (partition, offset).
        """
        assert self.merged is not None
        items: list[bytes] = []
        kept: list[tuple[Message, Any, Any]] = []
        features: list[dict[str, Any]] = []
        done: dict[tuple[str, int], int] = {}
        max_bytes, dead, is_label = self.settings.max_event_bytes, self.dead_letters.send, self.merged.is_label
        for key, message in released:
            topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            done[(topic, partition)] = offset + 1
            try:
                if is_label(message):
                    label = decode_label(message.value(), max_bytes)
                    items.append(orjson.dumps({"t": key[0], "l": label.id, "y": label.y, "s": [partition, offset]}))
                    kept.append((message, None, label.y))
                    continue
                event = decode_event(message.value(), max_bytes)
            except InvalidEvent as error:
                dead(message, str(error))
                continue
            given = event.id if event.id is not None else f"{topic}:{partition}:{offset}"
            items.append(b'{"t":%d,"k":%s,' % (key[0], orjson.dumps(given)) + event.raw[1:])
            kept.append((message, event.id, event.y))
            features.append(event.x)
        input_topic = self.settings.input_topic
        self.positions.update((p, o) for (t, p), o in done.items() if t == input_topic)
        self.seq += 1
        self.pending[self.seq] = (kept, features)
        marks = self.merged.merge.marks()
        self.outbox.put(p.Batch(self.seq, self.epoch, b"[" + b",".join(items) + b"]", done, len(released),
                                {tp: marks[tp] for tp in done if tp in marks}))

    def _publish(self, results: p.Results) -> None:
        """Publish the predictions of one batch and score them: the model's answers, in order."""
        batch = self.pending.pop(results.seq, None)
        if batch is None:
            return  # a batch dropped by a seek
        kept, features = batch
        if self.merged is not None:
            self._publish_items(results, kept, features)
            return
        assert self.scorecard is not None and self.kind is not None
        produce, out_topic = self.producer.produce_fast, self.settings.output_topic
        dead, guard = self.dead_letters.send, self.guard
        # the scorecard's two per-event updates, bound once (Scorecard.score does the same, per call)
        update, drift, label = self.scorecard.evaluation.update, self.scorecard.performance.update, label_of
        name, version, ts = self.settings.name, results.version, time.time()
        # the rule of ModelKind.learns, per event: labelled events, and every event for some detectors
        learned, learning, learns_unlabelled = results.learned, results.learning, self.kind.learns_unlabelled
        publishing = self.publishing
        for (message, given_id, y), result in zip(kept, results.outcomes, strict=True):
            kind = type(result)
            if kind is tuple:
                prediction, proba = result
            elif kind is str:
                dead(message, result)
                continue
            else:  # a classifier's probabilities (a dict, a Counter): its label is the most probable class
                proba, prediction = result, label(result)
            if publishing:
                event_id = given_id if given_id is not None else f"{message.topic()}:{message.partition()}:{message.offset()}"
                try:
                    value = encode_prediction(event_id, prediction, proba, name, version, learned, ts)
                except TypeError:  # NumPy scalars and the like: made plain only when the encoder refuses them
                    prediction, proba = plain(prediction), plain_proba(proba)
                    value = encode_prediction(event_id, prediction, proba, name, version, learned, ts)
                try:
                    produce(out_topic, value, message.key())
                except BufferError:
                    self.producer.produce(out_topic, value, message.key())
            if y is not None:
                update(y, prediction, proba)
                if drifted := drift(y, prediction):
                    self.drifts.append(drifted)
                if guard is not None and (current := guard.update(y, prediction, proba)) is not None:
                    self.guard = guard = None  # one report; the model process re-arms when learning resumes
                    self.outbox.put(p.GuardTripped(current))
                learned += learning
            elif learns_unlabelled:
                learned += learning
        self.drifts += self.scorecard.observe_batch(features)
        self.predicted += len(kept)
        if kept:
            self._sample_latency(kept[-1][0], ts)

    def _publish_items(self, results: p.Results, kept: list[tuple[Message, Any, Any]],
                       features: list[dict[str, Any]]) -> None:
        """:meth:`_publish` with a labels topic: predictions for the events, dead letters for the labels
        that are lost, and each join scored where it happened (the prediction made at the time)."""
        assert self.scorecard is not None and self.kind is not None and self.merged is not None
        update, drift = self.scorecard.evaluation.update, self.scorecard.performance.update
        version, ts = results.version, time.time()
        learned, learning, learns_unlabelled = results.learned, results.learning, self.kind.learns_unlabelled
        joins = iter(results.joins)
        upcoming = next(joins, None)
        predicted = 0
        for index, ((message, given_id, y), result) in enumerate(zip(kept, results.outcomes, strict=True)):
            if self.merged.is_label(message):
                if result is not None:  # lost: (kind, reason)
                    self.dead_letters.send(message, str(result[1]))
            elif type(result) is str:
                self.dead_letters.send(message, result)
            else:
                prediction, proba = result if type(result) is tuple else (label_of(result), result)
                if self.publishing:
                    self.sink.send(message, given_id, prediction, proba, version, learned, ts)
                predicted += 1
                if y is not None:
                    update(y, prediction, proba)
                    if drifted := drift(y, prediction):
                        self.drifts.append(drifted)
                    learned += learning
                elif learns_unlabelled:
                    learned += learning
            while upcoming is not None and upcoming[0] == index:  # labels learned at this item
                _, outcome, label, _ = upcoming
                prediction, proba = outcome if type(outcome) is tuple else (label_of(outcome), outcome)
                update(label, prediction, proba)
                if drifted := drift(label, prediction):
                    self.drifts.append(drifted)
                if learning and not learns_unlabelled:
                    learned += 1
                upcoming = next(joins, None)
        for lost in results.lost:  # early labels whose event never came
            partition, offset = lost.source or (None, None)
            self.dead_letters.send_value(orjson.dumps({"id": lost.id, "y": lost.y}), None, lost.reason,
                                         self.merged.labels_topic, partition, offset)
        self.drifts += self.scorecard.observe_batch(features)
        self.predicted += predicted
        if kept:
            self._sample_latency(kept[-1][0], ts)

    def _complete_flush(self) -> None:
        """Once every prediction produced before the barrier is acknowledged (however long the broker
        is away), hand over the scorecard of exactly those events.

        A copy, taken now: the writer thread pickles it later, while this loop scores on, and the
        snapshot must not count events that come after its offsets.
        """
        if self.flushing is None:
            return
        if self.producer.outstanding():
            self.producer.wait(0.005)
            return
        token, self.flushing = self.flushing, None
        self.outbox.put(p.Flushed(token, copy.deepcopy(self.scorecard)))  # type: ignore[arg-type]

    def _seek(self, epoch: int, position: Position, scorecard: Scorecard, kind: ModelKind,
              marks: dict[tuple[str, int], int]) -> None:
        """Reposition (a rollback with replay): unanswered batches are dropped, the model drops them too."""
        self.pending.clear()
        self.epoch = epoch
        self._use(scorecard, kind)
        if self.merged is not None:
            self.merged.clear(marks)
        for topic, partition in sorted(self.consumer.assigned):  # partitions it never saw: from the start
            self.consumer.seek(topic, partition, position.get((topic, partition), OFFSET_BEGINNING))

    def _use(self, scorecard: Scorecard, kind: ModelKind) -> None:
        """Score from this scorecard on (a rollback); the guard is re-armed by the model process."""
        self.scorecard, self.kind, self.guard = scorecard, kind, None

    def _sample_latency(self, message: Message, now: float) -> None:
        """One latency sample per batch: its last event, from its Kafka timestamp to now."""
        kind, stamp = message.timestamp()
        if kind and stamp > 0 and len(self.latencies) < 1000:
            self.latencies.append(max(0.0, now - stamp / 1000))

    def _report(self) -> None:
        now = time.monotonic()
        if now - self.reported < METRICS_EVERY or self.scorecard is None:
            return
        self.reported = now
        if now - self.pinged >= BROKER_CHECK_EVERY:
            self.pinged = now
            answers = self._broker_answers()
            if answers != self.broker_ok:
                log.warning("Kafka at %s %s", self.connections.describe_kafka(),
                            "answers again" if answers else "does not answer: nothing is lost; outputs wait in the "
                            "producer's queue and are retried, and the stream resumes when it is back")
            self.broker_ok = answers
        topic, lag = self.settings.input_topic, {}
        for partition, position in self.positions.items():
            high = self.consumer.high_watermark(topic, partition)
            if high is not None:
                lag[str(partition)] = max(0, high - position)
        self.outbox.put(p.Report(self.scorecard.evaluation.values(), self.consumed, self.predicted,
                                 self.dead_letters.count, self.latencies, lag, len(self.consumer.assigned),
                                 self.broker_ok, self.drifts, self.merged.merge.late if self.merged else 0))
        self.latencies, self.drifts = [], []

    def _broker_answers(self) -> bool:
        try:
            self.producer.ping(timeout=2.0)
        except StreamError:
            return False
        return True

    def _on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """Start each partition at the snapshot's offset; partitions it never saw, from the beginning."""
        if self.merged is not None:
            self.merged.assign(partitions, self.start_marks)
        return {tp: self.start_position.get(tp, OFFSET_BEGINNING) for tp in partitions}


def gateway_main(settings: Settings, conn: Duplex) -> None:
    """Entry point of the gateway process: report any failure to the model process as one line."""
    die_with_parent()
    lower_priority(settings.gateway_priority)
    sys.setswitchinterval(0.0005)  # the pipe threads must get the GIL back quickly from the main loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the model process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gateway: Gateway | None = None
    try:
        gateway = Gateway(settings, Connections(settings), conn)
        gateway.prepare_topics()
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
    if gateway is not None and gateway.writer is not None and gateway.writer.is_alive():
        gateway.outbox.put(p.Failure(text))
        gateway.outbox.put(None)
        gateway.writer.join(10)
        return
    try:
        p.gateway_side(conn).send(p.Failure(text))
    except OSError:
        pass
