"""Bad input of every kind is dead-lettered with a reason and its source; the model never sees it."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from learner.core.models import build_model
from tests.conftest import Stack
from tests.test_monitor import scrape, wait_until
from tests.test_monitoring import free_port

pytestmark = pytest.mark.integration

#: What is sent, why it is bad, the reason the dead letter gives, and its kind (``error.kind``, the metric's label).
BAD: list[tuple[str, bytes, str, str]] = [
    ("not JSON", b"hello", "not valid JSON", "invalid_json"),
    ("truncated JSON", b'{"x": {"a": 1', "not valid JSON", "invalid_json"),
    ("empty message", b"", "not valid JSON", "invalid_json"),
    ("invalid UTF-8", b'{"x": {"\xff": 1}}', "not valid JSON", "invalid_json"),
    ("array", b"[1, 2]", "a JSON object, not an array", "invalid_event"),
    ("bare string", b'"event"', "a JSON object, not a string", "invalid_event"),
    ("missing x", b'{"y": true}', "missing field 'x'", "invalid_event"),
    ("x not an object", b'{"x": [1, 2]}', "'x' must be an object", "invalid_event"),
    ("nested feature", b'{"x": {"a": {"b": 1}}}', "feature 'a' is an object", "invalid_event"),
    ("array feature", b'{"x": {"a": [1]}}', "feature 'a' is an array", "invalid_event"),
    ("NaN", b'{"x": {"a": NaN}, "y": true}', "not valid JSON", "invalid_json"),
    ("Infinity", b'{"x": {"a": -Infinity}, "y": true}', "not valid JSON", "invalid_json"),
    ("overflowing number", b'{"x": {"a": 1e999}, "y": true}', "infinity", "invalid_json"),
    ("unknown field", b'{"x": {"a": 1}, "label": true}', "unknown field 'label'", "invalid_event"),
    ("bad id", b'{"id": [1], "x": {"a": 1}}', "'id' must be a string or an integer", "invalid_event"),
    ("boolean id", b'{"id": true, "x": {"a": 1}}', "'id' must be a string or an integer", "invalid_event"),
    ("object label", b'{"x": {"a": 1}, "y": {"k": 1}}', "'y' must be a number", "invalid_event"),
    ("too deep", b"[" * 1100 + b"]" * 1100, "not valid JSON", "invalid_json"),
    ("too large", b'{"x": {"a": 1, "pad": "' + b"p" * 3000 + b'"}, "y": true}', "over the 2500-byte limit", "too_large"),
    ("string to a numeric model", b'{"x": {"a": "high"}, "y": true}', "the model rejected the event", "rejected"),
]


def good(i: int) -> bytes:
    return orjson.dumps({"id": i, "x": {"a": i % 7 - 3.0, "b": (i * 31) % 11 / 10}, "y": i % 3 == 0})


def test_bad_input_table(stack: Stack) -> None:
    values, expected_bad = [], {}
    for i in range(300):
        values.append(good(i))
        if i % 15 == 7 and len(expected_bad) < len(BAD):
            expected_bad[len(values)] = BAD[len(expected_bad)]
            values.append(BAD[len(expected_bad) - 1][1])
    assert len(expected_bad) == len(BAD) >= 15
    stack.produce(values)
    port = free_port()
    service = stack.start("--model", "logreg", "--max-event-bytes", "2500", "--metrics-port", str(port))

    letters = stack.read(stack.dlq, len(BAD))
    predictions = stack.read(stack.output, 300)
    stack.produce([good(300)])  # still serving after all that
    assert len(stack.read(stack.output, 301)) == 301
    by_kind = Counter(row[3] for row in BAD)
    wanted = {(("kind", kind), ("model", stack.name)): float(count) for kind, count in by_kind.items()}
    assert wait_until(lambda: {labels: value for (name, labels), value in scrape(port).items()
                               if name == "learner_dead_letters_total" and value} == wanted)
    assert stack.stop(service) == 0

    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        what, raw, reason, kind = expected_bad[int(headers["source.offset"])]
        assert letter.value() == raw, what
        assert reason in headers["error"] and headers["error.kind"] == kind, (what, headers)
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
