"""``learner dashboard`` as its users meet it (README "Dashboard"): a real learner on the real broker and
Redis, the dashboard in a process of its own, and the page in Debian's chromium driven by Playwright.

The browser test waits for what the page shows (points added while events flow, a drift alarm, a
rollback) with generous bounds; how fast a change reaches the page is measured in
``bench/dashboard_delay.py``, never asserted here.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.conftest import Stack
from tests.system_tools import CHROMIUM, needs
from tests.test_rollback import learner

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("LEARNER_TEST_ARTIFACTS", ROOT / "test-artifacts"))
#: A feature name that would run script if the page put it in as markup.
HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name), "")


class Dashboard:
    """``learner dashboard`` started as users start it; its address from its first line."""

    def __init__(self, stack: Stack, *extra: str, redis_url: str | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "learner", "dashboard", "--redis-url", redis_url or stack.redis.url,
             "--bootstrap-servers", stack.bootstrap, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        assert self.first_line.startswith("dashboard on "), self.first_line + self.stop()
        self.url = self.first_line.split()[2].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def get(self, path: str, host: str | None = None, headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{self.port}", **(headers or {})})
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return err


@pytest.fixture
def dashboard(stack: Stack) -> Iterator[Dashboard]:
    board = Dashboard(stack)
    yield board
    board.stop()


def changing_events(start: int, count: int, changed: bool) -> list[bytes]:
    """Events whose concept (the label's rule) and one feature's level change when ``changed``."""
    out = []
    for i in range(start, start + count):
        a, b = ((i * 37) % 101) / 50 - 1, ((i * 53) % 97) / 48 - 1
        y = (a + 0.5 * b > 0) != changed
        out.append(orjson.dumps({"id": i, "x": {"a": a, "b": b, HOSTILE: (5.0 if changed else 0.0) + (i % 10) / 10},
                                 "y": y}))
    return out


def wait_for(check: object, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"the page never showed {what}"
        time.sleep(0.25)


@needs(CHROMIUM)
def test_the_page_in_a_browser(stack: Stack, dashboard: Dashboard) -> None:
    from playwright.sync_api import sync_playwright

    stack.produce(changing_events(0, 1500, changed=False))
    service = stack.start("--model", "logreg", "--metric", "Accuracy", "--snapshot-every-events", "500",
                          "--snapshot-every-seconds", "0", "--batch-size", "100", "--history-every-seconds", "0.5",
                          "--drift-window", "300", "--drift-warmup", "200")
    stack.wait_status(lambda s: s["events_done"] >= 1500)
    problems: list[str] = []
    elsewhere: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 2400})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
        page.on("request", lambda r: None if r.url.startswith(dashboard.url + "/") else elsewhere.append(r.url))

        page.goto(dashboard.url + "/")
        page.get_by_role("link", name=stack.name).wait_for(timeout=60_000)
        page.get_by_role("link", name=stack.name).click()
        page.wait_for_url(f"**/models/{stack.name}")

        def points() -> int:
            return int(page.evaluate("Number(document.body.dataset.points || 0)"))

        def plotted() -> int:
            return int(page.evaluate("(document.getElementById('metrics-chart').data || [{x: []}])[0].x.length"))

        wait_for(lambda: plotted() >= 2, "the learning curve")
        before = plotted()
        stack.produce(changing_events(1500, 2500, changed=True))
        wait_for(lambda: plotted() > before and points() > before, "points added while events flow")

        drift = page.locator("#timeline td[data-kind=drift]")
        wait_for(lambda: drift.count() > 0, "a drift alarm on the timeline")
        stack.wait_status(lambda s: s["events_done"] >= 4000)
        rolled = learner(stack, "rollback", "--to", "1", "--reason", "the page shows it")
        assert rolled.returncode == 0, rolled.stderr
        wait_for(lambda: page.locator("#timeline td[data-kind=rollback]").count() > 0, "the rollback on the timeline")

        table = page.locator("#snapshots tbody tr")
        wait_for(lambda: table.count() >= 3, "the snapshot table")
        assert page.locator("#snapshots td", has_text="head").count() == 1
        # The hostile feature's name came back in the input-drift alarm: shown as text, run never.
        wait_for(lambda: page.locator("#timeline td", has_text=HOSTILE).count() > 0, "the input drift alarm's text")
        assert page.evaluate("document.querySelectorAll('img').length") == 0

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-model.png"), full_page=True)
        browser.close()
    assert stack.stop(service) == 0
    assert problems == [], problems
    assert elsewhere == [], elsewhere


def board_on_a_taken_port(stack: Stack, port: int) -> bool:
    """A second dashboard on the first one's port: one line that says so, no traceback."""
    taken = subprocess.run([sys.executable, "-m", "learner", "dashboard", "--redis-url", stack.redis.url, "--port",
                            str(port)], capture_output=True, text=True, timeout=60)
    return (taken.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
            and "Traceback" not in taken.stderr and len(taken.stderr.strip().splitlines()) == 1)


def test_refuses_other_hosts_and_sets_its_policy(stack: Stack, dashboard: Dashboard) -> None:
    answer = dashboard.get("/", host="attacker.example")  # DNS rebinding: a name of theirs, our address
    assert answer.status == 400
    answer = dashboard.get("/")
    assert answer.status == 200
    policy = answer.header("content-security-policy")
    assert "default-src 'self'" in policy and "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert dashboard.get("/api/models/no-such-model").status == 404
    assert board_on_a_taken_port(stack, dashboard.port)
    models = orjson.loads(dashboard.get("/api/models").body)
    assert models["problem"] is None


def test_beyond_loopback_only_with_a_token(stack: Stack, tmp_path: Path) -> None:
    refused = subprocess.run([sys.executable, "-m", "learner", "dashboard", "--redis-url", stack.redis.url,
                              "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--token-file" in refused.stderr and "Traceback" not in refused.stderr
    token = "t0ken-" + os.urandom(12).hex()
    (tmp_path / "token").write_text(token + "\n")
    board = Dashboard(stack, "--host", "0.0.0.0", "--token-file", str(tmp_path / "token"))
    try:
        assert board.get("/api/models").status == 401
        assert board.get("/api/models", headers={"Authorization": "Bearer wrong-" + token}).status == 401
        assert board.get("/api/models", headers={"Authorization": f"Bearer {token}"}).status == 200
        traded = board.get(f"/?token={token}")
        assert traded.status == 303 and traded.header("location") == "/"
        cookie = traded.header("set-cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert board.get("/", headers={"Cookie": cookie.split(";")[0]}).status == 200
    finally:
        board.stop()


def test_in_a_container_without_a_token_only_loopback_names(stack: Stack) -> None:
    board = Dashboard(stack, "--host", "0.0.0.0", "--insecure-no-token")
    try:
        assert board.get("/api/models", host="attacker.example").status == 400
        assert board.get("/api/models", host=f"localhost:{board.port}").status == 200
    finally:
        board.stop()


def test_caps_the_connections_it_serves(stack: Stack) -> None:
    board = Dashboard(stack, "--max-connections", "1")
    try:
        with socket.create_connection(("127.0.0.1", board.port), timeout=30) as held:
            held.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a request that never ends
            deadline = time.monotonic() + 60
            while (status := board.get("/api/models").status) != 503:  # once uvicorn has taken the first one
                assert status == 200 and time.monotonic() < deadline
                time.sleep(0.1)
        deadline = time.monotonic() + 60
        while board.get("/api/models").status != 200:  # the held one closed: served again
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        board.stop()


def test_never_shows_a_secret(stack: Stack) -> None:
    stack.produce(changing_events(0, 200, changed=False))
    service = stack.start("--model", "logreg", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0")
    stack.wait_status(lambda s: s["events_done"] >= 200)
    password, sasl = "s3cret-redis-pass", "s3cret-sasl-pass"
    host_port = stack.redis.url.split("//", 1)[1]
    board = Dashboard(stack, "--kafka-config", f"sasl.password={sasl}", redis_url=f"redis://default:{password}@{host_port}")
    try:
        seen = board.first_line
        for path in ("/", f"/models/{stack.name}", "/api/models", f"/api/models/{stack.name}",
                     f"/api/models/{stack.name}/history", "/healthz"):
            answer = board.get(path)
            assert answer.status == 200, path
            seen += answer.body.decode()
        assert stack.name in seen
    finally:
        seen += board.stop()
    assert stack.stop(service) == 0
    assert password not in seen and sasl not in seen and "SIGNING" not in seen
