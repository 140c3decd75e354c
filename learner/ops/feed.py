"""Events for ``learner produce``: River's bundled datasets, JSONL and CSV files.

Datasets become events ``{"id": i, "x": {...}, "y": label}``; JSONL lines are sent as they are
(so a file of bad messages can exercise the dead-letter topic); CSV rows become events with
the ``--target`` column as the label and numbers parsed as numbers.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from river import datasets
from river.datasets import synth

from learner.errors import FeedError

__all__ = ["dataset_events", "file_events", "limited"]


def dataset_events(name: str, seed: int = 42) -> Iterator[bytes]:
    """Encoded events from a bundled River dataset (``Phishing``) or generator (``synth.Agrawal``)."""
    for i, (x, y) in enumerate(_river_dataset(name, seed)):
        yield orjson.dumps({"id": i, "x": {k: _scalar(v) for k, v in x.items()}, "y": _scalar(y)})


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
