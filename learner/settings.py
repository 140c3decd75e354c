"""All configuration, in one pydantic-settings model.

Every field reads from ``LEARNER_<FIELD>`` in the environment; the CLI passes the options the
user typed as keyword arguments, which take precedence. The model is frozen: a running service
never changes its configuration behind the operator's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from learner.topics import TopicNames, dead_letter_topic

__all__ = ["CHALLENGERS", "CHAMPIONS", "LEARNERS", "REPLICAS", "ROLE_NAMES", "ReadBy", "RoleName", "Settings", "seconds"]

#: The roles of ``learner run`` (what each runs: :mod:`learner.runtime.roles`).
RoleName = Literal["all", "learn", "serve", "challenger"]
ROLE_NAMES: tuple[RoleName, ...] = ("all", "learn", "serve", "challenger")


@dataclass(frozen=True)
class ReadBy:
    """Metadata of a setting that only some roles read; the others ignore it, and say so when it is given.

    >>> Settings(role="serve", snapshot_keep=5, follow_poll=1.0).ignored()
    ['--snapshot-keep']
    """

    roles: frozenset[str]


LEARNERS = ReadBy(frozenset({"all", "learn", "challenger"}))
REPLICAS = ReadBy(frozenset({"serve"}))
CHALLENGERS = ReadBy(frozenset({"challenger"}))
CHAMPIONS = ReadBy(frozenset({"all", "learn"}))
NAME = r"^[A-Za-z0-9_.\-]+$"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def seconds(value: Any) -> Any:
    """A duration: a number of seconds, or a number with a unit (ms, s, m, h, d).

    >>> seconds("15m"), seconds("1.5s"), seconds(30), seconds("250ms")
    (900.0, 1.5, 30, 0.25)
    """
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].strip():
            try:
                return float(text[: -len(unit)]) * _UNITS[unit]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration: use seconds, or 250ms, 90s, 15m, 2h, 7d") from None


class Settings(BaseSettings):
    """Configuration of ``learner run`` and of the commands that share its options."""

    model_config = SettingsConfigDict(env_prefix="LEARNER_", frozen=True, extra="ignore")

    bootstrap_servers: str = "localhost:9092"
    #: Any librdkafka property as KEY=VALUE (repeatable); in the environment separated by ";" or newlines.
    kafka_config: Annotated[tuple[str, ...], NoDecode] = ()
    #: A Java-properties file of librdkafka properties (as Kafka's tools' --command-config, kcat -F).
    kafka_config_file: Path | None = None

    redis_url: str = "redis://localhost:6379/0"
    redis_username: str | None = None
    #: The password of the Redis user, from a file (its first line) or from LEARNER_REDIS_PASSWORD.
    redis_password_file: Path | None = None
    redis_password: SecretStr | None = None
    redis_ca: Path | None = None
    redis_cert: Path | None = None
    redis_key: Path | None = None
    #: Sentinels as host:port,host:port; the master is --redis-sentinel-master.
    redis_sentinel: str | None = None
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_username: str | None = None
    redis_sentinel_password_file: Path | None = None
    redis_sentinel_password: SecretStr | None = None
    redis_cluster: bool = False
    redis_persistence: Annotated[Literal["warn", "require", "ignore"], LEARNERS] = "warn"

    startup_timeout: float = Field(60.0, ge=0)
    name: str = Field("model", pattern=NAME, description="model name (the Redis key prefix)")
    model: str = "binary"
    input_topic: str = "events"
    output_topic: str = "predictions"
    labels_topic: Annotated[str | None, LEARNERS] = None
    #: Durations in seconds; "90s", "15m", "2h", "7d" also read.
    label_ttl: Annotated[float, BeforeValidator(seconds), LEARNERS] = Field(86_400.0, gt=0)
    label_early_window: Annotated[float, BeforeValidator(seconds), LEARNERS] = Field(1.0, ge=0)
    max_pending: Annotated[int, LEARNERS] = Field(1_000_000, ge=1)
    merge_wait: Annotated[float, BeforeValidator(seconds), LEARNERS] = Field(0.5, ge=0)
    merge_allowance: Annotated[float, BeforeValidator(seconds), LEARNERS] = Field(0.02, ge=0)
    dlq_topic: str | None = None
    group_id: str | None = None
    role: RoleName = "all"
    #: ``--role challenger``: the challenger's name, and where its first start begins (README "Experiments").
    challenger: Annotated[str | None, CHALLENGERS] = Field(None, pattern=NAME)
    from_version: Annotated[int | None, CHALLENGERS] = Field(None, ge=1)
    fork: Annotated[bool, CHALLENGERS] = False
    #: ``--auto-promote``: the champion promotes a challenger that is better by a confidence sequence.
    auto_promote: Annotated[bool, CHAMPIONS] = False
    auto_promote_margin: Annotated[float, CHAMPIONS] = Field(0.0, ge=0)
    auto_promote_confidence: Annotated[float, CHAMPIONS] = Field(0.95, gt=0, lt=1)
    auto_promote_min_paired: Annotated[int, CHAMPIONS] = Field(1000, ge=2)
    #: How often a learner publishes its live model for serve replicas; default 2 s with
    #: --role learn, off with --role all (0 turns it off).
    live_every_seconds: Annotated[float | None, LEARNERS] = Field(None, ge=0)
    #: How often a serve replica looks for a new model when no announcement came.
    follow_poll: Annotated[float, REPLICAS] = Field(0.5, gt=0)

    snapshot_every_events: Annotated[int, LEARNERS] = Field(100_000, ge=0)
    snapshot_every_seconds: Annotated[float, LEARNERS] = Field(60.0, ge=0)
    snapshot_keep: Annotated[int, LEARNERS] = Field(20, ge=1)
    snapshot_in_background: Annotated[bool, LEARNERS] = True

    signing_key: SecretStr | None = None
    insecure_no_signing: bool = False
    force: bool = False

    lease_ttl: Annotated[float, LEARNERS] = Field(10.0, gt=0.5)

    max_event_bytes: int = Field(1_000_000, ge=64)
    batch_size: int = Field(2000, ge=1)
    gateway_priority: Annotated[Literal["idle", "low", "normal"], LEARNERS] = "low"
    session_timeout_ms: int = Field(10_000, ge=1000)

    stop_after_events: Annotated[int, LEARNERS] = Field(0, ge=0)

    guard_margin: Annotated[float | None, LEARNERS] = Field(None, gt=0)

    drift_window: Annotated[int, LEARNERS] = Field(5000, ge=0)
    #: Events the performance detector is not fed at first; None: 1,000 for classifiers, 2,000 for regressors.
    drift_warmup: Annotated[int | None, LEARNERS] = Field(None, ge=0)
    snapshot_on_drift: Annotated[bool, LEARNERS] = True

    metrics_port: int = Field(0, ge=0, le=65535)
    #: How often a learner appends a point to its metric history (README "History and timeline").
    history_every_seconds: Annotated[float, BeforeValidator(seconds), LEARNERS] = Field(5.0, gt=0)

    #: ``learner dashboard`` (README "Dashboard"): where it listens, the token a non-loopback address
    #: requires, and how many requests it serves at once.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8050, ge=0, le=65535)
    dashboard_token_file: Path | None = None
    dashboard_insecure_no_token: bool = False
    dashboard_max_connections: int = Field(64, ge=1)
    #: From the environment as a comma-separated list: ``LEARNER_METRIC=Accuracy,LogLoss``.
    metric: Annotated[tuple[str, ...], NoDecode, LEARNERS] = ()

    @field_validator("metric", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("kafka_config", mode="before")
    @classmethod
    def _semicolon_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.replace("\n", ";").split(";") if item.strip())
        return value

    @field_validator("kafka_config")
    @classmethod
    def _key_value(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise ValueError("each item is KEY=VALUE, and one is not")  # never echo it: it may be a secret
        return value

    @model_validator(mode="after")
    def _signing_is_explicit(self) -> Settings:
        if self.signing_key is not None and not self.signing_key.get_secret_value():
            raise ValueError("--signing-key is empty")
        return self

    @model_validator(mode="after")
    def _topics_are_distinct(self) -> Settings:
        # One topic in two roles would feed the service its own output, or read events as labels.
        roles = {"--input-topic": self.input_topic, "--output-topic": self.output_topic,
                 "--dlq-topic": self.dead_letter_topic}
        if self.labels_topic is not None:
            roles["--labels-topic"] = self.labels_topic
        seen: dict[str, str] = {}
        for option, topic in roles.items():
            if topic in seen:
                raise ValueError(f"{seen[topic]} and {option} are both {topic!r}: each topic has one role")
            seen[topic] = option
        return self

    @model_validator(mode="after")
    def _challenger_is_named(self) -> Settings:
        if self.role == "challenger" and self.challenger is None:
            raise ValueError("--role challenger needs --challenger NAME")
        if self.role == "challenger" and self.live_every_seconds:
            raise ValueError("a challenger publishes no live model: --live-every-seconds does not apply")
        return self

    @property
    def lineage(self) -> str:
        """The lineage this process learns, as metrics label it: the model's name, or ``name/challenger``."""
        return self.name if self.challenger is None or self.role != "challenger" else f"{self.name}/{self.challenger}"

    @property
    def dead_letter_topic(self) -> str:
        """Where rejected input goes; defaults to ``<input-topic>.dlq``."""
        return self.dlq_topic or dead_letter_topic(self.input_topic)

    @property
    def consumer_group(self) -> str:
        """The consumer group; defaults to ``learner.<name>`` (``learner.<name>.serve`` for replicas)."""
        return self.group_id or TopicNames(self.name).group(self.role, self.challenger)

    @property
    def live_every(self) -> float:
        """Seconds between live publications (0: none)."""
        if self.live_every_seconds is not None:
            return self.live_every_seconds
        if self.role == "challenger":
            return 0.0  # nothing serves a challenger's model until it is promoted
        return 2.0 if self.role == "learn" else 0.0

    def ignored(self) -> list[str]:
        """The options given (on the command line or in the environment) that this role does not read."""
        fields = type(self).model_fields
        return [f"--{name.replace('_', '-')}" for name in fields if name in self.model_fields_set
                and any(isinstance(m, ReadBy) and self.role not in m.roles for m in fields[name].metadata)]

    def key_bytes(self) -> bytes | None:
        """The HMAC key, or None when the operator chose ``--insecure-no-signing``."""
        if self.signing_key is not None:
            return self.signing_key.get_secret_value().encode()
        return None
