"""Stream positions: the next offset to read per ``(topic, partition)``.

A position is what a snapshot has learned up to; it is stored in the snapshot's metadata as JSON
(``{"topic:partition": offset}``) and handed to the consumer as ``{(topic, partition): offset}``.

>>> position = {("events", 0): 41, ("events", 1): 7}
>>> to_json_keys(position)
{'events:0': 41, 'events:1': 7}
>>> from_json_keys(to_json_keys(position)) == position
True
"""

from __future__ import annotations

__all__ = ["Position", "from_json_keys", "furthest", "to_json_keys", "total"]

#: Next offset to read, per (topic, partition).
Position = dict[tuple[str, int], int]


def to_json_keys(position: Position) -> dict[str, int]:
    """``{(topic, partition): offset}`` as JSON-friendly ``{"topic:partition": offset}``."""
    return {f"{topic}:{partition}": offset for (topic, partition), offset in sorted(position.items())}


def from_json_keys(offsets: dict[str, int]) -> Position:
    """``{"topic:partition": offset}`` back to ``{(topic, partition): offset}`` (topics may hold colons)."""
    out: Position = {}
    for key, offset in offsets.items():
        topic, _, partition = key.rpartition(":")
        out[(topic, int(partition))] = int(offset)
    return out


def furthest(*positions: Position) -> Position:
    """Per partition, the furthest of several positions.

    >>> furthest({("in", 0): 5, ("in", 1): 9}, {("in", 0): 7})
    {('in', 0): 7, ('in', 1): 9}
    """
    out: Position = {}
    for position in positions:
        for partition, offset in position.items():
            out[partition] = max(offset, out.get(partition, offset))
    return out


def total(position: Position, topic: str | None = None) -> int:
    """Offsets summed over partitions (of one topic, or all): events read so far on a fresh topic.

    >>> total({("in", 0): 5, ("in", 1): 9, ("labels", 0): 3}, "in")
    14
    """
    return sum(offset for (name, _), offset in position.items() if topic is None or name == topic)
