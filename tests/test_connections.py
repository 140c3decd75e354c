"""Production connections against real servers: Kafka over TLS (and mutual TLS), SASL settings
passed through, Redis over TLS, an ACL user allowed only what the service needs, Sentinel with a
failover mid-stream, a Cluster; secrets never shown; wrong settings are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from learner.local.servers import Broker, RedisServer, free_port
from learner.state.keys import Keys
from learner.state.late_log import LateLog
from tests.conftest import SIGNING_KEY, Stack, make_stack
from tests.faults import through_a_fault
from tests.servers import Certificates, RedisCluster, SentinelSet, Stunnel, make_certificates, needs_stunnel, needs_system_redis
from tests.test_monitor import get, wait_until

pytestmark = pytest.mark.integration


def learner(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learner", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY, **(env or {})})


def labelled(count: int) -> list[bytes]:
    return [orjson.dumps({"id": i, "x": {"a": float(i % 10), "i": i}, "y": i % 2 == 0}) for i in range(count)]


def streams(stack: Stack, *args: str, count: int = 300, env: dict[str, str] | None = None) -> None:
    """The service predicts and snapshots everything it is sent, over the connection the stack describes."""
    stack.produce(labelled(count))
    service = stack.start("--model", "logreg", *args, env=env)
    assert len(stack.read(stack.output, count)) == count
    assert stack.stop(service) == 0, stack.log()
    assert stack.store().meta(stack.store().head()).events_learned == count


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


# -- Kafka -----------------------------------------------------------------------------------------

@needs_stunnel
@pytest.mark.parametrize("mutual", [False, True], ids=["TLS", "mutual TLS"])
def test_kafka_over_tls(certificates: Certificates, redis_server: RedisServer, tmp_path: Path, mutual: bool) -> None:
    port = free_port()
    with Broker(advertised_port=port) as broker, Stunnel(broker.port, certificates, mutual, port=port):
        tls = {"security.protocol": "SSL", "ssl.ca.location": str(certificates.ca)}
        if mutual:
            tls |= {"ssl.certificate.location": str(certificates.client_cert),
                    "ssl.key.location": str(certificates.client_key)}
        stack = make_stack(broker, redis_server, bootstrap=f"127.0.0.1:{port}", kafka=tls)
        try:
            properties = tmp_path / "client.properties"  # as a managed Kafka hands them out
            properties.write_text("# TLS to the broker\n" + "".join(f"{k}={v}\n" for k, v in tls.items()))
            stack.service_kafka = ["--kafka-config-file", str(properties)]  # the test's own clients keep the pairs
            streams(stack)
            produced = learner("produce", "--bootstrap-servers", stack.bootstrap, "--kafka-config-file", str(properties),
                               "--topic", stack.input, "--dataset", "Phishing", "--limit", "50")
            assert produced.returncode == 0, produced.stderr
        finally:
            stack.cleanup()


def test_wrong_security_protocol_is_one_line_naming_it(stack: Stack) -> None:
    result = subprocess.run(stack.run_args("--kafka-config", "security.protocol=SSL", "--startup-timeout", "1"),
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "LEARNER_SIGNING_KEY": SIGNING_KEY})
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last.startswith(f"learner: error: cannot reach Kafka at {stack.bootstrap} (security.protocol=SSL)"), last


def test_sasl_settings_reach_the_broker(redis_server: RedisServer) -> None:
    """Tansu can check SASL (SCRAM) but cannot store users with its memory storage: every login is
    refused, which shows that the settings reach the broker, and that a refusal is not waited for."""
    with Broker(args=["--authentication"]) as broker:
        started = time.monotonic()
        result = learner("run", "--bootstrap-servers", broker.bootstrap_servers, "--redis-url", redis_server.url,
                         "--name", "sasl", "--kafka-config", "security.protocol=SASL_PLAINTEXT",
                         "--kafka-config", "sasl.mechanism=SCRAM-SHA-256", "--kafka-config", "sasl.username=learner",
                         "--kafka-config", "sasl.password=not-shown-anywhere")
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "security.protocol=SASL_PLAINTEXT" in last and ("SASL" in last or "authentication" in last), last
        assert "not-shown-anywhere" not in result.stderr
        assert time.monotonic() - started < 30  # refused: no waiting out --startup-timeout (60 s)


@pytest.mark.parametrize(("option", "why"), [
    (["--kafka-config", "enable.auto.commit=true"], "commits the offsets its snapshots hold"),
    (["--kafka-config", "group.id=mine"], "use --group-id"),
    (["--kafka-config", "isolation.level=read_uncommitted"], "an aborted transaction must never be learned"),
    (["--kafka-config", "acks=1"], "acknowledged by all in-sync replicas"),
    (["--kafka-config", "security.protocol"], "KEY=VALUE"),
])
def test_settings_the_service_owns_are_refused(option: list[str], why: str) -> None:
    result = learner("run", *option)
    assert result.returncode == 2 and why in result.stderr and "Traceback" not in result.stderr, result.stderr


# -- Redis -----------------------------------------------------------------------------------------

#: The ACL of a user allowed only the learner's keys and channels, and the commands it runs
#: (README, "Production"). INCR goes out as INCRBY; a Cluster client also needs CLUSTER SLOTS and COMMAND.
ACL = ("on >learner-password resetkeys ~learner:* resetchannels &learner:* -@all "
       "+get +set +incr +incrby +del +exists +expire +pexpire +hget +hset +hmget +hdel +hincrby +hlen +hexists +hsetnx "
       "+hgetall +scan +zadd +zrange +zrem +sadd +srem +smembers +lpop +rpush +blpop +lrem +xadd +xrange +xrevrange "
       "+evalsha +eval +script|load +script|exists "
       "+ping +info +publish +subscribe +unsubscribe +psubscribe +punsubscribe")


@needs_system_redis
def test_an_acl_user_allowed_only_what_the_service_needs(broker: Broker, tmp_path: Path) -> None:
    with RedisServer(args=["--requirepass", "admin-password"]) as server:
        admin = redis.Redis(port=server.port, password="admin-password")
        admin.execute_command("ACL", "SETUSER", "learner", *ACL.split())
        stack = make_stack(broker, server)
        stack.store_options = {"password": "admin-password"}  # the test reads as the admin
        password = tmp_path / "redis-password"
        password.write_text("learner-password\n")
        stack.service_redis = ["--redis-url", server.url, "--redis-username", "learner",
                               "--redis-password-file", str(password)]
        try:
            streams(stack, "--metrics-port", str(free_port()))
            # the operator commands work under the same user, the password in the URL
            url = f"redis://learner:learner-password@127.0.0.1:{server.port}/0"
            listed = learner("snapshots", "list", "--redis-url", url, "--name", stack.name)
            assert listed.returncode == 0 and "learner-password" not in listed.stdout + listed.stderr, listed.stderr
            status = learner("status", "--json", "--redis-url", url, "--name", stack.name)
            assert status.returncode == 0 and "learner-password" not in status.stdout
            limited = redis.Redis(port=server.port, username="learner", password="learner-password")
            late = LateLog(limited, Keys(stack.name).late)  # with a labels topic: where late messages went
            late.record([(("events.labels", 0, 7), (100, 1, 0, 3, 1))], epoch=1)
            assert late.load() == {("events.labels", 0, 7): (100, 1, 0, 3, 1)}
            with pytest.raises(redis.exceptions.NoPermissionError):
                limited.get("other:key")  # and nothing else
            assert "learner-password" not in stack.log()
        finally:
            stack.cleanup()


@needs_system_redis
@pytest.mark.parametrize("mutual", [False, True], ids=["TLS", "mutual TLS"])
def test_redis_over_tls(broker: Broker, certificates: Certificates, mutual: bool) -> None:
    c = certificates
    args = ["--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key), "--tls-ca-cert-file", str(c.ca),
            "--tls-auth-clients", "yes" if mutual else "no"]
    with RedisServer(tls=True, args=args) as server:
        stack = make_stack(broker, server)
        client_files = ["--redis-cert", str(c.client_cert), "--redis-key", str(c.client_key)] if mutual else []
        stack.service_redis = ["--redis-url", server.url, "--redis-ca", str(c.ca), *client_files]
        tls = {"ssl_ca_certs": str(c.ca), **({"ssl_certfile": str(c.client_cert), "ssl_keyfile": str(c.client_key)}
                                            if mutual else {})}
        stack.store_options = tls
        try:
            streams(stack)
        finally:
            stack.cleanup()


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    made = SentinelSet().start()
    yield made
    made.stop()


@needs_system_redis
def test_sentinel_failover_mid_stream(broker: Broker, sentinels: SentinelSet, tmp_path: Path) -> None:
    password = tmp_path / "sentinel-password"
    password.write_text(SentinelSet.SENTINEL_PASSWORD)
    master = RedisServer(port=sentinels.master_port())  # where the test itself reads (it follows the failover)
    stack = make_stack(broker, master, partitions=3)
    stack.service_redis = ["--redis-sentinel", sentinels.addresses, "--redis-sentinel-master", SentinelSet.MASTER,
                           "--redis-sentinel-password-file", str(password), "--redis-url", "redis://unused/0"]
    stack.store_options = {"password": SentinelSet.PASSWORD}
    env = {"LEARNER_REDIS_PASSWORD": SentinelSet.PASSWORD}

    def fail_over() -> None:
        sentinels.failover()
        master.port = sentinels.master_port()

    try:
        recovery = through_a_fault(stack, fail_over, lambda: None, seconds=5, env=env)
        print(f"\nSentinel failover: {recovery}")
    finally:
        stack.cleanup()


@needs_system_redis
def test_redis_cluster(broker: Broker) -> None:
    cluster = RedisCluster().start()
    try:
        stack = make_stack(broker, cluster.nodes[0])
        stack.service_redis = ["--redis-url", cluster.url, "--redis-cluster"]
        stack.cluster = True
        streams(stack, "--snapshot-every-events", "100")
        versions = stack.store().versions()
        rolled = learner("rollback", "--redis-url", cluster.url, "--redis-cluster", "--name", stack.name,
                         "--to", str(versions[0]))
        assert rolled.returncode == 0, rolled.stderr
        assert stack.store().head() == versions[0]
        stack.cleanup()
    finally:
        cluster.stop()


# -- secrets -------------------------------------------------------------------------------------

def test_secrets_never_appear(stack: Stack) -> None:
    secret = "hunter2-do-not-print"
    port = free_port()
    stack.produce(labelled(50))
    service = subprocess.Popen([*stack.run_args("--model", "logreg", "--metrics-port", str(port), "--kafka-config",
                                                f"ssl.key.password={secret}", "--kafka-config", f"sasl.password={secret}"),
                                "--signing-key", secret], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "LEARNER_LOG_LEVEL": "DEBUG"})
    stack.processes.append(service)
    stack.read(stack.output, 50)
    shown = wait_until(lambda: get(port, "/status")[1] if orjson.loads(get(port, "/status")[1])["service"] else None)
    status = learner("status", "--json", "--redis-url", stack.redis.url, "--name", stack.name,
                     env={"LEARNER_SIGNING_KEY": secret})
    assert stack.stop(service) == 0
    assert service.stdout is not None
    with service.stdout:
        log = service.stdout.read().decode()
    assert "streaming" in log
    for text in (log, shown.decode(), status.stdout, status.stderr):
        assert secret not in text
