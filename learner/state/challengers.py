"""The challengers of a model (README "Experiments"): which exist, and where and how each began.

A challenger is registered once, by its first start, in one hash of the model
(:attr:`~learner.state.keys.Keys.challengers`): its spec, the champion version whose offsets it
starts from, and whether it began from that version's model (``fork``). Later starts read the
registration back, so a challenger killed before its first snapshot begins again from exactly the
same place. Its lineage (snapshots, head, lease, ...) lives under keys of its own
(``Keys(name, challenger)``); removing it deletes both.

>>> Enrolment("trees", "tests.models:tree", 3, False, 1.5).to_json()
b'{"challenger":"trees","created":1.5,"fork":false,"from_version":3,"spec":"tests.models:tree"}'
>>> Enrolment.from_json(Enrolment("trees", "logreg", 3, True, 1.5).to_json()).fork
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson
import redis

from learner.errors import StateError
from learner.state.failures import translated
from learner.state.keys import Keys
from learner.state.replies import as_bytes

__all__ = ["Challengers", "Enrolment"]


@dataclass(frozen=True)
class Enrolment:
    """How a challenger began: its spec, the champion version it started from, fresh or forked."""

    challenger: str
    spec: str
    from_version: int
    fork: bool
    created: float

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> Enrolment:
        """A registration as stored; a StateError (one line) when it is not one.

        >>> Enrolment.from_json(b'{"spec": "logreg"}')
        Traceback (most recent call last):
        ...
        learner.errors.StateError: a challenger's registration is unreadable (...): remove it
        """
        try:
            return cls(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError) as error:
            raise StateError(f"a challenger's registration is unreadable ({error}): remove it") from None


class Challengers:
    """The registry of one model's challengers."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.key, self.retired_key = keys.challengers, keys.retired
        self.name = keys.name

    @translated
    def get(self, challenger: str) -> Enrolment | None:
        raw = as_bytes(self._redis.hget(self.key, challenger))
        return Enrolment.from_json(raw) if raw else None

    @translated
    def enrol(self, enrolment: Enrolment) -> Enrolment:
        """Register ``enrolment`` unless one of that name exists; the registration that stands."""
        self._redis.hsetnx(self.key, enrolment.challenger, enrolment.to_json())
        standing = self.get(enrolment.challenger)
        assert standing is not None  # just written, or written by a process that raced us
        return standing

    @translated
    def count(self) -> int:
        return int(self._redis.hlen(self.key))

    @translated
    def all(self) -> list[Enrolment]:
        rows: dict[bytes, bytes] = self._redis.hgetall(self.key)  # type: ignore[assignment]
        return sorted((Enrolment.from_json(raw) for raw in rows.values()), key=lambda e: e.challenger)

    @translated
    def retire(self, challenger: str, at: float) -> None:
        """Unregister a promoted challenger (its running process sees that and stops) and remember it, so that
        a process of it started again (a supervisor's restart) says so instead of registering anew."""
        pipe = self._redis.pipeline(transaction=False)  # both in one round trip; same slot, in this order
        pipe.hdel(self.key, challenger)
        pipe.hset(self.retired_key, challenger, f"{at:.3f}")
        pipe.execute()

    @translated
    def is_retired(self, challenger: str) -> bool:
        return bool(self._redis.hexists(self.retired_key, challenger))

    @translated
    def remove(self, challenger: str) -> bool:
        """Delete the registration (freeing the name) and every key of the challenger's lineage; whether it existed."""
        existed = bool(self._redis.hdel(self.key, challenger))
        self._redis.hdel(self.retired_key, challenger)
        return self.delete_lineage(challenger) or existed

    @translated
    def delete_lineage(self, challenger: str) -> bool:
        """Delete every key of the challenger's lineage (snapshots, head, lease, ...); whether there were any."""
        prefix = Keys(self.name, challenger).prefix
        doomed = list(self._redis.scan_iter(match=f"{_glob_escaped(prefix)}*", count=500))
        for start in range(0, len(doomed), 500):
            self._redis.delete(*doomed[start:start + 500])
        return bool(doomed)


def _glob_escaped(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern (names may hold none of ``*?[]``, but ``{`` is kept).

    >>> _glob_escaped("learner:{a}:challenger:b:")
    'learner:{a}:challenger:b:'
    """
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
