"""The librdkafka properties a user gives (``--kafka-config``, ``--kafka-config-file``), checked.

Any librdkafka property passes through to every Kafka client the learner builds (SASL, TLS,
timeouts, ...), except those the service must own to keep its guarantees; those are refused with
one line saying why. Values of secret properties are never shown: not in logs, not in errors,
not in ``/status``.

>>> properties = parse_properties("# a Confluent Cloud client file\\nsecurity.protocol=SASL_SSL\\n"
...                               "sasl.mechanisms = PLAIN\\nsasl.password: s3cret\\n")
>>> properties["sasl.mechanisms"], redacted(properties)["sasl.password"]
('PLAIN', '***')
>>> check_owned({"enable.auto.commit": "true"})
Traceback (most recent call last):
...
learner.errors.UsageError: --kafka-config enable.auto.commit is set by the service: it commits the offsets ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from learner.errors import UsageError

__all__ = ["OWNED", "SECRET", "check_owned", "merge", "parse_properties", "read_properties", "redacted"]

#: Properties the service sets itself, and why a user may not.
OWNED: dict[str, str] = {
    "enable.auto.commit": "it commits the offsets its snapshots hold, never others",
    "enable.auto.offset.store": "it commits the offsets its snapshots hold, never others",
    "group.id": "use --group-id (the learner's group follows its snapshots; replicas share theirs)",
    "isolation.level": "it reads committed messages only: an aborted transaction must never be learned",
    "acks": "every output must be acknowledged by all in-sync replicas before a snapshot counts it",
    "enable.partition.eof": "the service decides how it reads the end of a partition",
    "transactional.id": "the producer is not transactional: outputs are at least once, deduplicated by id",
}

#: Properties whose values are secrets (matched by name: any property with one of these in it).
SECRET = ("password", "secret", "sasl.jaas.config", "ssl.key.pem", "ssl_key", "ssl.keystore.password",
          "sasl.oauthbearer.config", "token")


def parse_properties(text: str) -> dict[str, str]:
    """A Java-properties text: ``key=value`` or ``key: value`` lines, ``#`` and ``!`` comments."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise UsageError(f"line {number} of the Kafka properties is not key=value")
        out[line[:cut].strip()] = line[cut + 1:].strip()
    return out


def read_properties(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"--kafka-config-file {path}: {error.strerror or error}") from None
    try:
        return parse_properties(text)
    except UsageError as error:
        raise UsageError(f"--kafka-config-file {path}: {error}") from None


def merge(file: Mapping[str, str], pairs: Iterable[str]) -> dict[str, str]:
    """The file's properties, then the KEY=VALUE pairs over them (a pair wins)."""
    merged = dict(file)
    for pair in pairs:
        key, _, value = pair.partition("=")
        merged[key.strip()] = value.strip()
    return merged


def check_owned(properties: Mapping[str, str]) -> None:
    """Refuse, in one line, a property the service must own."""
    for key in properties:
        if key in OWNED:
            raise UsageError(f"--kafka-config {key} is set by the service: {OWNED[key]}")


def is_secret(key: str) -> bool:
    return any(word in key for word in SECRET)


def redacted(properties: Mapping[str, object]) -> dict[str, object]:
    """The properties fit for a log line or a status: secret values replaced."""
    return {key: "***" if is_secret(key) else value for key, value in properties.items()}
