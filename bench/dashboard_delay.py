"""How long a change takes to reach the dashboard's page (README "Dashboard"), in Debian's chromium.

    python bench/dashboard_delay.py [--rollbacks 10] [--rate 500] [--history-every 1]

The embedded stack, a learner (``learner run``, a point of history every ``--history-every`` seconds)
fed ``--rate`` events a second, and ``learner dashboard``, each in its own process; the model's page
open in headless chromium (Playwright). Two delays:

- a rollback: from its timeline entry's stamp (written by ``learner rollback``) to its row on the
  page's timeline, ``--rollbacks`` times;
- a history point: from the time the learner stamped on it to the page's chart holding it.

Both are the sum of the learner's Redis thread, the dashboard's reader (about once a second) and the
page's refresh (every 2 s): expect about 1.5 s on average and 3 s at worst. Also prints the
dashboard's resident memory and CPU with one page open, then with ``--tabs`` pages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import embedded_stack, make_events
from learner.local.servers import Broker, RedisServer
from learner.state.signing import Signer
from learner.state.snapshots import SnapshotStore
from stream.admin import Admin
from stream.producer import AsyncProducer

KEY = "bench-dashboard-key"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def feed(bootstrap: str, topic: str, rate: float, stop: threading.Event) -> None:
    producer = AsyncProducer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    values, sent, started = make_events(100_000), 0, time.monotonic()
    while not stop.is_set():
        producer.produce(topic, values[sent % len(values)], None)
        sent += 1
        if sent % 50 == 0:
            producer.poll()
            time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
    producer.flush()


def run(broker: Broker, redis_server: RedisServer, args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    name = f"board-{os.getpid()}"
    Admin({"bootstrap.servers": broker.bootstrap_servers}).ensure({f"{name}.in": 1})
    env = {**os.environ, "LEARNER_SIGNING_KEY": KEY}
    common = ["--redis-url", redis_server.url]
    learner = subprocess.Popen(
        [sys.executable, "-m", "learner", "run", "--bootstrap-servers", broker.bootstrap_servers, *common, "--name", name,
         "--input-topic", f"{name}.in", "--output-topic", f"{name}.out", "--model", "logreg", "--redis-persistence",
         "ignore", "--snapshot-every-events", "2000", "--snapshot-every-seconds", "0", "--history-every-seconds",
         str(args.history_every)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = SnapshotStore(redis.Redis.from_url(redis_server.url), name, Signer(None))  # its timeline's stamps
    board = subprocess.Popen([sys.executable, "-m", "learner", "dashboard", *common, "--port", "0"],
                             stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    threading.Thread(target=feed, args=(broker.bootstrap_servers, f"{name}.in", args.rate, stop), daemon=True).start()
    try:
        url = board.stdout.readline().split()[2]  # type: ignore[union-attr]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{url}models/{name}")
            wait_js(page, "document.querySelectorAll('#snapshots td').length > 8", 120)
            points = point_delays(page, 20)
            rollbacks = []
            for _ in range(args.rollbacks):
                shown = page.locator("#timeline td[data-kind=rollback]").count()
                command = subprocess.Popen([sys.executable, "-m", "learner", "rollback", *common, "--name", name, "--to",
                                            "1", "--reason", "bench"], env=env, stdout=subprocess.DEVNULL)
                wait_js(page, f"document.querySelectorAll('#timeline td[data-kind=rollback]').length > {shown}", 60)
                seen = time.time()  # watched while the command runs: its exit is not counted
                assert command.wait(60) == 0
                written = [e.at for e in store.timeline.entries(10) if e.kind == "rollback"][-1]
                rollbacks.append(seen - written)
            process = psutil.Process(board.pid)
            load = [watch(process, page)]
            for _ in range(args.tabs - 1):
                browser.new_page().goto(f"{url}models/{name}")
            load.append(watch(process, page))
            browser.close()
        print(f"rollback -> page (n={len(rollbacks)}): median {statistics.median(rollbacks):.2f} s, "
              f"max {max(rollbacks):.2f} s")
        print(f"history point -> chart (n={len(points)}): median {statistics.median(points):.2f} s, max {max(points):.2f} s")
        for tabs, (rss, cpu) in zip((1, args.tabs), load, strict=True):
            print(f"dashboard with {tabs} pages open: {rss:.0f} MB resident, CPU {cpu:.1f}% of a core")
    finally:
        stop.set()
        for process in (board, learner):
            process.terminate()
            process.wait(60)


def watch(process: psutil.Process, page: object) -> tuple[float, float]:
    """The dashboard's resident memory (MB) and CPU (% of a core) over 10 s."""
    before, started = process.cpu_times(), time.monotonic()
    page.wait_for_timeout(10_000)  # type: ignore[attr-defined]
    cpu = sum(process.cpu_times()[:2]) - sum(before[:2])
    return process.memory_info().rss / 2**20, 100 * cpu / (time.monotonic() - started)


def wait_js(page: object, condition: str, timeout: float) -> None:
    """Poll ``condition`` every 20 ms (the page's policy forbids the string evaluation wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never had {condition}")
        time.sleep(0.02)


def point_delays(page: object, count: int) -> list[float]:
    """For ``count`` new history points: the page's clock when its chart held each, minus the point's stamp."""
    delays: list[float] = []
    last = page.evaluate("Number(document.body.dataset.points || 0)")  # type: ignore[attr-defined]
    while len(delays) < count:
        wait_js(page, f"Number(document.body.dataset.points || 0) > {last}", 60)
        now = time.time()
        stamps = page.evaluate(  # type: ignore[attr-defined]
            "document.getElementById('metrics-chart').data[0].x.slice(-50).map(d => d.getTime() / 1000)")
        shown = int(page.evaluate("Number(document.body.dataset.points)"))  # type: ignore[attr-defined]
        delays.extend(now - stamp for stamp in stamps[-(shown - last):])
        last = shown
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--history-every", type=float, default=1.0)
    parser.add_argument("--tabs", type=int, default=10, help="pages open at once for the second load figure")
    args = parser.parse_args()
    with embedded_stack() as (broker, redis_server):
        run(broker, redis_server, args)


if __name__ == "__main__":
    main()
