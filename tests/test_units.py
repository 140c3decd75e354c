"""Unit tests of the pure logic: codec, learning step, evaluation, settings. No broker, no Redis."""

from __future__ import annotations

import pickle

import pytest
from river import datasets, evaluate, metrics

from learner.core.evaluation import Evaluation, MetricError
from learner.core.models import PRESETS, build_model, task_of
from learner.core.step import LabelRejected, LearningStep, prequential
from learner.settings import Settings
from stream.codec import InvalidEvent, decode_event


@pytest.mark.parametrize("raw", [b'{"x": {"a": 1}}', b'{"id": "k", "x": {}, "y": "cat"}', b'{"x": {"a": null}}'])
def test_valid_events_decode(raw: bytes) -> None:
    event = decode_event(raw)
    assert decode_event(event.raw).x == event.x


def test_nulls_are_dropped_and_reencoded() -> None:
    event = decode_event(b'{"x": {"a": 1.5, "b": null}, "y": false}')
    assert event.x == {"a": 1.5} and event.y is False and event.raw == b'{"x":{"a":1.5},"y":false}'


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"x": 1}', b'{"x": {"a": {}}}', b'{"x": {}, "z": 1}'])
def test_invalid_events_raise(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode_event(raw)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_survives_a_pickle_round_trip(name: str) -> None:
    model = build_model(name)
    x = {"a": 1.0, "b": 2.0}
    model.learn_one(x) if task_of(model) == "anomaly" else model.learn_one(x, 1 if task_of(model) == "regression" else True)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is type(model)


@pytest.mark.parametrize(("spec", "dataset", "metric"), [
    ("logreg", datasets.Phishing, metrics.Accuracy()),
    ("logreg", datasets.Phishing, metrics.LogLoss()),
    ("regression", datasets.TrumpApproval, metrics.MAE()),
    ("multiclass", datasets.ImageSegments, metrics.MacroF1()),
])
def test_prequential_metric_equals_progressive_val_score(spec: str, dataset: type, metric: metrics.base.Metric) -> None:
    step = LearningStep(build_model(spec))
    evaluation = Evaluation(step.task, (type(metric).__name__,))
    for x, y in dataset():
        prequential(step, evaluation, x, y)
    expected = evaluate.progressive_val_score(dataset(), build_model(spec), metric)
    assert evaluation.values()[type(metric).__name__]["all"] == expected.get()


@pytest.mark.parametrize(("spec", "dataset", "names"), [
    ("logreg", datasets.Phishing, ("Accuracy", "LogLoss", "F1", "Precision", "Recall", "BalancedAccuracy", "MCC",
                                   "ROCAUC", "CohenKappa", "GeometricMean")),
    ("multiclass", datasets.ImageSegments, ("Accuracy", "MacroF1", "MicroF1", "WeightedF1", "CrossEntropy")),
    ("regression", datasets.TrumpApproval, ("MAE", "MSE", "RMSE", "R2", "SMAPE")),
])
def test_scoring_a_batch_leaves_what_scoring_event_by_event_leaves(spec: str, dataset: type, names: tuple[str, ...]) -> None:
    """The gateway scores whole batches (counts, one running-mean loop): the same metrics to the last bit."""
    step, scored = LearningStep(build_model(spec)), []
    for x, y in dataset():
        prediction, proba = step.process(x, y)
        scored.append((y, prediction, dict(proba) if proba is not None else None))
    one, batched = Evaluation(step.task, names, window=100), Evaluation(step.task, names, window=100)
    for y, prediction, proba in scored:
        one.update(y, prediction, proba)
    start = 0
    for size in [1, 7, 250, 3, 64] * 100:  # uneven batches, the last one empty
        batched.update_batch(scored[start:start + size])
        start += size
    assert start >= len(scored)
    assert one.values() == batched.values()
    assert [pickle.dumps(t.metric) for t in one.tracked] == [pickle.dumps(t.metric) for t in batched.tracked]


def test_regressor_refuses_text_labels() -> None:
    step = LearningStep(build_model("regression"))
    with pytest.raises(LabelRejected):
        step.process({"a": 1.0}, "high")
    assert step.learned == 0


def test_unknown_metric_is_one_clear_error() -> None:
    with pytest.raises(MetricError, match="unknown metric 'Acuracy'"):
        Evaluation("binary", ("Acuracy",))


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNER_NAME", "fraud")
    monkeypatch.setenv("LEARNER_SNAPSHOT_EVERY_EVENTS", "5")
    settings = Settings(snapshot_every_events=7)
    assert settings.name == "fraud" and settings.snapshot_every_events == 7
    assert settings.dead_letter_topic == "events.dlq" and settings.consumer_group == "learner.fraud"
    monkeypatch.setenv("LEARNER_METRIC", "Accuracy, LogLoss")  # a list from the environment: comma-separated
    assert Settings().metric == ("Accuracy", "LogLoss")


def test_every_role_has_a_program_and_every_role_marked_on_a_setting_exists() -> None:
    from learner.runtime.roles import ROLES
    from learner.settings import ROLE_NAMES, ReadBy, Settings

    assert tuple(ROLES) == ROLE_NAMES
    marked = {role for field in Settings.model_fields.values() for m in field.metadata if isinstance(m, ReadBy)
              for role in m.roles}
    assert marked <= set(ROLE_NAMES)
    learner_only = Settings(role="serve", snapshot_every_events=5, labels_topic="labels", follow_poll=1.0)
    assert learner_only.ignored() == ["--labels-topic", "--snapshot-every-events"]
    assert Settings(role="learn", follow_poll=1.0).ignored() == ["--follow-poll"]
    assert Settings(role="all", snapshot_keep=3).ignored() == []


def test_each_role_declares_the_metrics_it_reports_and_the_readme_lists_them() -> None:
    from pathlib import Path

    from learner.runtime.model.metrics import LearnerMetrics
    from learner.runtime.replica.metrics import ReplicaMetrics
    from learner.runtime.shared.monitor import StreamMetrics

    def names(metrics: StreamMetrics) -> set[str]:
        return {f"{family.name}_total" if family.type == "counter" else family.name
                for family in metrics.registry.collect()}

    shared, learner, replica = names(StreamMetrics("m")), names(LearnerMetrics("m")), names(ReplicaMetrics("m"))
    assert shared <= learner and shared <= replica
    assert {"learner_snapshot_seconds", "learner_metric", "learner_lease_held"} <= learner - replica
    assert {"learner_reload_seconds", "learner_versions_behind"} <= replica - learner
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in learner | replica), sorted(
        name for name in learner | replica if f"`{name}`" not in readme)
