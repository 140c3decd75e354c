"""The features an event was predicted with, and that prediction, packed in a few bytes (README "Delayed labels").

An event waiting for its label may wait a day, and a million may wait at once: as dicts of
Python floats they would cost several hundred bytes each. Packed, 10 numeric features and a
probability pair take a 14-byte header and 96 bytes of doubles. The names are kept once per set of
feature names and types (a **schema**), the values as doubles, integers and booleans; features
with text fall back to JSON, and other predictions to pickle. Pure, and part of the join's snapshot.

>>> packing = Packing()
>>> blob = packing.pack({"amount": 12.5, "n": 3, "new": True}, {False: 0.8, True: 0.2}, ts=1_700)
>>> len(blob), timestamp_of(blob)
(47, 1700)
>>> packing.unpack(blob)
({'amount': 12.5, 'n': 3, 'new': True}, {False: 0.8, True: 0.2}, 1700)
>>> packing.unpack(packing.pack({"city": "Lyon"}, (3.5, None), ts=9))  # text: the JSON fallback
({'city': 'Lyon'}, (3.5, None), 9)
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, NamedTuple

import orjson

__all__ = ["Packing", "timestamp_of"]

_HEADER = struct.Struct("<qHHH")  # timestamp (ms), feature schema, prediction schema, prediction bytes
_TS = struct.Struct("<q")
_OTHER = 0xFFFF  # schema id of the fallback encodings (JSON features, pickled predictions)
_CODES = {float: "d", int: "q", bool: "?"}
_PACKABLE = frozenset(_CODES)


def timestamp_of(blob: bytes) -> int:
    """The stream time (ms) a blob was packed at."""
    return int(_TS.unpack_from(blob)[0])


class _Layout(NamedTuple):
    """A blob whose header, prediction and features are packed by one struct (see LabelJoin._pack)."""

    struct: struct.Struct
    features: int  # schema ids
    prediction: int
    names: tuple[str, ...]
    types: tuple[type, ...]
    classes: tuple[Any, ...]
    split: int  # where the features begin among the unpacked values


class Packing:
    """Packs and unpacks the blobs of one join (its schemas are its own; see the module's docstring).

    A blob is the header, then the prediction, then the features. A schema is a layout (what the
    packed values are: feature names, or the classes of the probabilities) and its struct; the
    caches map what is cheap to compute per event (the names, the classes) to a schema. When both
    parts pack, one struct (header and values together) packs and unpacks the whole blob at once,
    and the last such layout is tried first: on the model's core, per event, that is one struct call.
    """

    def __init__(self) -> None:
        self._schemas: list[tuple[Any, ...]] = []
        self._schema_ids: dict[Any, int] = {}
        self._structs: list[struct.Struct] = []
        # (features, prediction) -> the layout of a blob packed at once; the last one packed
        self._layouts: dict[tuple[int, int], _Layout] = {}
        self._last: _Layout | None = None

    @classmethod
    def from_schemas(cls, schemas: list[tuple[Any, ...]], schema_ids: dict[Any, int],
                     structs: list[struct.Struct]) -> Packing:
        """The packing of a join pickled by an earlier release, which kept these in the join itself."""
        packing = cls()
        packing._schemas, packing._schema_ids, packing._structs = schemas, schema_ids, structs
        return packing

    # A blob is _HEADER, then the prediction, then the features. A schema is a layout (what the
    # packed values are: feature names, or the classes of the probabilities) and its struct; the
    # caches map what is cheap to compute per event (the names, the classes) to a schema. When both
    # parts pack, one struct (header and values together) packs and unpacks the whole blob at once.

    def pack(self, x: dict[str, Any], outcome: Any, ts: int) -> bytes:
        names, types = tuple(x), tuple(map(type, x.values()))
        last = self._last
        if (last is not None and type(outcome) is dict and names == last.names and types == last.types
                and tuple(outcome) == last.classes):  # the usual case: the same layout as the event before
            try:
                return last.struct.pack(ts, last.features, last.prediction, 0, *outcome.values(), *x.values())
            except struct.error:  # not numbers, or an integer beyond 64 bits: the general way below
                pass
        feature_schema = self._feature_schema(names, types)
        if feature_schema != _OTHER and type(outcome) is dict and outcome:  # a classifier's probabilities
            classes = tuple(outcome)
            prediction_schema = self._schema_ids.get(("p", classes))
            if prediction_schema is None:
                prediction_schema = self._new_schema(("p", classes), ("p", classes), f"<{len(classes)}d")
            if prediction_schema != _OTHER:
                layout = self._layout(feature_schema, prediction_schema)
                try:
                    blob = layout.struct.pack(ts, feature_schema, prediction_schema, 0, *outcome.values(), *x.values())
                except struct.error:
                    pass
                else:
                    self._last = layout
                    return blob
        prediction_schema, prediction = self._pack_outcome(outcome)
        features = orjson.dumps(x)
        if feature_schema != _OTHER:
            try:
                features = self._structs[feature_schema].pack(*x.values())
            except struct.error:  # an integer beyond 64 bits
                feature_schema = _OTHER
        return _HEADER.pack(ts, feature_schema, prediction_schema, len(prediction)) + prediction + features

    def unpack(self, blob: bytes) -> tuple[dict[str, Any], Any, int]:
        ts, feature_schema, prediction_schema, size = _HEADER.unpack_from(blob)
        if size == 0:  # packed at once (see _pack); zip()'s strict check costs more than the rest here
            layout = self._last
            if layout is None or layout.features != feature_schema or layout.prediction != prediction_schema:
                layout = self._layout(feature_schema, prediction_schema)
            values = layout.struct.unpack(blob)
            split = layout.split
            return dict(zip(layout.names, values[split:])), dict(zip(layout.classes, values[4:split])), ts  # noqa: B905
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

    def _layout(self, feature_schema: int, prediction_schema: int) -> _Layout:
        layout = self._layouts.get((feature_schema, prediction_schema))
        if layout is None:
            (_, names), (_, classes) = self._schemas[feature_schema], self._schemas[prediction_schema]
            fmt = (_HEADER.format + self._structs[prediction_schema].format[1:]
                   + self._structs[feature_schema].format[1:])
            types = tuple({"d": float, "q": int, "?": bool}[code] for code in self._structs[feature_schema].format[1:])
            layout = self._layouts[(feature_schema, prediction_schema)] = _Layout(
                struct.Struct(fmt), feature_schema, prediction_schema, names, types, classes, 4 + len(classes))
        return layout

    def _new_schema(self, key: Any, layout: tuple[Any, ...], fmt: str) -> int:
        if len(self._schemas) >= _OTHER:
            return _OTHER
        schema = self._schema_ids[key] = len(self._schemas)
        self._schemas.append(layout)
        self._structs.append(struct.Struct(fmt))
        return schema

    def _feature_schema(self, names: tuple[str, ...], types: tuple[type, ...]) -> int:
        schema = self._schema_ids.get((names, types))
        if schema is None:
            if not _PACKABLE.issuperset(types):
                return _OTHER
            schema = self._new_schema((names, types), ("x", names), "<" + "".join(_CODES[t] for t in types))
        return schema

    def _pack_outcome(self, outcome: Any) -> tuple[int, bytes]:
        kind = type(outcome)
        if kind is dict and outcome:
            schema = self._schema_ids.get(("p", tuple(outcome)))
            if schema is not None and schema != _OTHER:
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
        # struct.Struct does not pickle; the layouts are rebuilt as they are needed
        return {"schemas": self._schemas, "schema_ids": self._schema_ids, "structs": [s.format for s in self._structs]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._schemas, self._schema_ids = state["schemas"], state["schema_ids"]
        self._structs = [struct.Struct(f) for f in state["structs"]]
