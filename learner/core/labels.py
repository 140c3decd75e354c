"""Delayed labels (README "Delayed labels"): the features an event was predicted with, waiting for its label.

An event that comes without its label is predicted as usual, and its features wait here, with
the prediction made at that moment; when its label comes (on the labels topic, matched by id),
the model learns exactly those features, never features sent again, and the online metric scores
that prediction. Pure: time is the stream's own (the merged timestamps of events and labels, in
milliseconds), so a replay expires and joins exactly as the first run did. Part of the snapshot.

The cases real streams have, each counted:

- **joined**: the label found its features;
- **expired**: features older than ``ttl_ms`` (or beyond ``max_pending``, oldest first) were
  dropped; a label that comes for them later is counted **expired** too, and lost;
- **unknown**: a label for an id never seen (after waiting ``early_ms`` for its event);
- **duplicate**: a second label for an id already joined (the first one wins);
- **early**: a label that came before its event (a producer race) and met it: it waited (up to
  ``early_ms``), the event was predicted and at once joined (counted as joined too);
- **replaced**: an event whose id was already waiting: the newer one waits, the older is dropped;
- **rejected**: a label of the wrong type for the model (text for a regressor); its features wait on.

Features are stored compactly (about 150 bytes for 10 numbers, see BENCHMARKS.md): the names once
per set of feature names and types, the values packed as doubles, integers and booleans; features
with text, and other predictions, fall back to JSON or pickle.

>>> join = LabelJoin(ttl_ms=60_000, max_pending=1000, early_ms=1000)
>>> join.arrive("a", {"amount": 12.5, "new": True}, {False: 0.8, True: 0.2}, ts=1_000)
>>> joined = join.label("a", False, ts=2_000)
>>> joined.x, joined.outcome, joined.waited_ms
({'amount': 12.5, 'new': True}, {False: 0.8, True: 0.2}, 1000)
>>> join.label("a", True, ts=2_500).kind, join.label("zz", True, ts=2_600), join.counts["unknown"]
('duplicate', None, 0)
>>> [lost.kind for lost in join.advance(ts=10_000)]
['unknown']
"""

from __future__ import annotations

import pickle
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

__all__ = ["COUNTS", "Joined", "LabelJoin", "Lost"]

#: What the join counts (each also a value of ``learner_labels_total{outcome}``).
COUNTS = ("received", "joined", "expired", "unknown", "duplicate", "early", "replaced", "rejected")

#: Joined and expired ids remembered, to tell a duplicate or an expired label from an unknown one.
TOMBSTONES = 200_000

_HEADER = struct.Struct("<QqHHH")  # seq, timestamp (ms), feature schema, prediction schema, prediction bytes
_OTHER = 0xFFFF  # schema id of the fallback encodings (JSON features, pickled predictions)
_CODES = {float: "d", int: "q", bool: "?"}
_PACKABLE = frozenset(_CODES)
_JOINED, _EXPIRED = 1, 2
_NEVER = -(1 << 62)  # a timestamp before any other


class Joined(NamedTuple):
    """A label that found its features: learn ``x`` with the label, score ``outcome`` against it.

    (A named tuple, not a dataclass: one is made per label, on the model's core.)
    """

    x: dict[str, Any]
    outcome: Any  # what the model answered at prediction time (see learner.core.step.Outcome)
    waited_ms: int
    y: Any = None  # the label, when it came first (an early label joined by its event)
    kind: str = "joined"


@dataclass(frozen=True, slots=True)
class Lost:
    """A label that is lost: why, and where it came from (for its dead letter)."""

    kind: str  # duplicate, expired, unknown
    id: Any
    y: Any
    reason: str
    source: tuple[int, int] | None = None  # (partition, offset) on the labels topic


class LabelJoin:
    """Waiting features, early labels, and what became of the labels (see the module's docstring)."""

    def __init__(self, ttl_ms: int, max_pending: int, early_ms: int) -> None:
        self.ttl_ms, self.max_pending, self.early_ms = ttl_ms, max_pending, early_ms
        self.counts = dict.fromkeys(COUNTS, 0)
        self.delays_ms: list[int] = []  # of the joins since the last read (for the histogram)
        self._pending: dict[Any, bytes] = {}
        self._order: deque[Any] = deque()  # ids in arrival order; an id joined or replaced leaves a stale entry
        self._next_seq = 0
        self._front_seq = 0
        # No entry in _order is older than this: advance() looks further only when it could be expired.
        self._front_ts = _NEVER
        self._early: dict[Any, tuple[Any, int, tuple[int, int] | None]] = {}
        self._early_order: deque[Any] = deque()
        self._done: dict[Any, tuple[int, int]] = {}  # id -> (what became of it, when it was remembered)
        self._done_order: deque[tuple[Any, int]] = deque()
        self._remembered = 0
        self._schemas: list[tuple[Any, ...]] = []
        self._schema_ids: dict[Any, int] = {}
        self._structs: list[struct.Struct] = []

    @property
    def waiting(self) -> int:
        return len(self._pending)

    # -- events ---------------------------------------------------------------------------------

    def arrive(self, key: Any, x: dict[str, Any], outcome: Any, ts: int) -> Joined | None:
        """An unlabelled event was predicted: its features wait (or join an early label at once).

        Returns the join when a label had come first (learn it now); None otherwise.
        """
        early = self._early.pop(key, None)
        if early is not None:
            y, _, _ = early
            self.counts["early"] += 1
            self._joined(key, 0)
            return Joined(x, outcome, 0, y)
        if key in self._pending:
            self.counts["replaced"] += 1
        if not self._order:
            self._front_ts = ts
        self._pending[key] = self._pack(x, outcome, ts)
        self._order.append(key)
        return None

    # -- labels ---------------------------------------------------------------------------------

    def label(self, key: Any, y: Any, ts: int, source: tuple[int, int] | None = None) -> Joined | Lost | None:
        """A label came: its join, why it is lost, or None while it waits for its event (early)."""
        self.counts["received"] += 1
        blob = self._pending.pop(key, None)
        if blob is not None:
            x, outcome, at = self._unpack(blob)
            self._joined(key, max(0, ts - at))
            if self._order[0] == key:  # the oldest waiting (labels mostly come in order): drop what is stale
                self._front_expired(_NEVER)
            return Joined(x, outcome, max(0, ts - at))
        done = self._done.get(key, (0, 0))[0]
        if done == _JOINED:
            self.counts["duplicate"] += 1
            return Lost("duplicate", key, y, "duplicate label: this id was already labelled (the first label wins)", source)
        if done == _EXPIRED:
            self.counts["expired"] += 1
            return Lost("expired", key, y, "its features expired before the label came (--label-ttl, --max-pending)",
                        source)
        if key not in self._early:
            self._early[key] = (y, ts, source)
            self._early_order.append(key)
        return None

    # -- the stream's clock ---------------------------------------------------------------------

    def advance(self, ts: int) -> Sequence[Lost]:
        """Expire what is too old at stream time ``ts``; the early labels that never met their event.

        Called before every item, so the usual case (nothing to expire, no early label) is two
        comparisons.
        """
        cutoff = ts - self.ttl_ms
        if self._order and (self._front_ts < cutoff or len(self._pending) > self.max_pending):
            while self._order and (len(self._pending) > self.max_pending or self._front_expired(cutoff)):
                self._expire_front()
        if not self._early_order:
            return ()
        lost = []
        while self._early_order:
            key = self._early_order[0]
            entry = self._early.get(key)
            if entry is not None and entry[1] >= ts - self.early_ms:
                break
            self._early_order.popleft()
            if entry is not None:
                del self._early[key]
                self.counts["unknown"] += 1
                lost.append(Lost("unknown", key, entry[0], f"no event with this id came within {self.early_ms} ms "
                                 "of the label (unknown id)", entry[2]))
        return lost

    def _front_expired(self, cutoff: int) -> bool:
        while self._order:
            key = self._order[0]
            blob = self._pending.get(key)
            if blob is not None:
                seq, self._front_ts = _HEADER.unpack_from(blob)[:2]
                if seq == self._front_seq:
                    return self._front_ts < cutoff
            self._order.popleft()  # joined or replaced since: stale
            self._front_seq += 1
        return False

    def _expire_front(self) -> None:
        if not self._front_expired(1 << 62):  # drops stale entries; the front is live now
            return
        key = self._order.popleft()
        self._front_seq += 1
        del self._pending[key]
        self.counts["expired"] += 1
        self._remember(key, _EXPIRED)

    def _joined(self, key: Any, waited_ms: int) -> None:
        self.counts["joined"] += 1
        if len(self.delays_ms) < 1000:
            self.delays_ms.append(waited_ms)
        self._remember(key, _JOINED)

    def _remember(self, key: Any, what: int) -> None:
        self._remembered += 1
        self._done[key] = (what, self._remembered)
        self._done_order.append((key, self._remembered))
        if len(self._done_order) > TOMBSTONES:
            old, when = self._done_order.popleft()
            if self._done.get(old, (0, 0))[1] == when:  # not remembered again since
                del self._done[old]

    # -- compact storage ------------------------------------------------------------------------
    # A blob is _HEADER, then the prediction, then the features. A schema is a layout (what the
    # packed values are: feature names, or the classes of the probabilities) and its struct; the
    # caches map what is cheap to compute per event (the names, the classes) to a schema.

    def _pack(self, x: dict[str, Any], outcome: Any, ts: int) -> bytes:
        seq = self._next_seq
        self._next_seq = seq + 1
        prediction_schema, prediction = self._pack_outcome(outcome)
        feature_schema, features = self._pack_features(x)
        return _HEADER.pack(seq, ts, feature_schema, prediction_schema, len(prediction)) + prediction + features

    def _unpack(self, blob: bytes) -> tuple[dict[str, Any], Any, int]:
        _, ts, feature_schema, prediction_schema, size = _HEADER.unpack_from(blob)
        start = _HEADER.size
        if prediction_schema == _OTHER:
            outcome = pickle.loads(blob[start:start + size])
        else:
            kind, classes = self._schemas[prediction_schema]
            values = self._structs[prediction_schema].unpack_from(blob, start)
            outcome = dict(zip(classes, values, strict=True)) if kind == "p" else (values[0], None)
        if feature_schema == _OTHER:
            return dict(orjson.loads(blob[start + size:])), outcome, ts
        names = self._schemas[feature_schema][1]
        return dict(zip(names, self._structs[feature_schema].unpack_from(blob, start + size), strict=True)), outcome, ts

    def _new_schema(self, key: Any, layout: tuple[Any, ...], fmt: str) -> int:
        if len(self._schemas) >= _OTHER:
            return _OTHER
        schema = self._schema_ids[key] = len(self._schemas)
        self._schemas.append(layout)
        self._structs.append(struct.Struct(fmt))
        return schema

    def _pack_features(self, x: dict[str, Any]) -> tuple[int, bytes]:
        names = tuple(x)
        types = tuple(map(type, x.values()))
        schema = self._schema_ids.get((names, types))
        if schema is None:
            if not _PACKABLE.issuperset(types):
                return _OTHER, orjson.dumps(x)
            schema = self._new_schema((names, types), ("x", names), "<" + "".join(_CODES[t] for t in types))
        if schema == _OTHER:
            return _OTHER, orjson.dumps(x)
        try:
            return schema, self._structs[schema].pack(*x.values())
        except struct.error:  # an integer beyond 64 bits
            return _OTHER, orjson.dumps(x)

    def _pack_outcome(self, outcome: Any) -> tuple[int, bytes]:
        kind = type(outcome)
        if kind is dict and outcome:  # a classifier's probabilities, the usual case
            classes = tuple(outcome)
            schema = self._schema_ids.get(("p", classes))
            if schema is None:
                schema = self._new_schema(("p", classes), ("p", classes), f"<{len(classes)}d")
            if schema != _OTHER:
                try:
                    return schema, self._structs[schema].pack(*outcome.values())
                except struct.error:  # not numbers
                    pass
        elif kind is tuple and len(outcome) == 2 and outcome[1] is None and type(outcome[0]) is float:
            schema = self._schema_ids.get(("v",))
            if schema is None:
                schema = self._new_schema(("v",), ("v", None), "<d")
            if schema != _OTHER:
                return schema, self._structs[schema].pack(outcome[0])
        return _OTHER, pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_structs"] = [s.format for s in self._structs]  # struct.Struct does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_structs"] = [struct.Struct(f) for f in state["_structs"]]
        state.setdefault("_front_ts", _NEVER)  # a snapshot from before it was kept: look at the front once
        self.__dict__.update(state)
