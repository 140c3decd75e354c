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

Packing and unpacking cost the model's core about a quarter of River's own work (StandardScaler |
LogisticRegression, 10 numeric features), and most labels come soon: so the newest events wait as
they came (the features River was given, the prediction it returned), and are packed only once
:data:`YOUNG_EVENTS` newer events (or :data:`YOUNG_VALUES` newer feature values) have come, or
when the join is pickled. A label that comes soon learns the very dict that was predicted, which
holds the same values as its packed form.

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

import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from learner.core.packing import Packing, timestamp_of

__all__ = ["COUNTS", "Joined", "LabelJoin", "Lost"]

#: What the join counts (each also a value of ``learner_labels_total{outcome}``).
COUNTS = ("received", "joined", "expired", "unknown", "duplicate", "early", "replaced", "rejected")

#: Joined and expired ids remembered, to tell a duplicate or an expired label from an unknown one.
TOMBSTONES = 200_000
#: Stale ids (joined, expired, replaced) the arrival order may hold beyond twice the waiting ones.
SLACK = 1024

#: The newest events waiting unpacked (see the module's docstring): at most this many ...
YOUNG_EVENTS = 4096
#: ... holding at most this many feature values together (wide events are packed sooner).
YOUNG_VALUES = 65_536

_JOINED, _EXPIRED = 1, 2
_NONE_WAITING = 1 << 62  # the front timestamp when nothing waits: no expiry to look for
_LAYOUT = 2  # of the pickled state: 2 = blobs without a sequence number, tombstones as integers


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
    """Waiting features, early labels, and what became of the labels (see the module's docstring).

    Runs on the model's core for every event and label, so each path is a few dictionary
    operations and one ``struct`` call. The waiting features are a dict in arrival order (an id
    that comes again moves to the end) beside a deque of ids in that order, which finds the oldest
    without scanning the dict; the deque's stale ids (joined, expired, replaced) are dropped from
    its front as labels come, and the deque is rebuilt when they make up most of it.
    """

    def __init__(self, ttl_ms: int, max_pending: int, early_ms: int) -> None:
        self.ttl_ms, self.max_pending, self.early_ms = ttl_ms, max_pending, early_ms
        self.counts = dict.fromkeys(COUNTS, 0)
        self.delays_ms: list[int] = []  # of the joins since the last read (for the histogram)
        # id -> packed features and prediction (or, for the newest, (x, outcome, ts)), in arrival order
        self._pending: dict[Any, bytes | tuple[dict[str, Any], Any, int]] = {}
        self._order: deque[Any] = deque()  # the same ids in the same order, and stale ones
        self._stale: dict[Any, int] = {}  # id -> how many of its entries in _order are stale (not at the front)
        # No waiting entry is older than this: advance() looks at the front only when it could be expired.
        self._front_ts = _NONE_WAITING
        self._early: dict[Any, tuple[Any, int, tuple[int, int] | None]] = {}
        self._early_order: deque[Any] = deque()
        self._done: dict[Any, int] = {}  # id -> when it was remembered * 4 + what became of it
        self._done_order: deque[Any] = deque()
        self._remembered = 0
        self._packing = Packing()
        self._young: deque[Any] = deque()  # ids of the unpacked entries, oldest first (and stale ones)
        self._young_values = 0  # features held by the unpacked entries

    @property
    def waiting(self) -> int:
        return len(self._pending)

    # -- events ---------------------------------------------------------------------------------

    def arrive(self, key: Any, x: dict[str, Any], outcome: Any, ts: int) -> Joined | None:
        """An unlabelled event was predicted: its features wait (or join an early label at once).

        Returns the join when a label had come first (learn it now); None otherwise.
        """
        if self._early:
            early = self._early.pop(key, None)
            if early is not None:
                self.counts["early"] += 1
                self._joined(key, 0)
                return Joined(x, outcome, 0, early[0])
        pending = self._pending
        if key in pending:
            self.counts["replaced"] += 1
            self._forget(pending.pop(key))  # the newer one waits, at the end of the order
            self._stale[key] = self._stale.get(key, 0) + 1
        self._front_ts = min(self._front_ts, ts)
        pending[key] = (x, outcome, ts)
        self._order.append(key)
        young = self._young
        young.append(key)
        self._young_values += len(x)
        while len(young) > YOUNG_EVENTS or self._young_values > YOUNG_VALUES:
            entry = pending.get(old := young.popleft())
            if type(entry) is tuple:  # still waiting unpacked: pack it (it keeps its place in the order)
                pending[old] = self._packing.pack(*entry)
                self._young_values -= len(entry[0])
        return None

    # -- labels ---------------------------------------------------------------------------------

    def label(self, key: Any, y: Any, ts: int, source: tuple[int, int] | None = None) -> Joined | Lost | None:
        """A label came: its join, why it is lost, or None while it waits for its event (early)."""
        self.counts["received"] += 1
        blob = self._pending.pop(key, None)
        if blob is not None:
            if isinstance(blob, tuple):
                x, outcome, at = blob
                self._young_values -= len(x)
            else:
                x, outcome, at = self._packing.unpack(blob)
            waited = ts - at if ts > at else 0
            self._joined(key, waited)
            order = self._order
            if order[0] == key and key not in self._stale:  # the oldest (labels mostly come in order)
                order.popleft()
                self._drop_stale()
            else:
                self._stale[key] = self._stale.get(key, 0) + 1
                if len(order) > 2 * len(self._pending) + SLACK:
                    self._compact()
            return Joined(x, outcome, waited)
        done = self._done.get(key, 0) & 3
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
        if self._front_ts < ts - self.ttl_ms or len(self._pending) > self.max_pending:
            self._expire(ts - self.ttl_ms)
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

    def _expire(self, cutoff: int) -> None:
        """Drop the oldest waiting entries while they are older than ``cutoff`` or too many."""
        pending = self._pending
        while self._drop_stale():
            key = self._order[0]
            entry = pending[key]
            at = entry[2] if isinstance(entry, tuple) else timestamp_of(entry)
            if at >= cutoff and len(pending) <= self.max_pending:
                self._front_ts = at
                return
            self._order.popleft()
            self._forget(pending.pop(key))
            self.counts["expired"] += 1
            self._remember(key, _EXPIRED)
        self._front_ts = _NONE_WAITING

    def _drop_stale(self) -> bool:
        """Pop stale ids off the order's front; whether a waiting one is there now."""
        order, pending, stale = self._order, self._pending, self._stale
        while order:
            key = order[0]
            if key in stale:  # joined out of order, or an earlier arrival of an id that came again
                if stale[key] == 1:
                    del stale[key]
                else:
                    stale[key] -= 1
            elif key in pending:
                return True
            order.popleft()
        self._front_ts = _NONE_WAITING
        return False

    def _forget(self, entry: bytes | tuple[dict[str, Any], Any, int]) -> None:
        """An entry leaves the join unjoined (replaced, expired): its features no longer count as young."""
        if type(entry) is tuple:
            self._young_values -= len(entry[0])

    def _compact(self) -> None:
        """Rebuild the order from the waiting ids alone (labels out of order left stale ids behind)."""
        self._order = deque(self._pending)
        self._stale.clear()

    def _joined(self, key: Any, waited_ms: int) -> None:
        self.counts["joined"] += 1
        if len(self.delays_ms) < 1000:
            self.delays_ms.append(waited_ms)
        self._remember(key, _JOINED)

    def _remember(self, key: Any, what: int) -> None:
        """Keep what became of ``key``; the oldest of more than TOMBSTONES is forgotten (unless
        remembered again since: its entry in the order is then stale)."""
        self._remembered += 1
        self._done[key] = self._remembered << 2 | what
        self._done_order.append(key)
        if len(self._done_order) > TOMBSTONES:
            when = self._remembered - TOMBSTONES  # the oldest entry's number
            old = self._done_order.popleft()
            if self._done.get(old, 0) >> 2 == when:
                del self._done[old]

    def __getstate__(self) -> dict[str, Any]:
        """Every entry packed (a snapshot holds only blobs: an unpacked entry is packed as it would have been)."""
        pack = self._packing.pack
        pending = {key: pack(*entry) if type(entry) is tuple else entry for key, entry in self._pending.items()}
        return {**self.__dict__, "_pending": pending, "_young": deque(), "_young_values": 0, "_layout": _LAYOUT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.pop("_layout", 1) < _LAYOUT:
            _upgrade(state)
        state.setdefault("_young", deque())
        state.setdefault("_young_values", 0)
        self.__dict__.update(state)


def _upgrade(state: dict[str, Any]) -> None:
    """A join pickled by an earlier release: each blob began with a sequence number (its arrival),
    tombstones were pairs. The same waiting events, in the same order, in today's layout."""
    sequenced = sorted(state["_pending"].items(), key=lambda item: struct.unpack_from("<Q", item[1])[0])
    state["_pending"] = {key: blob[8:] for key, blob in sequenced}
    state["_order"] = deque(state["_pending"])
    state["_stale"] = {}
    state["_front_ts"] = timestamp_of(sequenced[0][1][8:]) if sequenced else _NONE_WAITING
    state["_packing"] = Packing.from_schemas(state.pop("_schemas"), state.pop("_schema_ids"),
                                             [struct.Struct(f) for f in state.pop("_structs")])
    state["_done"] = {key: when << 2 | what for key, (what, when) in state["_done"].items()}
    state["_done_order"] = deque(key for key, _ in state["_done_order"])
    for name in ("_next_seq", "_front_seq"):
        state.pop(name, None)
