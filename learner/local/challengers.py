"""The demo's challengers (``learner local --challenger NAME=MODEL``): each a ``learner run --role challenger``
process of its own, as in production, started beside the demo's learner and stopped with it.

Each waits for the learner's first snapshot and begins from it (``--from-version 1``: a challenger
that took a second longer to start begins at the same place; README "Experiments"); its log goes to
a file in the demo's directory, named when it starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from learner.errors import UsageError
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.snapshots import SnapshotStore

if TYPE_CHECKING:
    from learner.runtime.model.service import Service

__all__ = ["DemoChallengers", "parse_challenger"]

#: Seconds the demo's stream waits for its challengers to register.
REGISTER_WAIT = 60.0
#: Seconds a challenger must look done (all events, nothing waiting to pair) before it is stopped: more
#: than its gateway's report interval, so that the figures are not a report older than its last event.
SETTLE = 3.0
#: Seconds the challengers may take to finish the dataset after the learner did, then each to stop.
FINISH_WAIT = 120.0
STOP_WAIT = 30.0


def parse_challenger(text: str) -> tuple[str, str]:
    """``NAME=MODEL`` as (name, spec).

    >>> parse_challenger("trees=tree")
    ('trees', 'tree')
    >>> parse_challenger("tree")
    Traceback (most recent call last):
    ...
    learner.errors.UsageError: --challenger takes NAME=MODEL, such as trees=tree; got 'tree'
    """
    name, _, spec = text.partition("=")
    if not name or not spec:
        raise UsageError(f"--challenger takes NAME=MODEL, such as trees=tree; got {text!r}")
    return name, spec


class DemoChallengers:
    """The challenger processes of one demo."""

    def __init__(self, settings: Settings, key: str, challengers: tuple[tuple[str, str], ...]) -> None:
        self.settings, self.key, self.wanted = settings, key, challengers
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.directory = Path(tempfile.mkdtemp(prefix="learner-demo-challengers-")) if challengers else None

    def start(self) -> list[str]:
        """Start every challenger; one line per challenger saying where its log goes."""
        said = []
        for name, spec in self.wanted:
            assert self.directory is not None
            log_path = self.directory / f"{name}.log"
            with open(log_path, "wb") as log:
                self.processes[name] = subprocess.Popen(
                    self._command(name, spec), stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "LEARNER_SIGNING_KEY": self.key})
            said.append(f"challenger {name!r} ({spec}) starts from the learner's first snapshot; its log: {log_path}")
        return said

    def _command(self, name: str, spec: str) -> list[str]:
        s = self.settings
        command = [sys.executable, "-m", "learner", "run", "--role", "challenger", "--challenger", name, "--model", spec,
                   "--from-version", "1", "--bootstrap-servers", s.bootstrap_servers, "--redis-url", s.redis_url,
                   "--name", s.name, "--input-topic", s.input_topic, "--snapshot-every-events", str(s.snapshot_every_events),
                   "--snapshot-every-seconds", str(s.snapshot_every_seconds), "--redis-persistence", "ignore"]
        if s.labels_topic:
            command += ["--labels-topic", s.labels_topic]
        return command

    def wait_registered(self, service: Service, timeout: float = REGISTER_WAIT) -> None:
        """Until every challenger has registered and the learner writes its scores (or one has exited)."""
        store = service.store
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes.values()):
            if store.challengers.count() >= len(self.processes) and service.control_loop.scores.on:
                return
            time.sleep(0.1)

    def finish(self, store: SnapshotStore, events: int | None) -> list[str]:
        """Let each challenger learn the ``events`` and pair the last of the learner's scores (None: at once),
        then stop it (its last snapshot); the problems, one line each."""
        problems, deadline = [], time.monotonic() + FINISH_WAIT
        for name, process in self.processes.items():
            control = ControlPlane(store.lineage(name))
            settled: float | None = None  # since when it has looked done
            while events is not None and process.poll() is None and time.monotonic() < deadline:
                status = control.service_status()
                done = status is not None and status.events_done >= events and status.pairing is not None \
                    and not any(status.pairing["waiting"].values())
                settled = (settled or time.monotonic()) if done else None
                # The pairing figures come from the gateway's report (every second), the events done from the
                # model: done only once a report newer than the last event has said so.
                if settled is not None and time.monotonic() - settled >= SETTLE:
                    break
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                problems.append(f"challenger {name!r} exited with {code}: see {self.directory}/{name}.log")
        return problems

    def stop(self) -> None:
        """Kill whatever still runs (the demo is going away)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
