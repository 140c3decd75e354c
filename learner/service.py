"""``learner run``: the loop that moves bytes between Kafka, the learning step and Redis.

Per batch: consume, then for each event decode, predict, publish, learn (the step), then record
the offsets. Every N events or S seconds, at a batch boundary: flush the producer (every output
so far is durable), then snapshot model + offsets to Redis in one atomic write, then commit the
same offsets to Kafka for lag monitoring. On restart, the snapshot is the truth: partitions are
positioned at its offsets, so no event is lost or learned twice.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Message

from learner.checkpoint import Checkpoint
from learner.models import build_model
from learner.settings import Settings
from learner.signing import Signer
from learner.snapshots import SnapshotStore, describe_params, offsets_to_meta
from learner.snapshotter import Outcome, Snapshotter
from learner.step import LabelRejected, LearningStep
from stream import AsyncProducer, BatchConsumer, DeadLetters, InvalidEvent, decode_event, encode_prediction
from stream.admin import ensure_topics, topic_partitions
from stream.errors import TopicMissing

log = logging.getLogger(__name__)


class Service:
    """One ``learner run`` process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.store = SnapshotStore(redis.Redis.from_url(settings.redis_url), settings.name,
                                   Signer(settings.key_bytes()))
        self.step, self.head, self.checkpoint = self._restore()
        self.model_version = self.head or 0
        self.snapshotter = Snapshotter(self.store, settings.snapshot_keep, settings.snapshot_in_background)
        self.producer = AsyncProducer(self._kafka_config())
        self.dead_letters = DeadLetters(self.producer, settings.dead_letter_topic)
        self.consumer = BatchConsumer(
            {**self._kafka_config(), "group.id": settings.consumer_group,
             "session.timeout.ms": settings.session_timeout_ms},
            [settings.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
        )
        self.params = describe_params(self.step.model)

    # -- start and stop ---------------------------------------------------------------------------

    def _kafka_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.settings.bootstrap_servers, "client.id": f"learner-{self.settings.name}"}

    def _restore(self) -> tuple[LearningStep, int | None, Checkpoint]:
        """The head snapshot if there is one (the truth), else a fresh model from ``--model``."""
        settings = self.settings
        loaded = self.store.load_head(force=settings.force)
        offsets: dict[tuple[str, int], int] = {}
        self.spec = settings.model
        if loaded is None:
            step = LearningStep(build_model(settings.model), settings.metric)
            head = None
            log.info("no snapshot of %r yet: starting a new %s model", settings.name, settings.model)
        else:
            meta, state = loaded
            step, head, offsets = LearningStep.from_state(state), meta.version, meta.offsets_by_partition()
            self.spec = meta.model_spec
            if meta.model_spec != settings.model:
                log.warning("snapshot %d holds a %r model; --model %r is ignored", head, meta.model_spec, settings.model)
            log.info("restored %r version %d (%d events learned)", settings.name, head, step.learned)
        checkpoint = Checkpoint(settings.snapshot_every_events, settings.snapshot_every_seconds, offsets)
        return step, head, checkpoint

    def _prepare_topics(self) -> None:
        settings = self.settings
        partitions = topic_partitions(settings.bootstrap_servers).get(settings.input_topic)
        if partitions is None:
            raise TopicMissing(f"input topic {settings.input_topic!r} does not exist on {settings.bootstrap_servers}")
        created = ensure_topics(settings.bootstrap_servers,
                                {settings.output_topic: partitions, settings.dead_letter_topic: partitions})
        for name in created:
            log.info("created topic %r with %d partitions", name, partitions)

    def run(self) -> None:
        """Stream until SIGTERM or Ctrl-C (a second Ctrl-C stops at once, without a final snapshot)."""
        self._prepare_topics()
        self.producer.ping()
        self._install_signals()
        self.consumer.start(join_group=False)
        log.info("streaming %s -> %s as %r", self.settings.input_topic, self.settings.output_topic,
                 self.settings.consumer_group)
        try:
            while not self.stopping:
                self.run_once()
        finally:
            self._shutdown()

    def run_once(self, timeout: float = 0.1) -> int:
        """One batch and the housekeeping after it; returns how many messages it consumed."""
        messages = self.consumer.consume(self.settings.batch_size, timeout)
        if messages:
            self._process(messages)
        self.producer.poll()
        self.producer.check()
        self._collect_snapshot(self.snapshotter.poll())
        if self.checkpoint.due() and not self.snapshotter.busy:
            self.snapshot("periodic")
        return len(messages)

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            if self.stopping and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.info("stopping (%s): finishing the batch and taking a last snapshot", signal.Signals(signum).name)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _shutdown(self) -> None:
        self._collect_snapshot(self.snapshotter.wait())
        if self.checkpoint.pending:
            self.snapshot("shutdown", background=False)
        self.consumer.close()
        self.producer.flush()
        log.info("stopped: %r version %d, %d events learned", self.settings.name, self.model_version,
                 self.step.learned)

    # -- the hot path -----------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        """Predict, publish and learn a batch; an event that fails anywhere becomes a dead letter."""
        step = self.step
        process = step.process
        produce = self.producer.produce_fast
        out_topic = self.settings.output_topic
        name, version, max_bytes = self.settings.name, self.model_version, self.settings.max_event_bytes
        ts = time.time()
        done: dict[int, int] = {}
        for message in messages:
            try:
                event = decode_event(message.value(), max_bytes)
                learned = step.learned
                prediction, proba = process(event.x, event.y)
            except (InvalidEvent, LabelRejected) as error:
                self.dead_letters.send(message, str(error))
            except Exception as error:  # noqa: BLE001 - River refused this event; the stream goes on
                self.dead_letters.send(message, f"the model rejected the event: {type(error).__name__}: {error}")
            else:
                event_id = event.id
                if event_id is None:
                    event_id = f"{message.topic()}:{message.partition()}:{message.offset()}"
                value = encode_prediction(event_id, prediction, proba, name, version, learned, ts)
                try:
                    produce(out_topic, value, message.key())
                except BufferError:
                    self.producer.produce(out_topic, value, message.key())
            done[message.partition()] = message.offset()
        topic = self.settings.input_topic
        self.checkpoint.add({(topic, p): o + 1 for p, o in done.items()}, len(messages))

    # -- snapshots --------------------------------------------------------------------------------

    def snapshot(self, reason: str, background: bool | None = None) -> Outcome | int:
        """Snapshot the model and the offsets it has learned, at this event boundary."""
        started = time.perf_counter()
        self.producer.flush()  # outputs up to here must be durable before the snapshot claims them
        offsets = dict(self.checkpoint.offsets)
        fields = {
            "parent": self.head, "events_learned": self.step.learned, "offsets": offsets_to_meta(offsets),
            "metrics": self.step.evaluation.values(), "model_spec": self.spec,
            "model_params": self.params, "reason": reason,
        }
        snapshotter = self.snapshotter
        if background is False:
            snapshotter = Snapshotter(self.store, self.settings.snapshot_keep, background=False)
        result = snapshotter.start(self.step.state(), fields, offsets, self.head, None)
        self.checkpoint.taken()
        log.debug("snapshot started in %.1f ms", (time.perf_counter() - started) * 1000)
        if isinstance(result, Outcome):
            self._collect_snapshot(result)
        return result

    def _collect_snapshot(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        if not outcome.ok:
            log.error("snapshot %d failed: %s", outcome.version, outcome.error)
            return
        self.head = self.model_version = outcome.version
        log.info("snapshot %d written (%d bytes, %.2fs)", outcome.version, outcome.size, outcome.seconds)
        if outcome.offsets:
            self.consumer.commit(outcome.offsets)

    # -- partitions -------------------------------------------------------------------------------

    def _on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """Start each partition at the snapshot's offset; partitions it never saw, from the beginning."""
        return {p: self.checkpoint.offsets.get(p, OFFSET_BEGINNING) for p in partitions}

    def _on_revoke(self, partitions: list[tuple[str, int]]) -> None:
        if self.checkpoint.pending and not self.stopping:
            self._collect_snapshot(self.snapshotter.wait())
            self.snapshot("rebalance", background=False)
