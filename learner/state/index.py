"""The models of one Redis (README "History and timeline"): a set of their names, so that listing them
needs neither SCAN nor a key pattern an ACL user may not have (``learner models --list``, a dashboard).

A learner adds its model's name when it takes the lease; a name stays (a model that stopped
learning still has its snapshots and history) until ``learner index --remove NAME``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from learner.errors import LearnerError
from learner.state.failures import translated
from learner.state.keys import PREFIX
from learner.state.replies import as_text

if TYPE_CHECKING:
    from learner.state.snapshots import SnapshotStore

__all__ = ["INDEX_KEY", "ModelIndex"]

log = logging.getLogger(__name__)

#: The set of model names (outside any model's hash tag: one key, on one node of a Cluster).
INDEX_KEY = PREFIX + "index"


class ModelIndex:
    """Add, list and remove the model names of one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @classmethod
    def of(cls, store: SnapshotStore) -> ModelIndex:
        """The index of the Redis ``store`` is in."""
        return cls(store.redis)

    @translated
    def add(self, name: str) -> None:
        self._redis.sadd(INDEX_KEY, name)

    def note(self, name: str) -> None:
        """Add, or log why not: a model runs whether or not it could be listed."""
        try:
            self.add(name)
        except LearnerError as error:
            log.warning("could not add %r to the index of models (%s): it runs, unlisted", name, error)

    @translated
    def names(self) -> list[str]:
        return sorted(as_text(member) or "" for member in self._redis.smembers(INDEX_KEY))

    @translated
    def remove(self, name: str) -> None:
        self._redis.srem(INDEX_KEY, name)
