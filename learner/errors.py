"""The errors the learner raises on purpose, as one tree with one base for the command line to catch.

    LearnerError                  one line for the operator; the CLI exits 1 (UsageError: 2)
    ├── UsageError                options that cannot work together, or a feature not built yet
    ├── ModelSpecError            --model names nothing we can build
    ├── MetricError               --metric names no River metric, or one that does not fit
    ├── FeedError                 learner produce: the dataset or file cannot be read
    ├── LocalStackError           learner local: a server could not be started
    ├── GatewayFailed             the gateway process reported a failure, or died
    ├── ProtocolError             a message between the two processes that the receiver does not know
    ├── LeaseLost                 another process holds the model now
    ├── NoServiceAnswered         no running service answered an operator's request in time
    └── StateError                the model's state in Redis
        ├── RedisUnavailable      Redis does not answer (refused, timed out, failing over): retry later
        ├── RedisRefused          Redis answers no: authentication, ACL, out of memory (fix the setup)
        ├── SnapshotMissing       no such version (never written, or deleted)
        ├── SnapshotRefused       the snapshot exists but is never unpickled
        │   ├── BadSignature      unsigned, signed with another key, or tampered with
        │   ├── CorruptSnapshot   the blob does not match its checksum, or does not unpickle
        │   └── OtherRiverVersion written by another river version (--force loads it)
        ├── WriteRefused          the snapshot write script said no
        │   ├── Fenced            the lease epoch moved: another writer holds the model
        │   ├── HeadMoved         the head is not the version the writer descends from
        │   └── RolledBack        a rollback happened after the writer last looked
        └── HistoryRefused        an operator command the history refuses (delete the head, ...)

The stream package has its own base, :class:`stream.errors.StreamError` (it knows nothing of
this package); the CLI catches both. Third-party errors (redis-py's, confluent-kafka's, pickle's)
are translated into these where they are raised, never matched by their text later.
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "CorruptSnapshot",
    "FeedError",
    "Fenced",
    "GatewayFailed",
    "HeadMoved",
    "HistoryRefused",
    "LearnerError",
    "LeaseLost",
    "LocalStackError",
    "MetricError",
    "ModelSpecError",
    "NoServiceAnswered",
    "OtherRiverVersion",
    "ProtocolError",
    "RedisRefused",
    "RedisUnavailable",
    "RolledBack",
    "SnapshotMissing",
    "SnapshotRefused",
    "StateError",
    "UsageError",
    "WriteRefused",
]


class LearnerError(Exception):
    """Base of every error the learner raises on purpose; ``str()`` is one line for the operator."""


class UsageError(LearnerError):
    """A command line that is well-formed but asks for something impossible (exit code 2)."""


class ModelSpecError(LearnerError, ValueError):
    """``--model`` names nothing we can build."""


class MetricError(LearnerError, ValueError):
    """A ``--metric`` name that River does not have, or that does not fit the model."""


class FeedError(LearnerError, ValueError):
    """The dataset or file given to ``learner produce`` cannot be read."""


class LocalStackError(LearnerError):
    """A server of the embedded stack could not be found or started."""


class GatewayFailed(LearnerError):
    """The gateway process reported a failure (its one line), or died."""


class ProtocolError(LearnerError):
    """A message between the model process and the gateway that the receiver does not handle."""


class LeaseLost(LearnerError):
    """Another process holds the model now; this one must stop learning at once, without writing."""


class NoServiceAnswered(LearnerError):
    """An operator's request (``learner snapshot``) that no running service answered in time."""


class StateError(LearnerError):
    """Base of the errors about a model's state in Redis."""


class RedisUnavailable(StateError):
    """Redis did not answer (refused, timed out, failed over)."""


class RedisRefused(StateError):
    """Redis answered with a refusal that retrying will not fix: authentication, ACL, out of memory."""


class SnapshotMissing(StateError):
    """The requested version does not exist (or was deleted by retention)."""


class SnapshotRefused(StateError):
    """The snapshot exists but must not be loaded; it was not unpickled."""


class BadSignature(SnapshotRefused):
    """The metadata's signature does not verify: unsigned, another key, or tampered with."""


class CorruptSnapshot(SnapshotRefused):
    """The blob does not match the signed checksum, or it does not unpickle."""


class OtherRiverVersion(SnapshotRefused):
    """Written by another river version; ``--force`` loads it anyway."""


class WriteRefused(StateError):
    """The snapshot write was refused by the script that guards the head."""


class Fenced(WriteRefused):
    """The lease epoch is not the writer's: another process holds the model."""


class HeadMoved(WriteRefused):
    """The head is no longer the version the writer descends from (a rollback, or another writer)."""


class RolledBack(WriteRefused):
    """A rollback happened since the writer last looked, even one to the head itself."""


class HistoryRefused(StateError):
    """An operator command the history does not allow: deleting the head or a pinned version."""
