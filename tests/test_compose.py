"""docker-compose.yml and the Dockerfile, checked without Docker: the structure of the stack, and the
learner's environment against the real settings model and command line."""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from learner.ops.cli import build_parser
from learner.settings import Settings
from tests import system_tools

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LONG_RUNNING = ("kafka", "redis", "learner", "prometheus", "grafana", "dashboard")
ONE_SHOT = ("kafka-init", "producer")
REQUIRED_SETTINGS = ("bootstrap_servers", "redis_url", "name", "model", "input_topic", "output_topic", "signing_key")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either compose form (mapping or KEY=VALUE list)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution, for the values this file uses."""
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        return variables.get(name) or (default if default is not None else "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", replace, value)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """``{dependency: condition}``; the short list form means service_started."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command", [])
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def created_topics(service: dict[str, Any]) -> dict[str, int]:
    """``{topic: partitions}`` from the kafka-topics.sh --create calls of a one-shot service."""
    script = " ".join(command(service))
    topics = {}
    for call in script.split("&&"):
        words = shlex.split(call)
        if "--create" not in words:
            continue
        assert "--if-not-exists" in words, call
        topics[words[words.index("--topic") + 1]] = int(words[words.index("--partitions") + 1])
    return topics


def image_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", maxsplit=1)[-1] else (image, "", "")
    return name, tag


def test_services_exist(services: dict[str, Any], compose: dict[str, Any]) -> None:
    assert set(LONG_RUNNING + ONE_SHOT) <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    assert "redis-data" in compose["volumes"]


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "image" in service:
            _, tag = image_tag(service["image"])
            assert tag and tag != "latest", f"{name}: {service['image']} is not pinned"
    name, tag = image_tag(services["kafka"]["image"])
    assert name == "apache/kafka"
    assert re.fullmatch(r"[34]\.\d+\.\d+", tag), tag
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert image_tag(services["redis"]["image"])[0] == "redis"


def test_kafka_is_single_node_kraft(services: dict[str, Any]) -> None:
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # kafka-storage format needs a UUID

    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert set(protocols.values()) == {"PLAINTEXT"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # Containers reach kafka:9092; the host reaches the published localhost:9094.
    assert "kafka:9092" in advertised.values()
    assert "localhost:9094" in advertised.values()
    assert any(port.rsplit(":", 2)[-2:] == ["9094", "9094"] for port in map(str, services["kafka"]["ports"]))


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert services[name].get("restart") == "unless-stopped", name
    assert "kafka-broker-api-versions.sh --bootstrap-server localhost:9092" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    learner = " ".join(services["learner"]["healthcheck"]["test"])
    port = environment(services["learner"])["LEARNER_METRICS_PORT"]
    assert "urllib" in learner and f"http://localhost:{port}/healthz" in learner
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name


def test_redis_persists(services: dict[str, Any]) -> None:
    redis = services["redis"]
    words = command(redis)
    assert words[words.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]


def test_startup_order(services: dict[str, Any]) -> None:
    assert depends_on(services["kafka-init"]) == {"kafka": "service_healthy"}
    assert depends_on(services["learner"]) == {"kafka-init": "service_completed_successfully",
                                               "redis": "service_healthy"}
    assert depends_on(services["producer"]) == {"kafka-init": "service_completed_successfully"}


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings built from exactly this environment, as `learner run` would build them (the values parse)."""
    for key in list(os.environ):
        if key.startswith("LEARNER_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(value, {}))
    return Settings()


def test_learner_environment_matches_settings(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(services["learner"])
    fields = {key.removeprefix("LEARNER_").lower() for key in env if key.startswith("LEARNER_")}
    assert fields <= set(Settings.model_fields), f"not settings: {sorted(fields - set(Settings.model_fields))}"
    assert set(REQUIRED_SETTINGS) <= fields

    settings = settings_of(env, monkeypatch)
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.key_bytes()  # `learner run` refuses to start unsigned without --insecure-no-signing
    assert not settings.insecure_no_signing
    assert settings.metrics_port > 0


def test_commands_parse(services: dict[str, Any]) -> None:
    parser = build_parser()
    run = parser.parse_args(command(services["learner"]))
    assert run.handler.__name__ == "cmd_run"
    produce = parser.parse_args(command(services["producer"]))
    assert produce.handler.__name__ == "cmd_produce"
    assert environment(services["producer"])["LEARNER_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert produce.topic == environment(services["learner"])["LEARNER_INPUT_TOPIC"]


def test_metrics_port_is_published(services: dict[str, Any]) -> None:
    port = environment(services["learner"])["LEARNER_METRICS_PORT"]
    published = [str(p).rsplit(":", 1)[-1] for p in services["learner"]["ports"]]
    assert port in published


def test_topics_are_created(services: dict[str, Any]) -> None:
    topics = created_topics(services["kafka-init"])
    env = environment(services["learner"])
    for key in ("LEARNER_INPUT_TOPIC", "LEARNER_OUTPUT_TOPIC", "LEARNER_DLQ_TOPIC"):
        assert env[key] in topics, key
    assert topics == {"events": 3, "predictions": 3, "events.dlq": 3, "unlabelled": 3, "labels": 3,
                      "predictions-delayed": 3, "unlabelled.dlq": 3}
    delayed = environment(services["learner-delayed"])
    for key in ("LEARNER_INPUT_TOPIC", "LEARNER_LABELS_TOPIC", "LEARNER_OUTPUT_TOPIC", "LEARNER_DLQ_TOPIC"):
        assert delayed[key] in topics, key


def test_delayed_labels_mode(services: dict[str, Any]) -> None:
    """`docker compose --profile delayed-labels up`: a learner on a labels topic, fed by a delayed producer."""
    learner, producer = services["learner-delayed"], services["producer-delayed"]
    assert learner["profiles"] == producer["profiles"] == ["delayed-labels"]
    parsed = build_parser().parse_args(command(producer))
    assert parsed.labels_topic == environment(learner)["LEARNER_LABELS_TOPIC"] and parsed.label_delay == "50"
    assert parsed.topic == environment(learner)["LEARNER_INPUT_TOPIC"]
    assert environment(learner)["LEARNER_NAME"] != environment(services["learner"])["LEARNER_NAME"]


def test_dockerfile() -> None:
    stripped = (line.strip() for line in DOCKERFILE.read_text().splitlines())
    lines = [line for line in stripped if line and not line.startswith("#")]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases
    for base in bases:
        _, tag = image_tag(base)
        assert tag and tag != "latest" and not tag.startswith("latest"), base
    assert image_tag(bases[-1])[0] == "python"
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert 'ENTRYPOINT ["learner"]' in lines
    assert "EXPOSE 8000" in lines
    # Every file it copies exists (requirements-image.lock pins the installed versions).
    for line in lines:
        if line.upper().startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@system_tools.needs(system_tools.COMPOSE)
def test_docker_compose_config() -> None:
    cli = _compose_cli()
    assert cli is not None
    result = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_one_learner_and_two_serve_replicas(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner learns only; two replicas share its input and publish the predictions (README "Scale out")."""
    learner = environment(services["learner"])
    assert learner["LEARNER_ROLE"] == "learn"
    ports = set()
    for name in ("replica-1", "replica-2"):
        replica = environment(services[name])
        assert replica["LEARNER_ROLE"] == "serve"
        for key in ("LEARNER_NAME", "LEARNER_INPUT_TOPIC", "LEARNER_OUTPUT_TOPIC", "LEARNER_REDIS_URL"):
            assert replica[key] == learner[key], key
        settings = settings_of(replica, monkeypatch)
        assert settings.role == "serve" and settings.consumer_group == "learner.demo.serve"
        assert depends_on(services[name]) == depends_on(services["learner"])
        assert services[name]["healthcheck"] and services[name]["restart"] == "unless-stopped"
        ports.update(str(p).split(":")[0] for p in services[name]["ports"])
    assert len(ports) == 2 and "8000" not in ports


def test_the_challenger_learns_beside_the_learner(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    challenger, learner = environment(services["challenger"]), environment(services["learner"])
    assert challenger["LEARNER_ROLE"] == "challenger" and challenger["LEARNER_CHALLENGER"]
    for key in ("LEARNER_NAME", "LEARNER_INPUT_TOPIC", "LEARNER_REDIS_URL", "LEARNER_SIGNING_KEY"):
        assert challenger[key] == learner[key], key
    settings = settings_of(challenger, monkeypatch)
    assert settings.consumer_group == f"learner.demo.challenger.{settings.challenger}" and settings.live_every == 0
    # A promoted challenger exits 0: it must stay stopped, not start again as a new one.
    assert services["challenger"]["restart"] == "on-failure" and services["challenger"]["healthcheck"]


def test_the_dashboard_reads_only_and_stays_on_loopback(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard = services["dashboard"]
    args = build_parser().parse_args(command(dashboard))
    assert args.handler.__name__ == "cmd_dashboard"
    assert args.dashboard_insecure_no_token and args.dashboard_port == 8050
    assert [str(port) for port in dashboard["ports"]] == ["127.0.0.1:8050:8050"]
    env = environment(dashboard)
    assert not any("SIGNING" in key or "PASSWORD" in key for key in env)  # no key: it verifies and unpickles nothing
    settings = settings_of(env, monkeypatch)
    assert settings.redis_url == environment(services["learner"])["LEARNER_REDIS_URL"]
    assert "http://localhost:8050/healthz" in " ".join(dashboard["healthcheck"]["test"])
