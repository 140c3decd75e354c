"""Where the merge put its late messages (README "Delayed labels"), kept so that a replay puts them there too.

With a labels topic, events and labels are learned in an order computed from the logs alone,
except for a **late** message: one that reached the gateway after a message stamped later than it
had already gone (its partition was taken as quiet). The merge then orders it right after what
went last, which depends on timing. Its key is recorded here before any prediction that follows
it is published, and the merge is given the recorded keys when it starts or seeks, so a restart,
a takeover or a rollback with replay learns such a message exactly where the first run did.

A capped Redis stream, like the audit log: late messages are rare (they mean a message came more
than ``--merge-allowance`` after its timestamp, or after its partition went idle), and only what
a replay can still reach matters. Each entry carries the writer's lease epoch: if a deposed writer
recorded a message too, the current lineage's entry wins.

>>> entry = encode(("events.labels", 2, 81), (100, 1, 0, 7, 0, 2, 81), epoch=3)
>>> decode(entry)
(('events.labels', 2, 81), (100, 1, 0, 7, 0, 2, 81), 3)
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from learner.state.failures import translated

__all__ = ["MAX_ENTRIES", "LateLog", "decode", "encode"]

#: Late messages kept (approximately) per model; the oldest are trimmed first.
MAX_ENTRIES = 100_000

#: (topic, partition, offset)
Where = tuple[str, int, int]
#: A key of the merge (``stream.merge.Key``: the state layer does not import Kafka's side), kept as is.
Key = tuple[int, ...]


def encode(where: Where, key: Key, epoch: int) -> dict[str, bytes]:
    return {"m": orjson.dumps([*where, list(key), epoch])}


def decode(fields: dict[Any, Any]) -> tuple[Where, Key, int]:
    """An entry as Redis returns it (bytes keys), or as :func:`encode` made it."""
    topic, partition, offset, key, epoch = orjson.loads(fields[b"m"] if b"m" in fields else fields["m"])
    return (topic, partition, offset), tuple(key), epoch


class LateLog:
    """Record and read the late messages' keys of one model."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis = client
        self.key = key

    @translated
    def record(self, decisions: list[tuple[Where, Key]], epoch: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for where, key in decisions:
            pipe.xadd(self.key, encode(where, key, epoch), maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

    @translated
    def load(self) -> dict[Where, Key]:
        """Every recorded message's key; for a message recorded more than once, the newest epoch's."""
        chosen: dict[Where, tuple[int, Key]] = {}
        last = "-"
        while True:
            rows: list[tuple[bytes, dict[bytes, bytes]]] = self._redis.xrange(self.key, min=last, count=10_000)  # type: ignore[assignment]
            if not rows:
                break
            for _, fields in rows:
                where, key, epoch = decode(fields)
                if where not in chosen or epoch >= chosen[where][0]:
                    chosen[where] = (epoch, key)
            last = "(" + rows[-1][0].decode()
        return {where: key for where, (_, key) in chosen.items()}
