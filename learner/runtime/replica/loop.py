"""``learner run --role serve``: a prediction-only replica (README "Scale out").

One process, no fork: a replica predicts (a fraction of River's per-event cost) and never learns,
so there is no model core to protect. It joins the serve group (``learner.<name>.serve``) and gets a
share of the input partitions; Kafka moves a dead replica's partitions to the others after the
group's session timeout, and gives a newcomer its share. It publishes predictions in the format of
``--role all`` (``model_version``: the version the model descends from; ``learned``: the events it
had learned), dead-letters bad input, and serves /metrics, /healthz, /readyz and /status.

It never writes to Redis: it reads the head, the rollbacks and the live model, through the
follower thread (:mod:`learner.runtime.replica.follower`), and swaps a new model in at a batch boundary.

Outputs are at least once, as with ``--role all``: the group's offsets are committed (about every
second, and when partitions are taken away) only for events whose predictions the broker has
acknowledged, so a replica killed mid-way has its last second predicted again, with the same ids,
by whichever replica takes its partitions over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any

from confluent_kafka import Message

from learner.connections import Connections
from learner.core.predictions import label_of
from learner.core.status import Heartbeat, RedisHealth, ReplicaStatus
from learner.errors import LearnerError
from learner.runtime.replica.follower import Follower, Served
from learner.runtime.replica.metrics import ReplicaMetrics
from learner.runtime.replica.registry import HEARTBEAT_EVERY, registry_topic, send
from learner.runtime.shared.broker_watch import BrokerWatch, lag
from learner.runtime.shared.http import serve
from learner.runtime.shared.intake import Reader
from learner.runtime.shared.process import tune_for_streaming
from learner.runtime.shared.publish import Publisher
from learner.settings import Settings
from stream.errors import StreamError
from stream.fetch_watch import FetchWatch

__all__ = ["Replica"]

log = logging.getLogger(__name__)

#: Seconds between two commits of the group's offsets (each waits for the predictions before it).
COMMIT_EVERY = 1.0
#: Seconds a commit waits for the broker to acknowledge the predictions before it; skipped if longer.
COMMIT_FLUSH_WAIT = 2.0


class Replica:
    """One serve replica: consume a share of the input, predict with the learner's latest model, publish."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.who = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = False
        self.connections = connections = Connections(settings)
        self.store = connections.store(wait=True)  # read only: a replica never writes to Redis
        self.monitor = ReplicaMetrics(settings.name)
        self.follower = Follower(self.store, settings.follow_poll, force=settings.force)
        self.served: Served | None = None
        self.consumed = self.predicted = 0
        self.swaps = 0
        self.positions: dict[tuple[str, int], int] = {}
        self.committed_at = 0.0
        self.registry, self.beat_at = registry_topic(settings), 0.0
        # Kafka clients connect lazily: built now, so /status and /readyz can look at them from the start.
        self.producer = connections.producer()
        self.publisher = Publisher(self.producer, settings.output_topic, settings.dead_letter_topic, settings.name)
        self.reader = Reader(settings.max_event_bytes, self.publisher.dead)
        self.broker = BrokerWatch(self.producer, connections.describe_kafka(), "predictions wait in the producer's queue")
        self.consumer = connections.consumer([settings.input_topic], on_revoke=self._revoked)
        self.fetching = FetchWatch(self.consumer)  # librdkafka can stop fetching after an outage, in a group too
        self.http = serve(settings.metrics_port, self.monitor.registry, lambda: self.status().to_json(),
                          self.not_ready) if settings.metrics_port else None
        try:
            self.admin = connections.admin()
            partitions = connections.wait_for_kafka(self.admin, (settings.input_topic,))[settings.input_topic]
            self.admin.ensure({settings.output_topic: partitions, settings.dead_letter_topic: partitions,
                               self.registry: 1})
            self.producer.ping()
        except BaseException:
            if self.http is not None:
                self.http.shutdown()
            raise

    # -- health -------------------------------------------------------------------------------------

    def not_ready(self) -> str | None:
        """Why /readyz answers 503, or None."""
        if self.stopping:
            return "stopping"
        if self.served is None:
            return f"waiting for a first model of {self.settings.name!r} (a snapshot or a live model from the learner)"
        if not self.consumer.assigned:
            return "no input partition assigned yet (the serve group is balancing, or every partition has a replica)"
        if not self.broker.ok:
            return f"Kafka at {self.connections.describe_kafka()} does not answer"
        return None

    def status(self) -> ReplicaStatus:
        """What /status shows (a replica's view; the learner's is in ``learner status``)."""
        served, follower = self.served, self.follower
        return ReplicaStatus(
            name=self.settings.name, replica=self.who, group=self.settings.consumer_group,
            model_version=served.target.version if served else None, source=served.target.source if served else None,
            learned=served.step.learned if served else None, head=follower.head, versions_behind=follower.behind,
            reloads=self.swaps, last_reload_seconds=served.seconds if served else None,
            reload_failures=follower.failures, last_reload_failure=follower.last_failure,
            partitions=sorted(p for _, p in list(self.consumer.assigned)),  # copied at once: the HTTP thread reads it
            consumed=self.consumed, predicted=self.predicted, dead_lettered=self.publisher.dead_lettered,
            redis=RedisHealth(follower.redis_problem is None, follower.redis_problem),
        )

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM or Ctrl-C; 0 on a clean stop."""
        def stop(signum: int, _frame: Any) -> None:
            log.info("stopping (%s): committing what was published, leaving the group", signal.Signals(signum).name)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            self._wait_for_model()
            if self.stopping:
                return 0
            self.consumer.start(join_group=True)
            tune_for_streaming()
            s = self.settings
            log.info("serving %s -> %s in group %s (replica %s)", s.input_topic, s.output_topic, s.consumer_group,
                     self.who)
            while not self.stopping:
                self.run_once()
        finally:
            self._shutdown()
        return 0

    def _wait_for_model(self) -> None:
        self.follower.start()
        announced = False
        while not self.stopping:
            self.follower.looked.wait(self.settings.follow_poll)
            self.follower.looked.clear()
            if (served := self.follower.take()) is not None:
                self._swap(served)
                return
            if not announced:
                log.warning("no model of %r to serve yet: waiting for the learner's first snapshot or live model",
                            self.settings.name)
                announced = True

    def run_once(self) -> None:
        """Swap in a model the follower loaded, then one batch (waiting up to 50 ms for the first event)."""
        if (served := self.follower.take()) is not None:
            self._swap(served)
        messages = self.consumer.consume(self.settings.batch_size, 0.05)
        if messages:
            self._serve(messages)
        self.publisher.check()
        now = time.monotonic()
        if now - self.committed_at >= COMMIT_EVERY:
            self.committed_at = now
            self._commit(list(self.positions))
            self._observe(now)
        if now - self.beat_at >= HEARTBEAT_EVERY:
            self.beat_at = now
            self._heartbeat()

    def _serve(self, messages: list[Message]) -> None:
        assert self.served is not None
        self.consumed += len(messages)
        intake = self.reader.events(messages, self.settings.input_topic)
        self.positions.update(intake.done)
        step, kept = self.served.step, intake.kept
        outcomes = step.process_batch(intake.events())
        version, learned, ts = self.served.target.version, step.learned, time.time()
        send, dead = self.publisher.prediction, self.publisher.dead
        for (message, given_id, _), result in zip(kept, outcomes, strict=True):
            if isinstance(result, str):
                dead(message, result, "rejected")
                continue
            prediction, proba = result if isinstance(result, tuple) else (label_of(result), result)
            send(message, given_id, prediction, proba, version, learned, ts)
            self.predicted += 1
        if kept:
            stamp_kind, stamp = kept[-1][0].timestamp()
            if stamp_kind and stamp > 0:
                self.monitor.latency.labels(self.settings.name).observe(max(0.0, ts - stamp / 1000))

    def _swap(self, served: Served) -> None:
        previous, self.served = self.served, served
        self.swaps += previous is not None
        self.monitor.reload_seconds.labels(self.settings.name).observe(served.seconds)
        target = served.target
        log.info("serving %s %d of %r (%d events learned; loaded in %.0f ms)", target.source, target.version,
                 self.settings.name, served.step.learned, served.seconds * 1000)

    def _heartbeat(self, stopped: bool = False) -> None:
        """Tell ``learner status`` this replica is here, and what it serves."""
        served = self.served
        send(Heartbeat(self.who, self.settings.consumer_group, served.target.version if served else None,
                       served.target.source if served else None, served.step.learned if served else None,
                       sorted(p for _, p in self.consumer.assigned), self.predicted, time.time(), stopped),
             self.producer, self.registry)

    def _commit(self, partitions: list[tuple[str, int]], wait: bool = False) -> None:
        """Commit the offsets of ``partitions`` once the broker has every prediction before them."""
        if not partitions:
            return
        offsets = {tp: self.positions[tp] for tp in partitions if tp in self.positions}
        try:
            self.producer.flush(COMMIT_FLUSH_WAIT if not wait else 10.0)
        except StreamError as error:
            log.debug("offsets not committed yet: %s", error)
            return
        self.consumer.commit(offsets, asynchronous=not wait)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions about to go to another replica: it must start right after what was published here."""
        self._commit(partitions, wait=True)
        for tp in partitions:
            self.positions.pop(tp, None)

    def _observe(self, now: float) -> None:
        name, monitor, follower, served = self.settings.name, self.monitor, self.follower, self.served
        monitor.observe_totals(self.consumed, self.predicted, self.publisher.dead_lettered,
                               self.publisher.dead_letter_kinds)
        monitor.observe_follower(served.target.version if served else None, served.step.learned if served else None,
                                 follower.behind, follower.failures, follower.redis_problem is None)
        assigned = set(self.consumer.assigned)
        for partition, behind in lag(self.consumer, {tp: o for tp, o in self.positions.items() if tp in assigned}).items():
            monitor.lag.labels(name, partition).set(behind)
        self.fetching.check(now, self.consumed, False, self.broker.check(now))  # it asks for messages in every run_once

    def _shutdown(self) -> None:
        self.stopping = True
        self._heartbeat(stopped=True)
        try:
            self._commit(list(self.positions), wait=True)
        except LearnerError as error:
            log.warning("last commit: %s", error)
        self.consumer.close()
        try:
            self.producer.flush(10.0)
        except StreamError as error:
            log.warning("%s", error)
        self.follower.stop()
        if self.http is not None:
            self.http.shutdown()
        log.info("stopped: replica %s served %d predictions", self.who, self.predicted)
