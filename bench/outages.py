"""How long the service takes to recover from each kind of outage (the fault tests' scenarios).

    python bench/outages.py [--seconds 15] [--repeat 1]

For each fault (Redis killed and restarted with its append-only file, paused, cut off by a
partition; the broker cut off, paused, down; a Sentinel failover when Debian's redis-server is there),
under a steady producer (500 events/s, 3 partitions), it prints the time from the fault clearing
to the first new prediction and to the first new snapshot, and how many predictions were made
while the fault lasted. The same checks as the tests run on each (nothing lost, nothing learned twice).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from learner.local.servers import Broker, RedisServer, free_port
from tests.conftest import Stack, make_stack
from tests.faults import Recovery, TcpProxy, through_a_fault
from tests.servers import SentinelSet, needs_system_redis

Scenario = Callable[[ExitStack, float], Recovery]


def _redis_fault(which: str) -> Scenario:
    def run(servers: ExitStack, seconds: float) -> Recovery:
        broker = servers.enter_context(Broker())
        redis = servers.enter_context(RedisServer(appendonly=True))
        proxy = servers.enter_context(TcpProxy(redis.port))
        stack = make_stack(broker, redis, partitions=3)
        stack.service_redis = ["--redis-url", f"redis://127.0.0.1:{proxy.port}/0"]
        faults = {"killed": (redis.kill, redis.start), "paused": (redis.pause, redis.resume),
                  "cut off": (proxy.partition, proxy.heal)}
        try:
            return through_a_fault(stack, *faults[which], seconds=seconds)
        finally:
            stack.cleanup()
    return run


def _broker_fault(which: str) -> Scenario:
    def run(servers: ExitStack, seconds: float) -> Recovery:
        port = free_port()
        broker = servers.enter_context(Broker(advertised_port=port))
        proxy = servers.enter_context(TcpProxy(broker.port, port=port))
        redis = servers.enter_context(RedisServer())
        stack = make_stack(broker, redis, partitions=3)
        faults = {"cut off": (proxy.partition, proxy.heal), "paused": (broker.pause, broker.resume),
                  "down": (proxy.refuse, proxy.heal)}
        try:
            return through_a_fault(stack, *faults[which], seconds=seconds)
        finally:
            stack.cleanup()
    return run


def _sentinel_failover(servers: ExitStack, seconds: float) -> Recovery:
    broker = servers.enter_context(Broker())
    sentinels = SentinelSet().start()
    servers.callback(sentinels.stop)
    master = RedisServer(port=sentinels.master_port())
    stack: Stack = make_stack(broker, master, partitions=3)
    password = sentinels.directory / "sentinel-password"
    password.write_text(SentinelSet.SENTINEL_PASSWORD)
    stack.service_redis = ["--redis-sentinel", sentinels.addresses, "--redis-sentinel-master", SentinelSet.MASTER,
                           "--redis-sentinel-password-file", str(password)]
    stack.store_options = {"password": SentinelSet.PASSWORD}

    def fail_over() -> None:
        sentinels.failover()
        master.port = sentinels.master_port()

    try:
        return through_a_fault(stack, fail_over, lambda: None, seconds=min(seconds, 5),
                               env={"LEARNER_REDIS_PASSWORD": SentinelSet.PASSWORD})
    finally:
        stack.cleanup()


SCENARIOS: dict[str, Scenario] = {
    "Redis killed (kill -9), restarted with its AOF": _redis_fault("killed"),
    "Redis paused (SIGSTOP)": _redis_fault("paused"),
    "Redis cut off (network partition)": _redis_fault("cut off"),
    "broker cut off (network partition)": _broker_fault("cut off"),
    "broker paused (SIGSTOP)": _broker_fault("paused"),
    "broker down (connections refused)": _broker_fault("down"),
}


@contextmanager
def _servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each fault lasts")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="only the outages whose name holds this")
    args = parser.parse_args()
    scenarios = dict(SCENARIOS)
    if not needs_system_redis.args[0]:  # the skipif condition is False: Debian's redis-server is there
        scenarios["Redis Sentinel failover (SENTINEL FAILOVER)"] = _sentinel_failover
    scenarios = {name: run for name, run in scenarios.items() if args.only.lower() in name.lower()}
    print(f"| outage ({args.seconds:g} s) | first new prediction after it cleared | first new snapshot after it "
          "cleared | predictions made while it lasted |\n| --- | --- | --- | --- |")
    for name, scenario in scenarios.items():
        runs = []
        for _ in range(args.repeat):
            with _servers() as servers:
                runs.append(scenario(servers, args.seconds))
        prediction = statistics.median(r.prediction for r in runs)
        snapshot = statistics.median(r.snapshot for r in runs)
        during = statistics.median(r.predicted_during for r in runs)
        print(f"| {name} | {prediction:.2f} s | {snapshot:.2f} s | {during:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
