"""`learner local` end to end, Ctrl-C included, and the README's commands as written."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from learner.ops.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def local(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "learner", "--log-level", "WARNING", "local", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def ports_in(text: str) -> list[int]:
    first = text.splitlines()[0]
    return [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", first)]


def assert_nothing_left(ports: list[int]) -> None:
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        assert not any(str(p) in line for p in ports), f"left behind: {line}"


def test_local_demo_runs_to_its_summary() -> None:
    demo = local("--limit", "3000", "--rate", "5000")
    out, err = demo.communicate(timeout=180)
    assert demo.returncode == 0, err
    assert "learned 3,000 events" in out and "online metrics: Accuracy" in out
    dashboard = re.search(r"dashboard: http://127\.0\.0\.1:(\d+)/models/demo", out)
    assert dashboard, out  # started beside the learner, and stopped with it
    assert_nothing_left([*ports_in(out), int(dashboard.group(1))])


def test_local_demo_with_delayed_labels() -> None:
    demo = local("--limit", "2000", "--rate", "5000", "--label-delay", "50")
    out, err = demo.communicate(timeout=180)
    assert demo.returncode == 0, err
    assert "labels came on their own topic: 1,950 joined, 50 events still wait" in out, out
    assert_nothing_left(ports_in(out))


def test_local_demo_with_a_challenger() -> None:
    demo = local("--limit", "3000", "--rate", "5000", "--challenger", "lr=logreg")
    out, err = demo.communicate(timeout=240)
    assert demo.returncode == 0, err
    assert "challenger 'lr' (logreg) starts from the learner's first snapshot" in out, out
    row = next(line for line in out.splitlines() if line.strip().startswith("lr "))
    assert "logreg" in row and "Accuracy" in row and "stopped" in row and "—" not in row, out
    assert_nothing_left(ports_in(out))


@pytest.mark.parametrize("keep", [False, True])
def test_ctrl_c_stops_everything(keep: bool) -> None:
    demo = local("--limit", "200000", "--rate", "2000", *(["--keep"] if keep else []))
    first = demo.stdout.readline()  # type: ignore[union-attr]
    ports = ports_in(first)
    deadline = time.monotonic() + 60
    while "learned" not in demo.stdout.readline() and time.monotonic() < deadline:  # type: ignore[union-attr]
        pass
    os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    demo.communicate(timeout=60)
    assert demo.returncode == 0
    assert_nothing_left(ports)


def readme_commands() -> list[str]:
    """Every `learner …` command in the README's shell blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split("  #")[0].strip()
            if line.startswith("learner "):
                commands.append(line)
    return commands


@pytest.mark.parametrize("command", readme_commands())
def test_readme_learner_commands_parse(command: str) -> None:
    """Each command in the README is accepted by the real parser (options exist, types fit)."""
    build_parser().parse_args(shlex.split(command)[1:])


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block is not None
    lines = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert lines == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]


def test_unknown_dataset_is_one_line_and_starts_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "learner", "local", "--dataset", "Nope"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("learner: error: unknown dataset 'Nope'")
    assert "Traceback" not in result.stderr and "broker" not in result.stdout
