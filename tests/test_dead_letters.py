"""Bad input of every kind is dead-lettered with a reason and its source; the model never sees it."""

from __future__ import annotations

import orjson
import pytest

from learner.core.models import build_model
from tests.conftest import Stack

pytestmark = pytest.mark.integration

BAD: list[tuple[str, bytes, str]] = [
    ("not JSON", b"hello", "not valid JSON"),
    ("truncated JSON", b'{"x": {"a": 1', "not valid JSON"),
    ("empty message", b"", "not valid JSON"),
    ("invalid UTF-8", b'{"x": {"\xff": 1}}', "not valid JSON"),
    ("array", b"[1, 2]", "a JSON object, not an array"),
    ("bare string", b'"event"', "a JSON object, not a string"),
    ("missing x", b'{"y": true}', "missing field 'x'"),
    ("x not an object", b'{"x": [1, 2]}', "'x' must be an object"),
    ("nested feature", b'{"x": {"a": {"b": 1}}}', "feature 'a' is an object"),
    ("array feature", b'{"x": {"a": [1]}}', "feature 'a' is an array"),
    ("NaN", b'{"x": {"a": NaN}, "y": true}', "not valid JSON"),
    ("Infinity", b'{"x": {"a": -Infinity}, "y": true}', "not valid JSON"),
    ("overflowing number", b'{"x": {"a": 1e999}, "y": true}', "infinity"),
    ("unknown field", b'{"x": {"a": 1}, "label": true}', "unknown field 'label'"),
    ("bad id", b'{"id": [1], "x": {"a": 1}}', "'id' must be a string or an integer"),
    ("boolean id", b'{"id": true, "x": {"a": 1}}', "'id' must be a string or an integer"),
    ("object label", b'{"x": {"a": 1}, "y": {"k": 1}}', "'y' must be a number"),
    ("too deep", b"[" * 1100 + b"]" * 1100, "not valid JSON"),
    ("too large", b'{"x": {"a": 1, "pad": "' + b"p" * 3000 + b'"}, "y": true}', "over the 2500-byte limit"),
    ("string to a numeric model", b'{"x": {"a": "high"}, "y": true}', "the model rejected the event"),
]


def good(i: int) -> bytes:
    return orjson.dumps({"id": i, "x": {"a": i % 7 - 3.0, "b": (i * 31) % 11 / 10}, "y": i % 3 == 0})


def test_bad_input_table(stack: Stack) -> None:
    values, expected_bad = [], {}
    for i in range(300):
        values.append(good(i))
        if i % 15 == 7 and len(expected_bad) < len(BAD):
            kind, raw, reason = BAD[len(expected_bad)]
            expected_bad[len(values)] = (kind, raw, reason)
            values.append(raw)
    assert len(expected_bad) == len(BAD) >= 15
    stack.produce(values)
    service = stack.start("--model", "logreg", "--max-event-bytes", "2500")

    letters = stack.read(stack.dlq, len(BAD))
    predictions = stack.read(stack.output, 300)
    stack.produce([good(300)])  # still serving after all that
    assert len(stack.read(stack.output, 301)) == 301
    assert stack.stop(service) == 0

    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        kind, raw, reason = expected_bad[int(headers["source.offset"])]
        assert letter.value() == raw, kind
        assert reason in headers["error"], (kind, headers["error"])
        assert headers["source.topic"] == stack.input and headers["source.partition"] == "0"
    assert {orjson.loads(p.value())["id"] for p in predictions} == set(range(300))

    reference = build_model("logreg")
    for i in range(301):
        event = orjson.loads(good(i))
        reference.learn_one(event["x"], event["y"])
    loaded = stack.store().load(stack.store().head())
    meta, state = loaded.meta, loaded.state
    assert state.learned == 301
    assert state.model["LogisticRegression"].weights == reference["LogisticRegression"].weights
    assert meta.offsets[f"{stack.input}:0"] == len(values) + 1
