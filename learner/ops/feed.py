"""Events for ``learner produce``: River's bundled datasets, JSONL and CSV files.

Datasets become events ``{"id": i, "x": {...}, "y": label}``; JSONL lines are sent as they are
(so a file of bad messages can exercise the dead-letter topic); CSV rows become events with
the ``--target`` column as the label and numbers parsed as numbers.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from river import datasets
from river.datasets import synth

from learner.errors import FeedError

__all__ = ["CHANGING", "LabelDelay", "Record", "dataset_events", "file_events", "limited", "records", "with_delayed_labels"]


#: The demo's stream (README "The embedded stack"): River's ``synth.Agrawal`` whose concept changes
#: (classification function 0, then 2) at a chosen event, so a drift alarm and a dip of the curve show.
CHANGING = "change.Agrawal"


def dataset_events(name: str, seed: int = 42, change_at: int = 10_000) -> Iterator[bytes]:
    """Encoded events from a bundled River dataset (``Phishing``), a generator (``synth.Agrawal``), or
    :data:`CHANGING`, whose concept changes at event ``change_at``."""
    source = _changing(seed, change_at) if name == CHANGING else _river_dataset(name, seed)
    for i, (x, y) in enumerate(source):
        yield orjson.dumps({"id": i, "x": {k: _scalar(v) for k, v in x.items()}, "y": _scalar(y)})


def _changing(seed: int, change_at: int) -> Any:
    # The change is a sigmoid over ``width`` events: narrow, yet wide enough that River's exp() of the
    # distance to it (4·change_at/width) stays finite.
    return synth.ConceptDriftStream(synth.Agrawal(classification_function=0, seed=seed),
                                    synth.Agrawal(classification_function=2, seed=seed + 1), position=change_at,
                                    width=max(10, change_at // 100), seed=seed)


def _river_dataset(name: str, seed: int) -> Any:
    module, _, attribute = name.rpartition(".")
    source = synth if module == "synth" else datasets
    factory: Any = getattr(source, attribute, None)
    if not isinstance(factory, type) or module not in ("", "synth"):  # type: ignore[unreachable,unused-ignore]
        raise FeedError(f"unknown dataset {name!r}: use a River dataset such as Phishing or synth.Agrawal")
    if issubclass(factory, datasets.base.RemoteDataset):
        raise FeedError(f"dataset {name!r} must be downloaded first; use a bundled one such as Phishing")
    try:
        build: Any = factory
        return build(seed=seed) if module == "synth" else build()
    except TypeError:
        return build()


def _scalar(value: Any) -> Any:
    """Make a dataset value JSON-friendly: numpy numbers to Python, NaN to null, others to text."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _scalar(value.item())
    return str(value)


def file_events(path: Path, target: str = "y") -> Iterator[bytes]:
    """Encoded events from a ``.jsonl`` (sent verbatim) or ``.csv`` file."""
    if not path.is_file():
        raise FeedError(f"no such file: {path}")
    if path.suffix == ".jsonl":
        with path.open("rb") as lines:
            yield from (line.rstrip(b"\r\n") for line in lines if line.strip())
    elif path.suffix == ".csv":
        with path.open(newline="") as rows:
            for i, row in enumerate(csv.DictReader(rows)):
                y = _parse(row.pop(target, None) or "")
                event = {"id": i, "x": {k: _parse(v) for k, v in row.items()}}
                if y is not None:
                    event["y"] = y
                yield orjson.dumps(event)
    else:
        raise FeedError(f"{path.name}: use a .jsonl or .csv file")


def _parse(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else None


def limited(events: Iterator[bytes], limit: int | None) -> Iterator[bytes]:
    return events if limit is None else itertools.islice(events, limit)


@dataclass(frozen=True)
class Record:
    """One message to produce: where, what, its key, and its timestamp (ms; None: the producer's clock)."""

    topic: str
    value: bytes
    key: bytes | None
    timestamp: int | None = None


def records(events: Iterator[bytes], topic: str) -> Iterator[Record]:
    """Events as they are, keyed by their position."""
    for i, value in enumerate(events):
        yield Record(topic, value, str(i).encode())


@dataclass(frozen=True)
class LabelDelay:
    """How many events later a label is sent: ``N``, or uniformly between ``N`` and ``M`` (``N:M``).

    >>> LabelDelay.parse("50"), LabelDelay.parse("10:100")
    (LabelDelay(low=50, high=50), LabelDelay(low=10, high=100))
    """

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> LabelDelay:
        low, _, high = str(text).partition(":")
        try:
            delay = cls(int(low), int(high or low))
        except ValueError:
            raise FeedError(f"--label-delay {text!r}: give N (events later) or N:M (at random between)") from None
        if delay.low < 0 or delay.high < delay.low:
            raise FeedError(f"--label-delay {text!r}: give 0 <= N <= M")
        return delay


def with_delayed_labels(events: Iterator[bytes], topic: str, labels_topic: str, delay: LabelDelay,
                        seed: int = 42, now: Callable[[], float] = time.time) -> Iterator[Record]:
    """Each event without its label, and the label ``delay`` events later on ``labels_topic``.

    Timestamps make the service's merged order River's (``simulate_qa``): events get strictly
    increasing milliseconds (the clock, or one more than the last), and a label the timestamp of the
    event it is due with, so it is revealed just before that event (labels go first on ties). An
    event without an id gets its position as one (a label must name its event).

    >>> events = [orjson.dumps({"x": {"a": i}, "y": i % 2 == 0}) for i in range(4)]
    >>> clock = iter(range(1000, 2000)).__next__  # a millisecond per event
    >>> for r in list(with_delayed_labels(iter(events), "in", "lab", LabelDelay(2, 2), now=lambda: clock() / 1000))[:5]:
    ...     print(r.topic, r.value.decode(), r.timestamp)
    in {"id":0,"x":{"a":0}} 1000
    in {"id":1,"x":{"a":1}} 1001
    lab {"id":0,"y":true} 1002
    in {"id":2,"x":{"a":2}} 1002
    lab {"id":1,"y":false} 1003
    """
    rng = random.Random(seed)
    due: list[tuple[int, int, Any]] = []  # (due at event number, event number, label)
    last = -1
    index = -1
    for index, raw in enumerate(events):
        event = orjson.loads(raw)
        event_id = event.setdefault("id", index)
        label = event.pop("y", None)
        stamp = last = max(int(now() * 1000), last + 1)
        while due and due[0][0] <= index:
            _, _, (label_id, y) = heapq.heappop(due)
            yield Record(labels_topic, orjson.dumps({"id": label_id, "y": y}), str(label_id).encode(), stamp)
        yield Record(topic, orjson.dumps({"id": event_id, **{k: v for k, v in event.items() if k != "id"}}),
                     str(event_id).encode(), stamp)
        if label is not None:
            heapq.heappush(due, (index + rng.randint(delay.low, delay.high), index, (event_id, label)))
    while due:  # the labels due after the last event: each a millisecond later
        _, _, (label_id, y) = heapq.heappop(due)
        last += 1
        yield Record(labels_topic, orjson.dumps({"id": label_id, "y": y}), str(label_id).encode(), last)
