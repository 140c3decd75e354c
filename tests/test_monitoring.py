"""The Prometheus side (README "Prometheus, Grafana and alerts"): the alert rules pass ``promtool``'s checks
and unit tests; every series the rules and the Grafana dashboard query is one the service exports; the
provisioning files and the compose stack agree; and a real Prometheus server scraping a test stack (a
learner with a labels topic, a serve replica, a challenger) with the shipped rules gets data for every
query of the dashboard and fires the guard alert after a guard trip."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from learner.runtime.model.metrics import LearnerMetrics
from learner.runtime.replica.metrics import ReplicaMetrics
from learner.state.control import ControlPlane
from tests import system_tools
from tests.conftest import Stack
from tests.test_challengers import challenger
from tests.test_labels import DelayedProducer, labelled, labels_topic  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "streamlearner.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    """Every series name a learner (any role) or a serve replica exports."""
    names = set()
    for metrics in (LearnerMetrics("m"), ReplicaMetrics("m")):
        for family in metrics.registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def queried(expr: str) -> set[str]:
    return set(re.findall(r"\blearner_[a-z_]+\b", expr))


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def annotation_queries() -> list[str]:
    return [annotation["expr"] for annotation in json.loads(DASHBOARD.read_text())["annotations"]["list"]]


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@system_tools.needs(system_tools.PROMETHEUS)
def test_the_alert_rules_pass_promtool() -> None:
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(MONITORING / "prometheus" / "alerts_test.yml")]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "prometheus" / "alerts_test.yml").read_text()))
    defined = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert tested == defined  # every alert has a unit test
    assert {"LearnerGuardTripped", "LearnerDriftDetected", "LearnerNoLeaseHolder", "LearnerLagGrowing",
            "LearnerRedisDown", "LearnerSnapshotsFailing", "LearnerReplicasBehind", "ChallengerBetter"} <= defined


def test_rules_and_dashboard_query_only_exported_series() -> None:
    names = exported()
    for expr in [*rule_exprs(), *dashboard_queries(), *annotation_queries()]:
        assert queried(expr) and queried(expr) <= names, f"{expr} queries {queried(expr) - names}"
    readme = (ROOT / "README.md").read_text()
    assert "learner_snapshot_failures_total" in readme


def test_provisioning_agrees_with_the_dashboard_and_the_compose_stack() -> None:
    board = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [prometheus] = source["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    uids = {panel["datasource"]["uid"] for panel in board["panels"]}
    uids |= {target["datasource"]["uid"] for panel in board["panels"] for target in panel["targets"]}
    assert uids == {prometheus["uid"]}
    assert all(panel["targets"] and panel["title"] for panel in board["panels"])
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grafana, scraper = services["grafana"], services["prometheus"]
    provider = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "streamlearner.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./monitoring/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    mounted = dict(volume.split(":")[:2] for volume in scraper["volumes"])
    assert mounted["./monitoring/prometheus/alerts.yml"] in config["rule_files"]
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    learners = {f"{name}:{service['environment']['LEARNER_METRICS_PORT']}" for name, service in services.items()
                if isinstance(service.get("environment"), dict) and "LEARNER_METRICS_PORT" in service["environment"]}
    assert targets == learners  # every process that serves /metrics is scraped
    for service in (grafana, scraper):  # on the host's loopback only
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    """Debian's ``prometheus``, scraping ``targets`` every second with the shipped rules, evaluated every second."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(RULES)],
                  "scrape_configs": [{"job_name": "streamlearner", "static_configs": [{"targets": targets}]}]}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(["prometheus", f"--config.file={directory / 'prometheus.yml'}",
                                         f"--storage.tsdb.path={directory / 'data'}",
                                         f"--web.listen-address=127.0.0.1:{self.port}"],
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())["data"]

    def wait(self, what: str, check: Any, timeout: float = 180.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if found := check():
                    return found
            except OSError:  # not listening yet
                pass
            assert time.monotonic() < deadline, f"Prometheus never showed {what}"
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.mark.integration
@system_tools.needs(system_tools.PROMETHEUS)
def test_a_real_prometheus_gets_every_dashboard_query_and_fires_the_guard_alert(
        labelled: Stack, tmp_path: Path) -> None:  # noqa: F811
    stack = labelled
    ports = [free_port() for _ in range(3)]
    common = ("--labels-topic", labels_topic(stack), "--snapshot-every-events", "300", "--snapshot-every-seconds", "0")
    feeder = DelayedProducer(stack, per_second=300)
    server = Prometheus(tmp_path, [f"127.0.0.1:{port}" for port in ports])
    try:
        stack.start("--role", "learn", "--model", "logreg", *common, "--live-every-seconds", "1",
                    "--metrics-port", str(ports[0]))
        stack.wait_status(lambda s: s["head"] is not None and s["events_learned"] >= 300)
        stack.start("--role", "serve", "--metrics-port", str(ports[1]))
        challenger(stack, "tree", "--model", "tree", *common, "--metrics-port", str(ports[2]))
        missing: list[str] = []

        def every_query_has_data() -> bool:
            missing[:] = [q for q in dashboard_queries()
                          if not server.get("/api/v1/query", query=q.replace("$model", ".*"))["result"]]
            return not missing
        try:
            server.wait("data for every dashboard query", every_query_has_data)
        except AssertionError:
            raise AssertionError(f"no data for {missing}") from None

        ControlPlane(stack.store()).stop_learning("tripped by the test")

        def guard_alert() -> bool:
            return any(alert["labels"]["alertname"] == "LearnerGuardTripped" and alert["state"] == "firing"
                       for alert in server.get("/api/v1/alerts")["alerts"])
        server.wait("the guard alert firing", guard_alert)
    finally:
        feeder.finish()
        server.stop()
