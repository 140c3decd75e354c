"""A challenger's model made the champion's head (README "Experiments"): the state steps of a promotion.

The challenger's snapshot becomes a new version of the champion, beside its head, carrying the
challenger's model, its count of events learned, its scorecard (without the pairing, which was the
challenger's view of its champion), the features it waits for and its merge marks, at its offsets.
Then a rollback with replay makes it the head: a running champion adopts it as it adopts any
rollback (within 2 s), seeks to those offsets and re-learns what the challenger had not yet learned,
so the champion's lineage from then on is exactly the challenger's. The new version is pinned, so
the guard's reference follows the promotion instead of undoing it at its first trip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from learner.core.snapshot_state import SnapshotState
from learner.errors import HeadMoved
from learner.state.audit import operator
from learner.state.pickled import dump_state
from learner.state.snapshots import LoadedSnapshot, SnapshotStore

__all__ = ["Promotion", "promote"]

#: Attempts to store the new version beside a head that a running champion keeps moving.
ATTEMPTS = 5


@dataclass(frozen=True)
class Promotion:
    """What a promotion did: the new head, what it replaced, and the comparison at that moment."""

    version: int
    previous: int | None
    challenger: str
    challenger_version: int
    spec: str
    previous_spec: str | None
    comparison: dict[str, Any] | None


def promote(champion: SnapshotStore, loaded: LoadedSnapshot, challenger: str, reason: str) -> Promotion:
    """Store ``loaded`` (the challenger's snapshot) as a new version of ``champion`` and roll back to it."""
    state = loaded.state
    scorecard = dataclasses.replace(state.scorecard, pairing=None) if state.scorecard is not None else None
    blob = dump_state(SnapshotState(state.model, state.learned, scorecard, state.evaluation, state.labels,
                                    dict(state.marks)))
    comparison = loaded.meta.extra.get("pairing")
    for attempt in range(ATTEMPTS):
        head = champion.head()
        previous_spec = champion.meta(head).model_spec if head is not None else None
        version = champion.next_version()
        extra = {"promoted": {"challenger": challenger, "challenger_version": loaded.meta.version,
                              "previous_spec": previous_spec, "comparison": comparison, "who": operator(),
                              "why": reason}}
        meta = champion.build_meta(blob, version=version, parent=head, events_learned=loaded.meta.events_learned,
                                   offsets=loaded.meta.offsets, metrics=loaded.meta.metrics,
                                   model_spec=loaded.meta.model_spec, model_params=loaded.meta.model_params,
                                   reason="promotion", extra=extra)
        try:
            champion.write(meta, blob, expected_head=head, move_head=False)
            break
        except HeadMoved:  # the champion's own snapshot landed meanwhile: beside the new head then
            if attempt == ATTEMPTS - 1:
                raise
    champion.pin(version)
    previous = champion.rollback(version, replay=True)
    return Promotion(version, previous, challenger, loaded.meta.version, loaded.meta.model_spec, previous_spec,
                     comparison)
