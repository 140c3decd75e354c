"""Decoding input events and encoding predictions (README "Input events", "Predictions").

Decoding is the service's first line of defence: anything that is not exactly an event is
rejected here with a reason a human can act on, so that nothing malformed reaches the model.

>>> decode_event(b'{"id": 7, "x": {"age": 42, "city": "Oslo", "vip": true, "debt": null}, "y": 1}')
Event(id=7, x={'age': 42, 'city': 'Oslo', 'vip': True}, y=1, raw=b'{"x":{"age":42,"city":"Oslo","vip":true},"y":1}')
>>> decode_event(b'{"x": {"a": NaN}}')
Traceback (most recent call last):
...
stream.codec.InvalidEvent: not valid JSON: unexpected character, expected a JSON value: line 1 column 13 (char 12)
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import msgspec
import orjson

__all__ = ["DEFAULT_MAX_BYTES", "KINDS", "Event", "InvalidEvent", "Label", "decode_event", "decode_label", "encode_prediction"]

#: Default byte limit for one input message; larger ones are dead-lettered unread.
DEFAULT_MAX_BYTES = 1_000_000

_FEATURE_TYPES = frozenset({float, int, str, bool})
_LABEL_TYPES = (float, int, str, bool)
_ID_TYPES = (str, int)
_EVENT_FIELDS = frozenset({"id", "x", "y"})
_NONE = type(None)

# The fast path: msgspec checks an event's shape and types in C, in one pass. What it accepts is exactly
# what the reference path below (orjson, then Python) accepts unchanged, so that path runs only for a
# message it refuses, to name the fault, or for one with null features, to drop them: integers are
# bounded to int64 (beyond that orjson's answer, a float or an error, is the reference), and ids and
# labels have the same types here as there.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Shape(msgspec.Struct, forbid_unknown_fields=True):
    x: dict[str, float | _Int | str | bool | None]
    id: str | _Int | None = None
    y: float | _Int | str | bool | None = None


class _LabelShape(msgspec.Struct, forbid_unknown_fields=True):
    id: str | _Int | None = None
    y: float | _Int | str | bool | None = None


_fast_event = msgspec.json.Decoder(_Shape).decode
_fast_label = msgspec.json.Decoder(_LabelShape).decode
_REFUSED = (msgspec.DecodeError, msgspec.ValidationError)
#: ``Event(...)`` without the Python frame of a NamedTuple's ``__new__``: once per input message.
_new_event = tuple.__new__


class InvalidEvent(ValueError):
    """The message is not an event (or a label); ``str(error)`` is the reason sent with the dead letter,
    ``kind`` one of ``KINDS``: a bounded name for metrics and dashboards.

    >>> InvalidEvent("not valid JSON: ...", "invalid_json").kind
    'invalid_json'
    """

    def __init__(self, reason: str, kind: str = "invalid_event") -> None:
        super().__init__(reason)
        self.kind = kind


#: What can be wrong with a message, as ``InvalidEvent.kind`` names it.
KINDS = ("empty", "too_large", "invalid_json", "invalid_event", "invalid_label")


class Event(NamedTuple):
    """A validated input event. ``id`` is None when the producer gave none, ``y`` when unlabelled.

    ``raw`` is JSON of the validated ``{"x", "y"}``: the message itself when it needed no
    cleaning, so passing the event on to another process costs no re-encoding.
    """

    id: str | int | None
    x: dict[str, float | int | str | bool]
    y: float | int | str | bool | None
    raw: bytes


def decode_event(raw: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Event:
    """Parse and validate one input message.

    Unknown top-level fields are refused rather than ignored: a producer that writes
    ``"label"`` instead of ``"y"`` would otherwise feed the model unlabelled events in silence.

    >>> decode_event(b'{"x": {"a": 1.5}, "extra": 1}')
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: unknown field 'extra' (an event has only id, x and y)
    >>> decode_event(b'{"x": {"a": [1, 2]}}')
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: feature 'a' is an array; features are numbers, strings, booleans or null
    """
    if raw is not None and len(raw) <= max_bytes:
        try:
            shape = _fast_event(raw)
        except _REFUSED:
            pass
        else:
            if None not in shape.x.values():
                return _new_event(Event, (shape.id, shape.x, shape.y, raw))  # no null: checked above
    return _decode_event(raw, max_bytes)


def _decode_event(raw: bytes | None, max_bytes: int) -> Event:
    """The reference path: every check in turn, with the reason of the first that fails."""
    if raw is None:
        raise InvalidEvent("empty message (no value)", "empty")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"message is {len(raw)} bytes, over the {max_bytes}-byte limit", "too_large")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"not valid JSON: {error}", "invalid_json") from None
    if type(doc) is not dict:
        raise InvalidEvent(f"an event is a JSON object, not {_json_kind(doc)}")
    if len(doc) > 3 or not doc.keys() <= _EVENT_FIELDS:
        extra = sorted(doc.keys() - _EVENT_FIELDS)[0]
        raise InvalidEvent(f"unknown field {extra!r} (an event has only id, x and y)")
    try:
        x = doc["x"]
    except KeyError:
        raise InvalidEvent("missing field 'x' (the features)") from None
    if type(x) is not dict:
        raise InvalidEvent(f"'x' must be an object of features, not {_json_kind(x)}")
    y = _check_label(doc.get("y"))
    if not set(map(type, x.values())) <= _FEATURE_TYPES:
        x = _drop_missing(x)
        raw = orjson.dumps({"x": x, "y": y})
    return Event(_check_id(doc.get("id")), x, y, raw)


class Label(NamedTuple):
    """A validated label from the labels topic: the id of the event it belongs to, and the label."""

    id: str | int
    y: float | int | str | bool


_LABEL_FIELDS = frozenset({"id", "y"})


def decode_label(raw: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Label:
    """Parse and validate one message of the labels topic (README "Delayed labels"): ``{"id": ..., "y": ...}``.

    >>> decode_label(b'{"id": "tx-1029", "y": true}')
    Label(id='tx-1029', y=True)
    >>> decode_label(b'{"id": 7, "y": null}')
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: a label needs 'y' (not null)
    """
    if raw is not None and len(raw) <= max_bytes:
        try:
            shape = _fast_label(raw)
        except _REFUSED:
            pass
        else:
            if shape.id is not None and shape.y is not None:
                return Label(shape.id, shape.y)
    return _decode_label(raw, max_bytes)


def _decode_label(raw: bytes | None, max_bytes: int) -> Label:
    """The reference path of labels, as of events."""
    if raw is None:
        raise InvalidEvent("empty message (no value)", "empty")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"message is {len(raw)} bytes, over the {max_bytes}-byte limit", "too_large")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"not valid JSON: {error}", "invalid_json") from None
    if type(doc) is not dict:
        raise InvalidEvent(f"a label is a JSON object, not {_json_kind(doc)}", "invalid_label")
    if not doc.keys() <= _LABEL_FIELDS:
        extra = sorted(doc.keys() - _LABEL_FIELDS)[0]
        raise InvalidEvent(f"unknown field {extra!r} (a label has only id and y)", "invalid_label")
    try:
        label_id, y = _check_id(doc.get("id")), _check_label(doc.get("y"))
    except InvalidEvent as error:
        raise InvalidEvent(str(error), "invalid_label") from None
    if label_id is None:
        raise InvalidEvent("a label needs the 'id' of its event", "invalid_label")
    if y is None:
        raise InvalidEvent("a label needs 'y' (not null)", "invalid_label")
    return Label(label_id, y)


def _drop_missing(x: dict[str, Any]) -> dict[str, Any]:
    """Slow path of feature validation: drop nulls, name the first feature of a wrong type."""
    for name, value in x.items():
        if value is not None and type(value) not in _FEATURE_TYPES:
            raise InvalidEvent(
                f"feature {name!r} is {_json_kind(value)}; "
                "features are numbers, strings, booleans or null"
            )
    return {name: value for name, value in x.items() if value is not None}


def _check_id(event_id: Any) -> str | int | None:
    if event_id is None or (isinstance(event_id, _ID_TYPES) and type(event_id) is not bool):
        return event_id  # type: ignore[no-any-return,unused-ignore]
    raise InvalidEvent(f"'id' must be a string or an integer, not {_json_kind(event_id)}")


def _check_label(label: Any) -> float | int | str | bool | None:
    if label is None or isinstance(label, _LABEL_TYPES):
        return label  # type: ignore[no-any-return,unused-ignore]
    raise InvalidEvent(f"'y' must be a number, a string or a boolean, not {_json_kind(label)}")


def _json_kind(value: Any) -> str:
    """Name a decoded JSON value the way the producer wrote it."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number")


def encode_prediction(
    event_id: str | int,
    prediction: Any,
    proba: dict[Any, float] | None,
    model: str,
    model_version: int,
    learned: int,
    ts: float,
) -> bytes:
    """Encode one prediction message (R-PRED); class labels become JSON object keys.

    >>> encode_prediction("a1", True, {False: 0.2, True: 0.8}, "fraud", 3, 1000, 1.5)
    b'{"id":"a1","prediction":true,"proba":{"false":0.2,"true":0.8},"model":"fraud","model_version":3,"learned":1000,"ts":1.5}'
    >>> encode_prediction(9, 21.5, None, "price", 1, 10, 2.0)
    b'{"id":9,"prediction":21.5,"model":"price","model_version":1,"learned":10,"ts":2.0}'
    """
    if proba is None:
        doc: dict[str, Any] = {"id": event_id, "prediction": prediction}
    else:
        doc = {"id": event_id, "prediction": prediction, "proba": proba}
    doc["model"] = model
    doc["model_version"] = model_version
    doc["learned"] = learned
    doc["ts"] = ts
    return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
