"""Latency at light load: from an event's produce to a consumer's receipt of its prediction.

    python bench/latency.py [--rates 100,1000,10000] [--partitions 1,3,6] [--seconds 10]
                            [--answerers bare,all,serve,labels] [--delay 50] [--model logreg]

For each rate and partition count, the same measurement through these answerers on the same
embedded broker:

- ``bare``: a plain consume-and-answer loop (confluent-kafka consumer and producer with the
  service's own client settings, answering each event with a fixed message): what the broker
  and the clients cost;
- ``all``: ``learner run`` (predict, publish, learn), each event with its label;
- ``serve``: a ``--role serve`` replica (beside a ``--role learn`` learner that feeds it models);
- ``labels``: ``learner run --labels-topic``: events without their label, each label ``--delay``
  events later on a labels topic of as many partitions (sent right after the event that makes it
  due): the merge of the two topics is in the path.

A producer thread sends events at the rate (keyed, ids numbered, spread over the partitions); a
consumer thread reads the output and records, per id, receipt time minus send time (one clock:
both threads are in this process). Prints p50/p99/max in milliseconds and the difference of the
p50 and p99 to the bare loop's on the same partitions. ``--model`` is the service's model (a slow
one, ``forest``, shows what the model's own time adds).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import embedded_stack, make_events
from learner.local.servers import Broker, RedisServer
from stream import Admin
from stream.consumer import _DEFAULTS as CONSUMER_DEFAULTS
from stream.producer import _DEFAULTS as PRODUCER_DEFAULTS

KEY = "bench-latency-key"
#: The measuring consumer asks the broker for data often, so it adds little of its own.
READER = {"fetch.wait.max.ms": 5, "enable.auto.commit": False, "auto.offset.reset": "latest"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Probe:
    """Send at a rate, read the answers, keep the latency of each."""

    def __init__(self, bootstrap: str, input_topic: str, output_topic: str, partitions: int = 1,
                 delay: int | None = None) -> None:
        self.bootstrap, self.input, self.output, self.partitions = bootstrap, input_topic, output_topic, partitions
        self.delay = delay  # labels this many events late on f"{input}.labels" (None: each event has its label)
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []

    def run(self, rate: float, seconds: float, tag: str) -> list[float]:
        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"probe-{tag}-{time.time()}", **READER})
        starts = []
        for partition in range(self.partitions):  # from what is there now: every answer to come
            _, end = reader.get_watermark_offsets(TopicPartition(self.output, partition), timeout=10, cached=False)
            starts.append(TopicPartition(self.output, partition, end))
        reader.assign(starts)
        stop = threading.Event()
        thread = threading.Thread(target=self._read, args=(reader, stop), daemon=True)
        thread.start()
        self._send(rate, seconds, tag)
        wait_until = time.monotonic() + 10
        while len(self.latencies) < len(self.sent) and time.monotonic() < wait_until:
            time.sleep(0.05)
        stop.set()
        thread.join(5)
        reader.close()
        latencies, self.latencies, self.sent = self.latencies, [], {}
        return latencies

    def _send(self, rate: float, seconds: float, tag: str) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})  # a typical producer
        template = make_events(1000)
        count = int(rate * seconds)
        started = time.monotonic()
        labels: list[tuple[str, bool]] = []
        for i in range(count):
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            event = orjson.loads(template[i % len(template)])
            event["id"] = f"{tag}-{i}"
            if self.delay is not None:
                labels.append((event["id"], event.pop("y")))
            self.sent[event["id"]] = time.time()
            producer.produce(self.input, orjson.dumps(event), str(i).encode())
            if self.delay is not None and len(labels) > self.delay:  # the label that falls due now
                label_id, y = labels.pop(0)
                producer.produce(f"{self.input}.labels", orjson.dumps({"id": label_id, "y": y}), label_id.encode())
            producer.poll(0)
        for label_id, y in labels:
            producer.produce(f"{self.input}.labels", orjson.dumps({"id": label_id, "y": y}), label_id.encode())
        producer.flush(30)

    def _read(self, reader: Consumer, stop: threading.Event) -> None:
        while not stop.is_set():
            # what is there at once, else wait for one: consume(n, timeout) would wait to fill n
            for message in reader.consume(1000, 0) or [m for m in [reader.poll(0.05)] if m is not None]:
                if message.error() is not None:
                    continue
                now = time.time()
                sent = self.sent.get(orjson.loads(message.value())["id"])
                if sent is not None:
                    self.latencies.append(now - sent)


def bare_loop(bootstrap: str, input_topic: str, output_topic: str, partitions: int, stop: threading.Event) -> None:
    """Consume each event and answer it at once, with the service's own client settings."""
    consumer = Consumer({**{k: v for k, v in CONSUMER_DEFAULTS.items() if k != "logger"},
                         "bootstrap.servers": bootstrap, "group.id": f"bare-{time.time()}"})
    consumer.assign([TopicPartition(input_topic, p, 0) for p in range(partitions)])  # no group to join: as the learner does
    producer = Producer({**{k: v for k, v in PRODUCER_DEFAULTS.items() if k != "logger"},
                         "bootstrap.servers": bootstrap})
    while not stop.is_set():
        # What is there at once, else wait for one (consume(n, timeout) would wait to fill n)
        messages = consumer.consume(2000, 0) or [m for m in [consumer.poll(0.05)] if m is not None]
        for message in messages:
            if message.error() is None:
                event = orjson.loads(message.value())
                producer.produce(output_topic, orjson.dumps({"id": event["id"], "prediction": True}), message.key())
        producer.poll(0)
    consumer.close()
    producer.flush(10)


def learner(broker: Broker, redis_server: RedisServer, name: str, topics: tuple[str, str], *extra: str
            ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "learner", "run", "--bootstrap-servers", broker.bootstrap_servers,
         "--redis-url", redis_server.url, "--name", name, "--input-topic", topics[0], "--output-topic", topics[1],
         "--redis-persistence", "ignore", *extra],
        env={**os.environ, "LEARNER_SIGNING_KEY": KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(broker: Broker, redis_server: RedisServer, answerer: str, rate: float, seconds: float,
            partitions: int = 1, delay: int = 50, model: str = "logreg") -> list[float]:
    name = f"lat-{answerer}-{int(rate)}-{partitions}-{os.getpid()}"
    topics = (f"{name}.in", f"{name}.out")
    Admin({"bootstrap.servers": broker.bootstrap_servers}).ensure(
        {topics[0]: partitions, topics[1]: partitions, f"{topics[0]}.labels": partitions})
    probe = Probe(broker.bootstrap_servers, *topics, partitions, delay if answerer == "labels" else None)
    processes: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    spec = ("--model", model)
    try:
        if answerer == "bare":
            threading.Thread(target=bare_loop, args=(broker.bootstrap_servers, *topics, partitions, stop),
                             daemon=True).start()
        elif answerer == "all":
            processes.append(learner(broker, redis_server, name, topics, *spec))
        elif answerer == "labels":
            processes.append(learner(broker, redis_server, name, topics, *spec, "--labels-topic", f"{topics[0]}.labels"))
        else:
            processes.append(learner(broker, redis_server, name, topics, *spec, "--role", "learn"))
            processes.append(learner(broker, redis_server, name, topics, *spec, "--role", "serve"))
        probe.run(min(rate, 200), 3, "warm")  # the answerer is up and has a model before the measurement
        return probe.run(rate, seconds, "measured")
    finally:
        stop.set()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--partitions", default="1")
    parser.add_argument("--answerers", default="bare,all,serve")
    parser.add_argument("--delay", type=int, default=50, help="labels this many events late (answerer labels)")
    parser.add_argument("--model", default="logreg")
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, model {args.model}")
    print("| events/s | partitions | answerer | p50 ms | p99 ms | max ms | p50 - bare | p99 - bare | answered |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    with embedded_stack() as (broker, redis_server):
        for rate in (float(r) for r in args.rates.split(",")):
            for partitions in (int(n) for n in args.partitions.split(",")):
                bare: tuple[float, float] | None = None
                for answerer in args.answerers.split(","):
                    latencies = measure(broker, redis_server, answerer, rate, args.seconds, partitions, args.delay,
                                        args.model)
                    sent = int(rate * args.seconds)
                    if not latencies:
                        print(f"| {rate:,.0f} | {partitions} | {answerer} | - | - | - | - | - | 0/{sent} |")
                        continue
                    ms = [v * 1000 for v in latencies]
                    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
                    bare = (p50, p99) if answerer == "bare" else bare
                    diff = f"{p50 - bare[0]:+.1f} | {p99 - bare[1]:+.1f}" if bare else "- | -"
                    print(f"| {rate:,.0f} | {partitions} | {answerer} | {p50:.1f} | {p99:.1f} | {max(ms):.1f} | {diff} | "
                          f"{len(ms)}/{sent} |", flush=True)


if __name__ == "__main__":
    main()
