"""redis-py's errors translated into the learner's, at the boundary of the Redis-state layer.

Every public method of the state classes is wrapped with :func:`translated`, so the rest of the
learner sees :class:`~learner.errors.RedisUnavailable` (retry later: refused, timed out, failing
over, loading), :class:`~learner.errors.RedisRefused` (fix the configuration: authentication, ACL,
out of memory) or another :class:`~learner.errors.StateError`, never a redis-py class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from redis import exceptions as redis_errors

from learner.errors import RedisRefused, RedisUnavailable, StateError

__all__ = ["translate", "translated"]

P = ParamSpec("P")
R = TypeVar("R")

_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError,
                redis_errors.ReadOnlyError, redis_errors.MasterDownError, redis_errors.TryAgainError,
                redis_errors.ClusterDownError, redis_errors.ClusterError, redis_errors.RedisClusterException)
_REFUSED = (redis_errors.AuthenticationError, redis_errors.AuthorizationError, redis_errors.NoPermissionError,
            redis_errors.OutOfMemoryError)


def translate(error: Exception) -> StateError:
    """The learner's error for one of redis-py's.

    >>> translate(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    RedisUnavailable('Redis does not answer: Error 111 connecting to 127.0.0.1:1. Connection refused.')
    """
    text = str(error).strip() or type(error).__name__
    # Authentication and ACL errors subclass ConnectionError in redis-py: look at them first.
    if isinstance(error, _REFUSED):
        return RedisRefused(f"Redis refused: {text}")
    if isinstance(error, _UNAVAILABLE):
        return RedisUnavailable(f"Redis does not answer: {text}")
    return StateError(f"Redis error: {text}")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Wrap a state method so that redis-py's errors leave it as the learner's."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.RedisError, redis_errors.RedisClusterException) as error:
            raise translate(error) from None

    return wrapper
