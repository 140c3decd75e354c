"""The announcement channel: a nudge to serve replicas that the head, a rollback or the live model changed.

Announcements carry no state (the reader looks at Redis itself), so a lost one costs nothing but
time: replicas also look every ``--follow-poll`` seconds. Publishing is best effort for the same
reason: a Redis user that may not publish (an ACL without ``&learner:*``) leaves replicas to their
polling, and the write it follows has already succeeded.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis import exceptions as redis_errors

from learner.state.keys import Keys

__all__ = ["Announcements", "announce"]

log = logging.getLogger(__name__)

_warned: set[str] = set()


def announce(client: Any, keys: Keys, what: str) -> None:
    """Tell the replicas (best effort): ``what`` is ``head``, ``rollback`` or ``live``."""
    try:
        client.publish(keys.announce, what)
    except (redis.RedisError, redis_errors.RedisClusterException) as error:
        if keys.name not in _warned:  # once per process: replicas fall back to polling
            _warned.add(keys.name)
            log.warning("could not announce a new model to serve replicas (%s): they notice it by polling", error)


class Announcements:
    """A subscription to one model's channel; :meth:`wait` returns when something was announced."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self._client, self._keys = client, keys
        self._pubsub: Any = None

    def wait(self, timeout: float) -> bool:
        """True when an announcement came within ``timeout`` seconds; False on silence or a failure
        (then the caller polls, and the subscription is opened again on the next call)."""
        try:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self._keys.announce)
            message = self._pubsub.get_message(timeout=timeout)
            if message is None:
                return False
            while self._pubsub.get_message(timeout=0) is not None:  # several at once are one look
                pass
            return True
        except (redis.RedisError, redis_errors.RedisClusterException, OSError, AttributeError) as error:
            log.debug("announcements unavailable (%s): polling", error)
            self.close()
            time.sleep(timeout)  # never a tight loop while Redis is away
            return False

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # closing a broken connection: nothing to do
                log.debug("closing the subscription failed", exc_info=True)
            self._pubsub = None
