"""What the model process starts from: the head snapshot if there is one (the truth), else a new model.

A snapshot's state is a dict: ``model`` (the River estimator), ``learned`` (events learned by its
lineage), ``scorecard`` (online evaluation and drift detectors; snapshots of earlier releases hold
an ``evaluation`` only, and get fresh detectors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from learner.core.evaluation import metrics_for
from learner.core.labels import LabelJoin
from learner.core.models import build_model, kind_of
from learner.core.positions import Position
from learner.core.scorecard import Scorecard
from learner.core.snapshot_state import SnapshotState
from learner.core.step import LearningStep
from learner.core.timeline import TimelineEntry
from learner.errors import CorruptSnapshot
from learner.settings import Settings
from learner.state.snapshots import LoadedSnapshot, SnapshotStore

__all__ = ["Beginning", "Restored", "new_join", "restore", "restored_from"]

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """A model and everything that goes with it, ready to stream from ``position``."""

    step: LearningStep
    scorecard: Scorecard
    head: int | None
    spec: str
    position: Position
    fallback: str | None = None  # why the head was not usable, when an ancestor was loaded instead
    join: LabelJoin | None = None  # with a labels topic: the features waiting for their labels
    marks: dict[tuple[str, int], int] = field(default_factory=dict)


def restored_from(loaded: LoadedSnapshot, settings: Settings, position: Position | None = None) -> Restored:
    """A loaded snapshot as a model to stream on with (from its own offsets unless told otherwise)."""
    state = loaded.state
    step = LearningStep(state.model, state.learned)
    scorecard = _scorecard(state, settings, loaded.meta.version)
    join = state.labels
    if not settings.labels_topic:
        join = None  # no labels topic any more: nothing will join
    elif join is None:
        join = new_join(settings)
    else:  # the settings may have changed since the snapshot: today's win
        join.ttl_ms, join.max_pending, join.early_ms = _join_limits(settings)
    return Restored(step, scorecard, loaded.meta.version, loaded.meta.model_spec,
                    loaded.meta.position() if position is None else position, join=join,
                    marks=dict(state.marks))


def _join_limits(settings: Settings) -> tuple[int, int, int]:
    return int(settings.label_ttl * 1000), settings.max_pending, int(settings.label_early_window * 1000)


def new_join(settings: Settings) -> LabelJoin | None:
    """An empty join when there is a labels topic, else None."""
    return LabelJoin(*_join_limits(settings)) if settings.labels_topic else None


def _scorecard(state: SnapshotState, settings: Settings, version: int) -> Scorecard:
    if state.scorecard is not None:
        if "drift_warmup" in settings.model_fields_set:  # given: it applies to a detector still warming up
            state.scorecard.performance.rewarm(settings.drift_warmup)
        return state.scorecard
    if state.evaluation is not None:  # written before detectors were kept
        return Scorecard.of(state.evaluation, settings.drift_window, settings.drift_warmup)
    raise CorruptSnapshot(f"snapshot {version} of {settings.name!r} holds no usable model: no evaluation")


#: Where a lineage without a snapshot begins, when not from nothing (a challenger: from its champion's version).
Beginning = Callable[[SnapshotStore, Settings], Restored]


def restore(store: SnapshotStore, settings: Settings, beginning: Beginning | None = None) -> Restored:
    """The head, or its newest loadable ancestor (made the head, loudly), or ``beginning``, or a new model."""
    loaded = store.load_head(force=settings.force)
    if loaded is None and beginning is not None:
        return beginning(store, settings)
    if loaded is None:
        model = build_model(settings.model)
        step = LearningStep(model)
        scorecard = Scorecard.new(step.task, metrics_for(kind_of(model), settings.metric), settings.drift_window,
                                  settings.drift_warmup)
        log.info("no snapshot of %r yet: starting a new %s model", settings.name, settings.model)
        return Restored(step, scorecard, None, settings.model, {}, join=new_join(settings))
    if loaded.fallback:  # the head did not load: make the version we did load the head, openly,
        store.rollback(loaded.meta.version, replay=True)  # and learn again what the lost head had learned
        store.audit.append("fallback", loaded.fallback)
        store.timeline.note(TimelineEntry("fallback", time.time(), loaded.meta.version, loaded.meta.events_learned,
                                          why=loaded.fallback))
    meta = loaded.meta
    if meta.model_spec != settings.model:
        log.warning("snapshot %d holds a %r model; --model %r is ignored", meta.version, meta.model_spec, settings.model)
    position = store.rolled_back_position(meta.version) or meta.position()
    restored = restored_from(loaded, settings, position)
    restored.fallback = loaded.fallback
    log.info("restored %s version %d (%d events learned)", store.label, meta.version, restored.step.learned)
    return restored
