"""Where a challenger begins: the offsets of a champion version, with a fresh model or that version's own.

The first start registers the challenger (:class:`~learner.state.challengers.Enrolment`), once what
it asks for is known to work; every start until its first snapshot begins from that registration
again, so a challenger killed early learns nothing twice. A fresh model starts with nothing waiting
for labels, like a backtest's (the labels of events the champion served before the start find
nothing); a fork starts from the version as it stands, the features it waits for included. Either
merges the input as the champion did (the version's marks) and counts its metrics from the start.
"""

from __future__ import annotations

import logging
import time

from learner.core.evaluation import metrics_for
from learner.core.labels import LabelJoin
from learner.core.live_pairing import LivePairing
from learner.core.models import build_model, comparable, kind_of
from learner.core.scorecard import Scorecard
from learner.core.step import LearningStep
from learner.errors import SnapshotMissing, UsageError
from learner.runtime.model.restore import Restored, new_join, restored_from
from learner.settings import Settings
from learner.state.challengers import Enrolment
from learner.state.snapshots import LoadedSnapshot, SnapshotStore

__all__ = ["CHAMPION_POLL", "begin"]

log = logging.getLogger(__name__)

#: Seconds between two looks for the champion's first version.
CHAMPION_POLL = 0.5


def begin(store: SnapshotStore, settings: Settings) -> Restored:
    """The model a challenger without a snapshot of its own starts from, at its champion version's offsets."""
    assert store.challenger is not None
    champion = store.lineage(None)
    known = store.challengers.get(store.challenger)
    if known is not None and known.spec != settings.model and "model" in settings.model_fields_set:
        log.warning("challenger %r learns %s since its first start; --model %s is ignored", known.challenger,
                    known.spec, settings.model)
    if known is None and store.challengers.is_retired(store.challenger):
        raise UsageError(f"challenger {store.challenger!r} of {settings.name!r} was promoted: it runs no more (start "
                         f"another under a new name, or `learner challengers remove` frees the name)")
    enrolment = known or _asked(champion, store.challenger, settings)
    try:
        loaded = champion.load(enrolment.from_version, force=settings.force)
    except SnapshotMissing:  # retention deleted it before the challenger's first snapshot
        raise UsageError(f"{champion.label} no longer has version {enrolment.from_version}, where challenger "
                         f"{store.challenger!r} begins: remove it and start it again from a newer version") from None
    step, join = _model(enrolment, loaded, settings)
    champion_task = loaded.state.scorecard.task if loaded.state.scorecard is not None else None
    if known is None:
        store.challengers.enrol(enrolment)
        champion.audit.append("challenger", f"{enrolment.challenger}: {_described(enrolment)}")
        log.info("challenger %r registered: %s", enrolment.challenger, _described(enrolment))
    names = settings.metric or (tuple(t.name for t in loaded.state.scorecard.evaluation.tracked)
                                if loaded.state.scorecard is not None else ())
    scorecard = Scorecard.new(step.task, metrics_for(kind_of(step.model), names), settings.drift_window,
                              settings.drift_warmup)
    position = loaded.meta.position()
    # Paired with the champion on the events both score from here on, keyed as learn-time places (source, partition).
    floor = {(int(topic != settings.input_topic), partition): offset for (topic, partition), offset in position.items()}
    scorecard.pairing = LivePairing(champion_task or step.task, tuple(t.name for t in scorecard.evaluation.tracked),
                                    floor, since=loaded.meta.created)
    log.info("challenger %r begins at version %d's offsets of %r with %s", enrolment.challenger,
             enrolment.from_version, settings.name, f"a copy of its {enrolment.spec} model" if enrolment.fork
             else f"a new {enrolment.spec} model")
    return Restored(step, scorecard, None, enrolment.spec, position, join=join, marks=dict(loaded.state.marks))


def _described(enrolment: Enrolment) -> str:
    return (f"{enrolment.spec} from version {enrolment.from_version}"
            + (" (a copy of its model)" if enrolment.fork else " (a new model)"))


def _asked(champion: SnapshotStore, challenger: str, settings: Settings) -> Enrolment:
    """What the first start asks for: the version (the champion's head unless told), the spec."""
    forks_own = settings.fork and "model" not in settings.model_fields_set
    if not forks_own:
        build_model(settings.model)  # a spec that cannot load says so now, not after the wait below
    head = _champion_head(champion)  # also with --from-version: before any version, none can be told apart
    version = settings.from_version or head
    try:
        meta = champion.meta(version)
    except SnapshotMissing:
        raise UsageError(f"{champion.label} has no version {version} to start challenger {challenger!r} from: "
                         f"see `learner snapshots list --name {settings.name}`") from None
    spec = settings.model
    if forks_own:
        spec = meta.model_spec  # a fork learns on with the version's own spec
    return Enrolment(challenger, spec, version, settings.fork, time.time())


def _champion_head(champion: SnapshotStore) -> int:
    said = False
    while (head := champion.head()) is None:
        if not said:
            log.warning("%s has no version yet: the challenger waits for its first snapshot", champion.label)
            said = True
        time.sleep(CHAMPION_POLL)
    return head


def _model(enrolment: Enrolment, loaded: LoadedSnapshot, settings: Settings) -> tuple[LearningStep, LabelJoin | None]:
    """The challenger's model (and what waits for labels), checked against the champion's."""
    if enrolment.fork:
        if enrolment.spec != loaded.meta.model_spec:
            raise UsageError(f"--fork starts from version {enrolment.from_version}'s own model "
                             f"({loaded.meta.model_spec}): give --model {loaded.meta.model_spec} with --fork, or no --fork")
        restored = restored_from(loaded, settings)
        step, join = restored.step, restored.join
    else:
        step, join = LearningStep(build_model(enrolment.spec)), new_join(settings)
    champion = loaded.state.scorecard.task if loaded.state.scorecard is not None else step.task
    if not comparable(step.task, champion):
        raise UsageError(f"{enrolment.spec!r} is a {step.task} model and the champion a {champion} model: "
                         "a challenger must answer what the champion answers")
    return step, join
