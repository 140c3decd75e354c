"""The embedded stack's dashboard (README "The embedded stack"): ``learner dashboard`` in a process of
its own, on port 8050 when it is free (else any free port), pointed at the stack's Redis and broker.

A process of its own, as in production: the page's reads never share a CPU slice or a GIL with the
learner they watch.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import threading

__all__ = ["DEFAULT_PORT", "DashboardProcess"]

DEFAULT_PORT = 8050


def _free(port: int) -> int:
    """``port`` when nothing listens on it on loopback, else 0 (the system picks one)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return 0
            raise
    return port


class DashboardProcess:
    """Starts the dashboard and learns its address from its first line."""

    def __init__(self, redis_url: str, bootstrap_servers: str, port: int = DEFAULT_PORT) -> None:
        self.address: str | None = None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "learner", "--log-level", "WARNING", "dashboard", "--redis-url", redis_url,
             "--bootstrap-servers", bootstrap_servers, "--port", str(_free(port))],
            stdout=subprocess.PIPE, text=True)

    def wait_address(self, timeout: float = 30.0) -> str | None:
        """The page's address, once it listens (None if it did not start: the demo goes on without it)."""
        assert self._process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if line and line[0].startswith("dashboard on "):
            self.address = line[0].split()[2]
        return self.address

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
