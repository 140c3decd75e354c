"""Command-line options that map one-to-one onto ``Settings`` fields.

Each option is declared once here with its help; a command lists the fields it takes. Values the
user did not type are left out, so pydantic-settings falls back to ``LEARNER_<FIELD>`` and then to
the field's default: the order of precedence users expect (flag, environment, default).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from learner.settings import Settings

__all__ = ["HELP", "KAFKA", "REDIS", "add", "env_flag", "from_env", "settings_from"]

#: The options of every command that talks to Kafka, and of every command on a model's state in Redis.
KAFKA = ("bootstrap_servers", "kafka_config", "kafka_config_file")
REDIS = ("redis_url", "redis_username", "redis_password_file", "redis_ca", "redis_cert", "redis_key", "redis_sentinel",
         "redis_sentinel_master", "redis_sentinel_username", "redis_sentinel_password_file", "redis_cluster",
         "name", "signing_key", "insecure_no_signing")

HELP: dict[str, str] = {
    "bootstrap_servers": "Kafka bootstrap servers, host:port[,host:port]",
    "kafka_config": "a librdkafka property for every Kafka client, KEY=VALUE (repeatable), e.g. "
                    "security.protocol=SASL_SSL; in the environment separated by ';'",
    "kafka_config_file": "a Java-properties file of librdkafka properties (as kafka-*.sh --command-config, kcat -F)",
    "redis_url": "Redis URL: redis://[user:password@]host:port/db, rediss:// for TLS",
    "redis_username": "Redis ACL user (instead of the URL's)",
    "redis_password_file": "file whose first line is the Redis password (or LEARNER_REDIS_PASSWORD)",
    "redis_ca": "CA certificate file to verify Redis's TLS certificate (rediss://)",
    "redis_cert": "client certificate file for Redis TLS (mutual TLS)",
    "redis_key": "client key file for Redis TLS (mutual TLS)",
    "redis_sentinel": "Redis Sentinels, host:port[,host:port]: the master is found through them",
    "redis_sentinel_master": "the master's name in Sentinel",
    "redis_sentinel_username": "Sentinel's own ACL user",
    "redis_sentinel_password_file": "file whose first line is Sentinel's own password (or LEARNER_REDIS_SENTINEL_PASSWORD)",
    "redis_cluster": "Redis Cluster: the URL is one of its nodes",
    "redis_persistence": "without Redis persistence the fencing epoch can go backwards at a restart: "
                         "warn, require (refuse to start), ignore",
    "startup_timeout": "seconds to wait for Kafka and Redis at start-up (they may start after the learner)",
    "name": "model name: the key of its snapshots in Redis",
    "model": "a preset (see `learner models`) or package.module:callable returning a River estimator",
    "input_topic": "topic of input events",
    "output_topic": "topic the predictions are published to",
    "labels_topic": "topic of delayed labels, {\"id\": ..., \"y\": ...}: learned with the features the event was "
                    "predicted with",
    "label_ttl": "how long an event's features wait for their label (seconds, or 90s, 15m, 2h, 7d)",
    "label_early_window": "how long a label that came before its event waits for it (a producer race)",
    "max_pending": "at most this many events wait for their labels (the oldest expire first)",
    "merge_wait": "with a labels topic: how long a quiet partition may hold back the timestamp-ordered merge",
    "merge_allowance": "with a labels topic: how long after its timestamp a message may still reach the service "
                       "and take its place in the merged order (a quiet partition holds the others back this long)",
    "dlq_topic": "dead-letter topic (default: <input-topic>.dlq)",
    "group_id": "consumer group (default: learner.<name>; learner.<name>.serve for --role serve)",
    "role": "all: predict, publish and learn; learn: learn and evaluate, publish no predictions (serve replicas "
            "do); serve: a prediction-only replica in its consumer group, following the learner's models; "
            "challenger: learn the champion's stream beside it as --challenger NAME, publishing nothing",
    "challenger": "the challenger's name (with --role challenger; elsewhere: act on that challenger's lineage)",
    "from_version": "a new challenger starts from this champion version's offsets (default: the champion's head)",
    "auto_promote": "promote a challenger by itself once it is better than this champion by a test that stays "
                    "valid when checked continuously (README \"Automatic promotion\")",
    "auto_promote_margin": "with --auto-promote: how much lower the challenger's per-event loss must be (loss units)",
    "auto_promote_confidence": "with --auto-promote: the confidence level of the sequential test",
    "auto_promote_min_paired": "with --auto-promote: paired events a challenger needs before it can be promoted",
    "fork": "a new challenger starts from that version's own model instead of a fresh one",
    "live_every_seconds": "how often the learner publishes its live model for serve replicas (default: 2 with "
                          "--role learn, 0 = off with --role all)",
    "follow_poll": "serve replica: seconds between looks for a new model when no announcement came",
    "snapshot_every_events": "snapshot after this many events (0: never by count)",
    "snapshot_every_seconds": "snapshot after this many seconds (0: never by time)",
    "snapshot_keep": "keep this many newest snapshots (pinned ones are always kept)",
    "snapshot_in_background": "pickle snapshots in a forked child so the stream does not pause",
    "signing_key": "secret for the HMAC-SHA256 signatures of snapshots",
    "insecure_no_signing": "write and load unsigned snapshots (pickle is code execution: trusted Redis only)",
    "force": "load a snapshot written by another river version",
    "lease_ttl": "seconds the single-writer lease lasts without renewal; a standby takes over after it",
    "max_event_bytes": "larger input messages are dead-lettered unread",
    "batch_size": "consume up to this many messages at a time",
    "gateway_priority": "CPU priority of the gateway process: low (nice 10: the model wins a contested CPU), "
                        "idle (only CPU time nothing else uses: a dedicated host), normal",
    "session_timeout_ms": "Kafka consumer session timeout",
    "stop_after_events": "exit (after a last snapshot) once this many input events are done: backfills, demos (0: never)",
    "guard_margin": "stop learning and roll back to the newest pinned snapshot when the rolling metric is this much "
                    "worse (off by default)",
    "drift_window": "input events per input-drift window, compared with a reference window (0: off)",
    "drift_warmup": "labelled events the performance-drift detector is not fed at first (default: 1000 for a "
                    "classifier, 2000 for a regressor, whose loss is scaled by its mean error over the second 1000)",
    "snapshot_on_drift": "take a snapshot tagged with the reason when drift is detected",
    "metrics_port": "HTTP port for /metrics, /healthz, /readyz, /status (0: off)",
    "history_every_seconds": "how often the learner appends its figures to its metric history (seconds, or 500ms, 1m)",
    "dashboard_host": "address the dashboard listens on; anything but loopback needs --token-file",
    "dashboard_port": "port the dashboard listens on (0: any free one)",
    "dashboard_token_file": "file whose first line is the token a visitor must present (?token=... once, then a "
                            "cookie): required to listen beyond loopback",
    "dashboard_insecure_no_token": "listen beyond loopback without a token, still answering only a Host of localhost or "
                                   "127.0.0.1: for a container published on the host's loopback only",
    "dashboard_max_connections": "connections served at once; a request on one more is answered 503 (bounds memory "
                                 "and CPU however many tabs are open)",
    "metric": "a river.metrics class to evaluate online, e.g. Accuracy (repeatable)",
}


#: Options that take a duration (seconds, or 90s, 15m, 2h, 7d): read as text, parsed by the settings.
DURATIONS = frozenset({"label_ttl", "label_early_window", "merge_wait", "merge_allowance", "history_every_seconds"})


def add(parser: argparse.ArgumentParser, *fields: str, drop: str = "") -> None:
    """Add the options of ``fields`` to a command, typed from the Settings model; ``drop`` is a prefix the
    flags leave out (``learner dashboard``'s ``--host`` sets ``dashboard_host``)."""
    for field in fields:
        info = Settings.model_fields[field]
        flag = "--" + field.removeprefix(drop).replace("_", "-")
        env = "LEARNER_" + field.upper()
        text = f"{HELP[field]} [env {env}]"
        if info.annotation is bool:
            action = argparse.BooleanOptionalAction if info.default else "store_true"
            parser.add_argument(flag, dest=field, action=action, default=argparse.SUPPRESS, help=text)
        elif field in ("metric", "kafka_config"):
            parser.add_argument(flag, dest=field, action="append", default=argparse.SUPPRESS,
                                metavar="NAME" if field == "metric" else "KEY=VALUE", help=text)
        else:
            kind: Callable[[str], Any] = (str if field in DURATIONS else int if info.annotation is int
                                          else float if info.annotation is float else str)
            default = "" if info.default is None else f" (default: {info.default})"
            parser.add_argument(flag, dest=field, type=kind, default=argparse.SUPPRESS,
                                metavar=field.split("_")[-1].upper(), help=text + default)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the options typed, then the environment, then the defaults."""
    typed: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    for repeated in ("metric", "kafka_config"):
        if repeated in typed:
            typed[repeated] = tuple(typed[repeated])
    return Settings(**typed)


def from_env(option: str, default: Any = None) -> Any:
    """Default of a command argument that is not a setting: ``LEARNER_<OPTION>``, else ``default``."""
    return os.environ.get("LEARNER_" + option.upper().replace("-", "_"), default)


def env_flag(option: str) -> bool:
    """A flag's default from ``LEARNER_<OPTION>``: 1, true, yes or on."""
    return str(from_env(option, "")).lower() in ("1", "true", "yes", "on")
