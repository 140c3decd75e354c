"""The codec's fast path (msgspec) against its reference path (orjson, then Python checks).

``decode_event`` and ``decode_label`` answer from msgspec when it accepts a message, and from the
reference path otherwise. So the one property that matters: on any input, both give the same answer,
the same event (same types: 1 is not 1.0, True is not 1) or the same error, reason and kind alike.
Checked on the edge cases that differ between JSON parsers, then on seeded random messages and
byte-level mutations of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from stream.codec import InvalidEvent, _decode_event, _decode_label, _fast_event, _fast_label, decode_event, decode_label

EDGES = [
    b'{"x":{"a":1},"x":{"b":2}}', b'{"x":{"a":1,"a":null}}', b'{"x":{"a":18446744073709551616}}',
    b'{"x":{"a":18446744073709551615}}', b'{"x":{"a":9223372036854775808}}', b'{"x":{"a":-9223372036854775808}}',
    b'{"x":{"a":-9223372036854775809}}', b'{"id":18446744073709551616,"x":{}}', b'{"id":9223372036854775807,"x":{}}',
    b'{"x":{"a":1e400}}', b'{"x":{"a":1e-400}}', b'{"x":{"a":-0.0}}', b'{"x":{"a":1E5}}', b'{"x":{"a":"\\ud800"}}',
    b'{"x":{"a":"\xff"}}', b'{"x":{"\\ud800":1}}', b'\xef\xbb\xbf{"x":{}}', b'{"x":{}}x', b' {"x":{}} ', b'{"x":{"a":NaN}}',
    b'{"x":{"a":Infinity}}', b'{"x":{"a":01}}', b'{"x":{"a":"\x01"}}', b'{"x":{"a":"\\u0000"}}', b'{"id":true,"x":{}}',
    b'{"id":1.5,"x":{}}', b'{"y":[1],"x":{}}', b'{"x":null}', b'{"x":{}, "y":null, "id":null}', b"", b"null", b"[]",
    b'{"id":"k","y":true}', b'{"id":"k","y":null}', b'{"id":null,"y":1}', b'{"y":1}', b'{"id":"k","y":2,"z":0}',
    b'{"id":[1],"y":1}', b'{"id":1,"y":{"a":1}}', b'{"x":{"a":[1,2]}}', b'{"x":{"a":{}}}', b'{"x":{}, "z":1}',
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 2 else 9)
    return [
        lambda: rng.choice([0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30]),
        lambda: rng.uniform(-1e6, 1e6), lambda: rng.choice([0.0, -0.0, 1e308, 5e-324, 0.1]),
        lambda: rng.choice(["", "Oslo", "é", "\x00", "\u2028", "a\"b", "\\"]), lambda: rng.random() < 0.5,
        lambda: None, lambda: rng.randrange(-1000, 1000), lambda: float(rng.randrange(-10, 10)),
        lambda: rng.choice(["x", "y", "id"]),
        lambda: [_value(rng, depth + 1)], lambda: {"k": _value(rng, depth + 1)},
        lambda: {f"f{i}": _value(rng, depth + 1) for i in range(rng.randrange(5))},
    ][kind]()


def _message(rng: random.Random) -> bytes:
    doc: dict[str, Any] = {}
    for field in ("id", "x", "y", "z"):
        if rng.random() < (0.9 if field == "x" else 0.6 if field != "z" else 0.05):
            doc[field] = ({f"f{i}": _value(rng, 1) for i in range(rng.randrange(6))}
                          if field == "x" and rng.random() < 0.9 else _value(rng))
    raw = json.dumps(doc, allow_nan=rng.random() < 0.1).encode()
    if rng.random() < 0.15:  # damage a byte, or cut the message short
        at = rng.randrange(len(raw))
        raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:] if rng.random() < 0.5 else raw[:at]
    return raw


def _outcome(decode: Callable[..., Any], raw: bytes) -> str:
    try:
        return repr(decode(raw, 1_000))
    except InvalidEvent as error:
        return f"InvalidEvent({error}, {error.kind})"


@pytest.mark.parametrize("raw", EDGES)
def test_edge_cases_decode_as_the_reference_path_does(raw: bytes) -> None:
    assert _outcome(decode_event, raw) == _outcome(_decode_event, raw)


def test_random_and_damaged_messages_decode_as_the_reference_path_does() -> None:
    rng = random.Random(20261207)
    messages = [_message(rng) for _ in range(20_000)]
    assert sum(_outcome(decode_event, m).startswith("Event(") for m in messages) > 2_000
    assert sum(_fast_accepts(_fast_event, m) for m in messages) > 1_000  # the fast path is taken, not only the reference
    for raw in messages:
        assert _outcome(decode_event, raw) == _outcome(_decode_event, raw), raw


def test_oversized_and_missing_messages_keep_their_reasons() -> None:
    assert _outcome(decode_event, b'{"x":{"a":1.5}}' + b" " * 2_000).endswith("too_large)")
    with pytest.raises(InvalidEvent, match="empty message"):
        decode_event(None)


def test_labels_decode_as_the_reference_path_does() -> None:
    rng = random.Random(7)
    labels = [json.dumps({"id": _value(rng), "y": _value(rng)}).encode() for _ in range(5_000)]
    for raw in EDGES + labels + [_message(rng) for _ in range(5_000)]:
        assert _outcome(decode_label, raw) == _outcome(_decode_label, raw), raw
    assert sum(_outcome(decode_label, m).startswith("Label(") for m in labels) > 1_000
    assert sum(_fast_accepts(_fast_label, m) for m in labels) > 1_000


def _fast_accepts(decode: Callable[[bytes], Any], raw: bytes) -> bool:
    try:
        decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return True
