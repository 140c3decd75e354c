"""The gateway: the process that moves bytes between Kafka and the model process.

River's predict and learn run in the model process, which holds the GIL for nearly all of its
time; everything else an event needs (consume, decode and validate, dead letters, encode, produce,
score the prediction) runs here, on the other core. A batch crosses as one JSON array of the
validated events, which the model decodes with one ``orjson.loads``: its key cache hands River the
same feature-name objects every event, which makes River's own dict lookups measurably faster than
with unpickled copies. A classifier answers with its probabilities alone; the label (the most
probable class) is taken here, off the model's core.
The two exchange batches over a pipe:

    gateway ── ("batch", seq, epoch, b"[validated event, ...]", {partition: next offset}, count) ──► model
    gateway ◄── ("results", seq, learned, version, learning, [proba | (prediction, proba) | reason]) ── model
    gateway ◄── ("flush", token) ── model   then   ("flushed", token, evaluation) ──► model
    gateway ◄── ("seek", epoch, offsets, evaluation) / ("evaluation", evaluation) / ("commit", offsets) / ("stop",) ── model
    gateway ◄── ("guard", (rule, reference, version) | None) ── model; ("guard_tripped", value) ──► model
    gateway ── ("metrics", {evaluation, counts, latencies, lag, ...}) ──► model, every second

``flush`` is the snapshot barrier: when the model asks, every result it has sent is encoded,
produced and acknowledged by the broker, and the evaluation covers exactly those events.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message

from learner.core.drift import Detection, InputDrift, PerformanceDrift
from learner.core.evaluation import Evaluation, RollingValue
from learner.core.guard import Guard
from learner.runtime.gc_tuning import tune_for_streaming
from learner.runtime.pipes import Duplex
from learner.settings import Settings
from stream import AsyncProducer, BatchConsumer, DeadLetters, InvalidEvent, decode_event, encode_prediction
from stream.admin import ensure_topics, topic_partitions
from stream.errors import StreamError, TopicMissing

log = logging.getLogger(__name__)

#: Batches sent to the model and not yet answered; enough to keep both cores busy.
MAX_IN_FLIGHT = 6
#: Seconds between metric reports to the model process.
METRICS_EVERY = 1.0
#: Labelled events between two guard checks: a dip of the rolling metric is shorter than a batch.
GUARD_EVERY = 100
#: Seconds between checks that the broker still answers (for /readyz).
BROKER_CHECK_EVERY = 5.0


def send(conn: Duplex, message: tuple[Any, ...]) -> None:
    """Send one protocol message (pickled once, with the fastest protocol)."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Duplex) -> tuple[Any, ...]:
    message: tuple[Any, ...] = pickle.loads(conn.recv_bytes())
    return message


class Gateway:
    """Kafka in, Kafka out, for one model process."""

    def __init__(self, settings: Settings, conn: Duplex) -> None:
        self.settings = settings
        self.conn = conn
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.outbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self.pending: dict[int, list[tuple[Message, Any, Any]]] = {}
        self.seq = 0
        self.running = True
        self.reported = 0.0
        self.epoch = 0
        self.counts = {"consumed": 0, "predicted": 0}
        self.latencies: list[float] = []
        self.positions: dict[int, int] = {}
        self.drifts: list[Detection] = []
        self.guard: tuple[Guard, float, int] | None = None
        self.watched: RollingValue | None = None
        self.countdown = GUARD_EVERY
        self.broker_ok, self.pinged = True, 0.0
        self.start_offsets: dict[tuple[str, int], int] = {}
        kafka = {"bootstrap.servers": settings.bootstrap_servers, "client.id": f"learner-{settings.name}"}
        self.producer = AsyncProducer(kafka)
        self.dead_letters = DeadLetters(self.producer, settings.dead_letter_topic)
        self.consumer = BatchConsumer({**kafka, "group.id": settings.consumer_group,
                                       "session.timeout.ms": settings.session_timeout_ms},
                                      [settings.input_topic], on_assign=self._on_assign)

    def prepare_topics(self) -> None:
        """Fail early and clearly on a missing input topic; create the output topics if needed."""
        settings = self.settings
        partitions = topic_partitions(settings.bootstrap_servers).get(settings.input_topic)
        if partitions is None:
            raise TopicMissing(f"input topic {settings.input_topic!r} does not exist on {settings.bootstrap_servers}")
        for name in ensure_topics(settings.bootstrap_servers,
                                  {settings.output_topic: partitions, settings.dead_letter_topic: partitions}):
            log.info("created topic %r with %d partitions", name, partitions)
        self.producer.ping()

    def run(self) -> None:
        """Serve the model process until it says stop (or goes away)."""
        _, offsets, evaluation, task = self._wait_for("start")
        self.start_offsets, self.evaluation, self.task = offsets, evaluation, task
        self.performance = PerformanceDrift(task)
        self.inputs = InputDrift(self.settings.drift_window) if self.settings.drift_window else None
        self.consumer.start(join_group=False)
        tune_for_streaming()
        threading.Thread(target=self._read_model, daemon=True, name="from-model").start()
        self.writer = threading.Thread(target=self._write_model, daemon=True, name="to-model")
        self.writer.start()
        while self.running:
            self._handle(block=len(self.pending) >= MAX_IN_FLIGHT)
            if self.running and len(self.pending) < MAX_IN_FLIGHT:
                self._forward(self.consumer.consume(self.settings.batch_size, 0.05))
            self.producer.poll()
            self.producer.check()
            self._report_metrics()
        self.outbox.put(None)
        self.consumer.close()
        self.producer.flush()

    def _wait_for(self, kind: str) -> tuple[Any, ...]:
        message = receive(self.conn)
        if message[0] != kind:
            raise StreamError(f"gateway expected {kind!r} from the model process, got {message[0]!r}")
        return message

    def _read_model(self) -> None:
        """Drain the pipe continuously, so the model process never blocks on a send."""
        try:
            while True:
                self.inbox.put(receive(self.conn))
        except (EOFError, OSError):
            self.inbox.put(("stop",))

    def _write_model(self) -> None:
        """Send from a thread: a batch is larger than the pipe, and the model reads it only between
        batches, so a blocking write here must not stop the main loop from publishing meanwhile."""
        try:
            while (message := self.outbox.get()) is not None:
                send(self.conn, message)
        except OSError:
            self.inbox.put(("stop",))

    def _handle(self, block: bool) -> None:
        """Act on everything the model process has sent so far."""
        try:
            message = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
            while True:
                getattr(self, "_on_" + message[0])(*message[1:])
                message = self.inbox.get_nowait()
        except queue.Empty:
            return

    def _forward(self, messages: list[Message]) -> None:
        """Decode a batch; send the good events to the model, the bad ones to the dead-letter topic."""
        if not messages:
            return
        self.counts["consumed"] += len(messages)
        events, kept, done = [], [], {}
        max_bytes, dead = self.settings.max_event_bytes, self.dead_letters.send
        for message in messages:
            try:
                event = decode_event(message.value(), max_bytes)
            except InvalidEvent as error:
                dead(message, str(error))
            else:
                events.append(event.raw)
                kept.append((message, event.id, event.y))
                if self.inputs is not None and (found := self.inputs.update(event.x)):
                    self.drifts += found
            done[message.partition()] = message.offset()
        self.positions.update((p, o + 1) for p, o in done.items())
        self.seq += 1
        self.pending[self.seq] = kept
        topic, batch = self.settings.input_topic, b"[" + b",".join(events) + b"]"
        self.outbox.put(("batch", self.seq, self.epoch, batch, {(topic, p): o + 1 for p, o in done.items()}, len(messages)))

    def _on_results(self, seq: int, learned: int, version: int, learning: bool, results: list[Any]) -> None:
        """Publish the predictions of one batch and score them: the model's answers, in order."""
        kept = self.pending.pop(seq)
        produce, out_topic = self.producer.produce_fast, self.settings.output_topic
        update, dead, drift = self.evaluation.update, self.dead_letters.send, self.performance.update
        name, ts, learns_unlabelled = self.settings.name, time.time(), self.task == "anomaly"
        for (message, event_id, y), result in zip(kept, results):
            kind = type(result)
            if kind is dict:  # a classifier's probabilities: its label is the most probable class
                proba, prediction = result, max(result, key=result.get) if result else None
            elif kind is str:
                dead(message, result)
                continue
            else:
                prediction, proba = result
            if event_id is None:
                event_id = f"{message.topic()}:{message.partition()}:{message.offset()}"
            value = encode_prediction(event_id, prediction, proba, name, version, learned, ts)
            try:
                produce(out_topic, value, message.key())
            except BufferError:
                self.producer.produce(out_topic, value, message.key())
            if y is not None:
                update(y, prediction, proba)
                learned += learning
                if drifted := drift(y, prediction):
                    self.drifts.append(drifted)
                if self.watched is not None:
                    self._watch(y, prediction, proba)
            elif learns_unlabelled:
                learned += learning
        self.counts["predicted"] += len(kept)
        if kept:
            self._sample_latency(kept[-1][0], ts)

    def _on_guard(self, armed: tuple[Guard, float, int] | None) -> None:
        """Arm (rule, reference value, pinned version) or disarm the guard."""
        self.guard = armed
        self._follow_guarded_metric()

    def _follow_guarded_metric(self) -> None:
        """Keep the guarded metric's rolling value current, from the evaluation now in use."""
        self.watched = None if self.guard is None else RollingValue(self.evaluation, self.guard[0].metric)
        self.countdown = GUARD_EVERY

    def _watch(self, y: Any, prediction: Any, proba: dict[Any, float] | None) -> None:
        """Score one labelled event for the guard; every GUARD_EVERY, compare with the reference."""
        watched = self.watched
        watched.update(y, prediction, proba)  # type: ignore[union-attr]
        self.countdown -= 1
        if self.countdown:
            return
        self.countdown = GUARD_EVERY
        guard, reference, _ = self.guard  # type: ignore[misc]
        current = watched.get()  # type: ignore[union-attr]
        if guard.tripped_by({guard.metric: {guard.window: current}}, reference):
            self.guard = self.watched = None  # one report; the model process re-arms when learning resumes
            self.outbox.put(("guard_tripped", current))

    def _sample_latency(self, message: Message, now: float) -> None:
        """One latency sample per batch: its last event, from its Kafka timestamp to now."""
        kind, stamp = message.timestamp()
        if kind and stamp > 0 and len(self.latencies) < 1000:
            self.latencies.append(max(0.0, now - stamp / 1000))

    def _report_metrics(self) -> None:
        now = time.monotonic()
        if now - self.reported < METRICS_EVERY:
            return
        self.reported = now
        if now - self.pinged >= BROKER_CHECK_EVERY:
            self.pinged = now
            self.broker_ok = self._broker_answers()
        topic = self.settings.input_topic
        lag = {}
        for partition, position in self.positions.items():
            high = self.consumer.high_watermark(topic, partition)
            if high is not None:
                lag[str(partition)] = max(0, high - position)
        report = {"evaluation": self.evaluation.values(), **self.counts, "dead_lettered": self.dead_letters.count,
                  "latencies": self.latencies, "lag": lag, "assigned": len(self.consumer.assigned),
                  "broker_ok": self.broker_ok, "drifts": self.drifts}
        self.latencies, self.drifts = [], []
        self.outbox.put(("metrics", report))

    def _broker_answers(self) -> bool:
        try:
            self.producer.ping(timeout=2.0)
        except StreamError:
            return False
        return True

    def _on_flush(self, token: int) -> None:
        """Every prediction so far is published: hand over the evaluation of exactly those events.

        A copy, taken now: the writer thread pickles it later, while this loop scores on, and the
        snapshot must not count events that come after its offsets.
        """
        self.producer.flush()
        self.outbox.put(("flushed", token, copy.deepcopy(self.evaluation)))

    def _on_seek(self, epoch: int, offsets: dict[tuple[str, int], int], evaluation: Evaluation) -> None:
        """Reposition (a rollback with replay): unanswered batches are dropped, the model drops them too."""
        self.pending.clear()
        self.epoch, self.evaluation = epoch, evaluation
        self._follow_guarded_metric()
        for topic, partition in sorted(self.consumer.assigned):  # partitions it never saw: from the start
            self.consumer.seek(topic, partition, offsets.get((topic, partition), OFFSET_BEGINNING))

    def _on_commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit what a snapshot made durable, so the group's lag in Kafka tools is right."""
        self.consumer.commit(offsets)

    def _on_evaluation(self, evaluation: Evaluation) -> None:
        """A rollback without replay: score from the restored evaluation on."""
        self.evaluation = evaluation
        self._follow_guarded_metric()

    def _on_stop(self) -> None:
        self.running = False

    def _on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """Start each partition at the snapshot's offset; partitions it never saw, from the beginning."""
        return {p: self.start_offsets.get(p, OFFSET_BEGINNING) for p in partitions}


def gateway_main(settings: Settings, conn: Duplex) -> None:
    """Entry point of the gateway process: report any failure to the model process as one line."""
    from learner.runtime.snapshotter import die_with_parent

    die_with_parent()
    lower_priority(settings.gateway_priority)
    sys.setswitchinterval(0.0005)  # the pipe threads must get the GIL back quickly from the main loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the model process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gateway: Gateway | None = None
    try:
        gateway = Gateway(settings, conn)
        gateway.prepare_topics()
        send(conn, ("ready",))
        gateway.run()
    except StreamError as error:
        _report(conn, gateway, str(error))
    except Exception as error:  # noqa: BLE001 - whatever it is, the model process must hear of it
        log.exception("gateway failed")
        _report(conn, gateway, f"gateway failed: {type(error).__name__}: {error}")


def lower_priority(priority: str) -> None:
    """Let the model process win the CPU: it is the bottleneck, and River holds the GIL throughout.

    Threads started afterwards (librdkafka's, the pipe threads) inherit the policy. "idle"
    (``SCHED_IDLE``) is the strongest: besides never preempting the model, Linux counts a CPU that
    runs only idle-policy work as free when it places a waking thread, so the broker's and other
    processes' wake-ups land on the gateway's CPU instead of the model's (measured: the model
    waited for a CPU 2-7% of the time at nice 10, under 1% with idle). Its cost: on a host whose
    CPUs are all busy with other work, the gateway (and so the stream) gets only what is left;
    there, use "low". Inside a container, the policy only ranks the gateway within its own cgroup.
    """
    if priority == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError):  # not Linux: the next best
            priority = "low"
    if priority == "low":
        try:
            os.nice(10)
        except OSError:
            pass


def _report(conn: Duplex, gateway: Gateway | None, text: str) -> None:
    """Tell the model process; through the writer thread when it runs, so frames never interleave."""
    writer = getattr(gateway, "writer", None)
    if gateway is not None and writer is not None and writer.is_alive():
        gateway.outbox.put(("error", text))
        gateway.outbox.put(None)
        writer.join(10)
        return
    try:
        send(conn, ("error", text))
    except OSError:
        pass
