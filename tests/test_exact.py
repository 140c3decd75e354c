"""The service predicts exactly like River's own predict-then-learn loop (no training-serving skew)."""

from __future__ import annotations

import orjson
import pytest
from river import datasets

from learner.core.models import build_model
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def river_loop(spec: str, events: list[dict]) -> list[tuple[object, object]]:
    """What River alone predicts over the same ordered stream: (prediction, proba) per event."""
    model = build_model(spec)
    out = []
    for event in events:
        if spec == "regression":
            out.append((model.predict_one(event["x"]), None))
        else:
            proba = model.predict_proba_one(event["x"])
            out.append((max(proba, key=proba.get), {str(k).lower(): v for k, v in proba.items()}))
        model.learn_one(event["x"], event["y"])
    return out


@pytest.mark.parametrize(("spec", "dataset"), [("logreg", datasets.Phishing), ("regression", datasets.TrumpApproval)])
def test_predictions_equal_river_loop(stack: Stack, spec: str, dataset: type) -> None:
    events = [{"id": i, "x": x, "y": y} for i, (x, y) in enumerate(dataset())]
    stack.produce([orjson.dumps(e) for e in events], [str(e["id"]).encode() for e in events])
    service = stack.start("--model", spec, "--snapshot-every-events", "500")
    outputs = [orjson.loads(m.value()) for m in stack.read(stack.output, len(events))]
    assert stack.stop(service) == 0

    expected = river_loop(spec, events)
    assert [o["id"] for o in outputs] == [e["id"] for e in events]
    for output, (prediction, proba) in zip(outputs, expected, strict=True):
        assert output["prediction"] == prediction
        assert output.get("proba") == proba
    assert outputs[-1]["learned"] == len(events) - 1
    head = stack.store().meta(stack.store().head())
    assert head.events_learned == len(events)
    assert head.offsets == {f"{stack.input}:0": len(events)}
