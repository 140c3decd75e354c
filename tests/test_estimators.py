"""Any River estimator works: each of a matrix of them, through the real broker, predicts exactly
what River's own predict-then-learn loop predicts, event for event (label, probabilities, score).

All services run at once (one model name and topics each), so the matrix costs about as much as
its slowest member.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from river import datasets

from learner.core.models import PRESETS, build_model
from tests.conftest import Stack, make_stack

pytestmark = pytest.mark.integration

EVENTS = 300


def _decoded(pairs: Iterator[tuple[dict[str, Any], Any]], labelled: bool = True) -> list[dict[str, Any]]:
    """Events as the service decodes them (through JSON), so both sides see the same types."""
    out = []
    for i, (x, y) in enumerate(itertools.islice(pairs, EVENTS)):
        event: dict[str, Any] = {"id": i, "x": x}
        if labelled:
            event["y"] = y
        out.append(orjson.loads(orjson.dumps(event)))
    return out


def _with_strings() -> Iterator[tuple[dict[str, Any], Any]]:
    for x, y in datasets.synth.Agrawal(seed=7):
        yield {"salary": x["salary"], "age": x["age"], "elevel": f"e{x['elevel']}", "car": f"c{x['car']}",
               "zipcode": f"z{x['zipcode']}"}, y


DATA: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "binary": lambda: _decoded(iter(datasets.Phishing())),
    "multiclass": lambda: _decoded(iter(datasets.ImageSegments())),
    "strings": lambda: _decoded(_with_strings()),
    "regression": lambda: _decoded(iter(datasets.TrumpApproval())),
    "unlabelled": lambda: _decoded(iter(datasets.Phishing()), labelled=False),
}


@dataclass(frozen=True)
class Case:
    spec: str
    data: str
    asks: str  # how River is asked: proba, label_proba, label, value, score, label_score


CASES = [
    Case("tests.estimators:arf", "multiclass", "proba"),
    Case("tests.estimators:amf", "binary", "proba"),
    Case("tests.estimators:adaboost", "binary", "proba"),
    Case("tests.estimators:bagging", "multiclass", "proba"),
    Case("tests.estimators:knn", "binary", "proba"),
    Case("tests.estimators:gaussian_nb", "multiclass", "proba"),
    Case("tests.estimators:hoeffding_tree", "strings", "proba"),
    Case("tests.estimators:adaptive_tree", "binary", "proba"),
    Case("tests.estimators:passive_aggressive", "binary", "proba"),
    Case("tests.estimators:one_vs_rest", "multiclass", "proba"),
    Case("tests.estimators:one_vs_one", "multiclass", "label"),
    Case("tests.estimators:one_hot_logreg", "strings", "proba"),
    Case("tests.estimators:no_change", "multiclass", "label_proba"),
    Case("tests.estimators:pa_regressor", "regression", "value"),
    Case("tests.estimators:arf_regressor", "regression", "value"),
    Case("tests.estimators:amf_regressor", "regression", "value"),
    Case("tests.estimators:adaptive_tree_regressor", "regression", "value"),
    Case("tests.estimators:half_space_trees", "binary", "score"),
    Case("tests.estimators:one_class_svm", "unlabelled", "score"),
    Case("tests.estimators:quantile_filter", "binary", "score"),
    Case("tests.estimators:gaussian_scorer", "regression", "label_score"),
    # every preset, end to end
    Case("binary", "strings", "proba"),
    Case("logreg", "binary", "proba"),
    Case("multiclass", "multiclass", "proba"),
    Case("tree", "strings", "proba"),
    Case("regression", "regression", "value"),
    Case("anomaly", "binary", "score"),
    Case("forest", "multiclass", "proba"),
]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _json(value: Any) -> Any:
    """What a value looks like after the service encodes it (labels become object keys)."""
    if isinstance(value, dict):
        value = {k: _plain(v) for k, v in value.items()}
    return orjson.loads(orjson.dumps(_plain(value), option=orjson.OPT_NON_STR_KEYS))


def river_loop(case: Case, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """River alone over the same ordered stream: what each prediction message must hold."""
    model = build_model(case.spec)
    out = []
    for event in events:
        x, y = event["x"], event.get("y")
        expected: dict[str, Any]
        if case.asks == "proba":
            proba = model.predict_proba_one(x)
            expected = {"prediction": max(proba, key=proba.get) if proba else None, "proba": proba}
        elif case.asks == "label_proba":
            expected = {"prediction": model.predict_one(x), "proba": model.predict_proba_one(x)}
        elif case.asks in ("label", "value"):
            expected = {"prediction": model.predict_one(x)}
        elif case.asks == "score":
            expected = {"prediction": model.score_one(x)}
        else:
            expected = {"prediction": model.score_one(x, y)}
        if case.asks == "score":
            model.learn_one(x)
        elif y is not None:
            model.learn_one(x, y)
        out.append({key: _json(value) for key, value in expected.items()})
    return out


def test_every_kind_of_estimator_predicts_like_river(broker, redis_server) -> None:  # type: ignore[no-untyped-def]
    assert {c.spec for c in CASES} >= set(PRESETS)
    stacks: list[tuple[Case, Stack, list[dict[str, Any]]]] = []
    try:
        for case in CASES:
            stack = make_stack(broker, redis_server)
            events = DATA[case.data]()
            stack.produce([orjson.dumps(e) for e in events])
            stack.start("--model", case.spec, "--snapshot-every-events", "1000", "--drift-window", "0")
            stacks.append((case, stack, events))
        for case, stack, events in stacks:
            outputs = [orjson.loads(m.value()) for m in stack.read(stack.output, len(events), timeout=180)]
            assert not stack.read_nowait(stack.dlq), f"{case.spec}: events were dead-lettered"
            expected = river_loop(case, events)
            assert [o["id"] for o in outputs] == [e["id"] for e in events], case.spec
            for i, (output, wanted) in enumerate(zip(outputs, expected, strict=True)):
                got = {key: output.get(key) for key in wanted}
                assert got == wanted, f"{case.spec}, event {i}: {got} != {wanted}"
                assert ("proba" in output) == ("proba" in wanted and wanted["proba"] is not None), case.spec
    finally:
        for _, stack, _ in stacks:
            stack.cleanup()
