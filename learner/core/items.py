"""The items of a batch with a labels topic: events and labels, in the merged order, as they cross
from the gateway to the model process.

Compact on the wire (one JSON array per batch, one-letter keys, an event's own JSON spliced in
unchanged) and typed at both ends: the gateway writes them with :func:`event_item` and
:func:`label_item`, the model's step reads them as :class:`EventItem` and :class:`LabelItem`.
Keys: ``t`` the merged timestamp in ms (the stream's clock for label expiry); ``k`` an event's id
(its own, or ``topic:partition:offset``); ``l`` a label's id; ``s`` a label's source
``[partition, offset]``. Without a labels topic a batch holds the events as they came.

>>> import orjson
>>> raw = b'{"id":"e1","x":{"a":1.0},"y":true}'
>>> [orjson.loads(event_item(1700, "e1", raw)), orjson.loads(label_item(1800, "e1", True, 0, 7))]
[{'t': 1700, 'k': 'e1', 'id': 'e1', 'x': {'a': 1.0}, 'y': True}, {'t': 1800, 'l': 'e1', 'y': True, 's': [0, 7]}]
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, final

import orjson

__all__ = ["EventItem", "Item", "LabelItem", "event_item", "label_item"]


@final
class EventItem(TypedDict):
    """An input event: predicted, then learned with its label (``y``) or when its label comes."""

    t: int
    k: Any
    x: dict[str, Any]
    y: NotRequired[Any]


@final
class LabelItem(TypedDict):
    """A label: learns the features its event ``l`` was predicted with."""

    t: int
    l: Any  # noqa: E741 (the wire's key)
    y: Any
    s: NotRequired[list[int]]


#: One item of a batch with a labels topic (told apart by the ``l`` key).
Item = EventItem | LabelItem


def event_item(t: int, event_id: Any, raw: bytes) -> bytes:
    """An event's item: its timestamp and id put in front of its own JSON object (never re-encoded)."""
    return b'{"t":%d,"k":%s,' % (t, orjson.dumps(event_id)) + raw[1:]


def label_item(t: int, label_id: Any, y: Any, partition: int, offset: int) -> bytes:
    return orjson.dumps({"t": t, "l": label_id, "y": y, "s": [partition, offset]})
