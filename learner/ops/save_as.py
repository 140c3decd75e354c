"""``learner backtest --save-as C``: the replayed model kept as challenger C, ready to run on and to promote.

The backtest ends at an offset boundary (the head's offsets with ``--until head``, the topics' ends
with ``--until now``) with a model that learned every event from the start version on, in the
service's order. Saved as the first snapshot of a new challenger, registered as starting from that
version, it is exactly what a challenger started there would have become by then: ``learner run
--role challenger --challenger C`` resumes it from those offsets (its model, its metrics since the
start, the features it waits for, the merge's marks), and it is paired with the champion from
there on (the backtest's own comparison is kept in the snapshot's metadata, ``extra.backtest``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from learner.core.contender import Contender
from learner.core.live_pairing import LivePairing
from learner.core.models import describe_params
from learner.core.positions import Position, to_json_keys
from learner.core.scorecard import Scorecard
from learner.core.snapshot_state import SnapshotState
from learner.errors import UsageError
from learner.settings import NAME, Settings
from learner.state.challengers import Enrolment
from learner.state.pickled import dump_state
from learner.state.snapshots import SnapshotStore

__all__ = ["SaveAs", "check_free", "save_challenger"]


@dataclass(frozen=True)
class SaveAs:
    """Where the saved challenger begins (the backtest's start) and what it is."""

    challenger: str
    spec: str
    from_version: int
    fork: bool


def check_free(store: SnapshotStore, challenger: str) -> None:
    """Before the replay: the name is a valid one, and no challenger has it (or had it: promoted)."""
    if not re.match(NAME, challenger):
        raise UsageError(f"--save-as {challenger!r}: a challenger's name is letters, digits, '_', '.', '-'")
    if store.challengers.get(challenger) is not None or store.lineage(challenger).head() is not None:
        raise UsageError(f"{store.label} already has a challenger {challenger!r}: choose another name, or "
                         f"`learner challengers remove --name {store.name} --challenger {challenger}` first")
    if store.challengers.is_retired(challenger):
        raise UsageError(f"challenger {challenger!r} of {store.label} was promoted: choose another name (or "
                         "`learner challengers remove` frees it)")


def save_challenger(store: SnapshotStore, settings: Settings, saving: SaveAs, contender: Contender,
                    end: Position, marks: dict[tuple[str, int], int], comparison: dict[str, Any]) -> int:
    """Write the replayed model as the challenger's first snapshot at ``end``, register it; its version."""
    check_free(store, saving.challenger)  # again: the replay took a while
    lineage = store.lineage(saving.challenger)
    step, evaluation = contender.step_, contender.evaluation
    scorecard = Scorecard.of(evaluation, settings.drift_window, settings.drift_warmup)
    floor = {(int(topic != settings.input_topic), partition): offset for (topic, partition), offset in end.items()}
    scorecard.pairing = LivePairing(evaluation.task, tuple(t.name for t in evaluation.tracked), floor,
                                    since=time.time())
    blob = dump_state(SnapshotState(step.model, step.learned, scorecard, None, contender.join,
                                    dict(marks) if contender.join is not None else {}))
    version = lineage.next_version()
    meta = lineage.build_meta(blob, version=version, parent=None, events_learned=step.learned,
                              offsets=to_json_keys(end), metrics=evaluation.values(), model_spec=saving.spec,
                              model_params=describe_params(step.model), reason="backtest",
                              extra={"backtest": comparison})
    lineage.write(meta, blob, expected_head=None)
    enrolment = Enrolment(saving.challenger, saving.spec, saving.from_version, saving.fork, time.time())
    if store.challengers.enrol(enrolment) != enrolment:  # registered by someone else meanwhile
        raise UsageError(f"challenger {saving.challenger!r} of {store.label} was registered meanwhile: the "
                         f"backtest's model is kept as its version {version}, not registered")
    store.audit.append("challenger", f"{saving.challenger}: {saving.spec} saved by a backtest from version "
                       f"{saving.from_version} ({step.learned:,} events learned, version {version})")
    return version
