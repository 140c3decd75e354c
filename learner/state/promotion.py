"""A challenger's model made the champion's head (README "Experiments"): the state steps of a promotion.

The challenger's snapshot becomes a new version of the champion, beside its head, carrying the
challenger's model, its count of events learned, its scorecard (without the pairing, which was the
challenger's view of its champion), the features it waits for and its merge marks, at its offsets.
Then a rollback with replay makes it the head: a running champion adopts it as it adopts any
rollback (within 2 s), seeks to those offsets and re-learns what the challenger had not yet learned,
so the champion's lineage from then on is exactly the challenger's. The new version is pinned, so
the guard's reference follows the promotion instead of undoing it at its first trip.

:func:`promote_challenger` is the whole of it, as ``learner promote`` and a champion's
``--auto-promote`` both run it: the challenger's newest snapshot (asked of its process when it
runs), a check that the champion is not behind it, the steps above, the audit entry, and the
challenger's retirement (its registration goes, its process stops with a last snapshot, then its
keys are deleted, never while its lease is held).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from learner.core.snapshot_state import SnapshotState
from learner.core.timeline import TimelineEntry
from learner.errors import HeadMoved, NoServiceAnswered, StateError, UsageError
from learner.state.audit import operator
from learner.state.control import ControlPlane
from learner.state.lease import holder
from learner.state.pickled import dump_state
from learner.state.snapshots import LoadedSnapshot, SnapshotStore

__all__ = ["Promotion", "promote", "promote_challenger"]

#: Attempts to store the new version beside a head that a running champion keeps moving.
ATTEMPTS = 5
#: Seconds to wait for the promoted challenger's process to stop; its keys are deleted only once it has.
RETIRE_WAIT = 30.0


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
    #: Whether the challenger's keys are gone (False: its process still held its lease after ``RETIRE_WAIT``).
    retired: bool = False

    def standing(self) -> str:
        difference = (self.comparison or {}).get("difference") or {}
        if not difference.get("paired"):
            return "nothing paired"
        return (f"{(self.comparison or {}).get('paired_events', 0):,} events paired, difference "
                f"{difference['value']:+.4f} ({difference['metric']})")


def promote_challenger(store: SnapshotStore, challenger: str, reason: str, who: str | None = None,
                       force: bool = False) -> Promotion:
    """Promote ``challenger`` of ``store``'s model (see the module's docstring); ``who`` as the audit says it."""
    if store.challengers.get(challenger) is None:
        raise UsageError(f"{store.label} has no challenger {challenger!r}: see `learner challengers list`")
    lineage = store.lineage(challenger)
    loaded = lineage.load(_latest(lineage), force=force)
    _check_champion_not_behind(store, lineage, loaded)
    done = promote(store, loaded, challenger, reason, who)
    store.audit.append("promotion", f"challenger {challenger} ({done.spec}, its version {done.challenger_version}) -> "
                       f"version {done.version} (head was {done.previous}, {done.previous_spec}); {done.standing()}; "
                       f"reason: {reason or '-'}", who)
    store.timeline.note(TimelineEntry("promotion", time.time(), done.version, loaded.meta.events_learned,
                                      who or operator(), reason, {"challenger": challenger, "spec": done.spec,
                                                                  "previous": done.previous,
                                                                  "previous_spec": done.previous_spec}))
    return dataclasses.replace(done, retired=_retire(store, challenger))


def _check_champion_not_behind(store: SnapshotStore, lineage: SnapshotStore, loaded: LoadedSnapshot) -> None:
    """Refuse when the champion has answered fewer events than the challenger learned: the champion would
    continue after them, and nothing would ever publish their predictions. A running champion is compared by
    the input events each side's status says it has done; a stopped one by its head's offsets, partition by
    partition."""
    champion, theirs = ControlPlane(store).service_status(), ControlPlane(lineage).service_status()
    if champion is not None and theirs is not None:
        behind = champion.events_done < theirs.events_done
    else:
        head = store.head()
        done = store.meta(head).position() if head is not None else {}
        behind = any(offset > done.get(tp, 0) for tp, offset in loaded.meta.position().items())
    if behind:
        raise UsageError(f"the champion of {store.label} is behind its challenger: a promotion now would publish "
                         "no prediction for the events between; start the champion (or let it catch up), then promote")


def _latest(lineage: SnapshotStore) -> int:
    """The challenger's newest snapshot: taken now when its process runs, else its head."""
    if holder(lineage) is not None:
        try:
            answer = ControlPlane(lineage).request_snapshot(timeout=60)
        except NoServiceAnswered:
            answer = ""
        if answer.isdigit():
            return int(answer)
        raise StateError(f"{lineage.label} could not snapshot now ({answer or 'no answer'}): try again")
    head = lineage.head()
    if head is None:
        raise UsageError(f"{lineage.label} has no snapshot yet: nothing to promote")
    return head


def _retire(store: SnapshotStore, challenger: str) -> bool:
    """Unregister the challenger, let its process stop (it takes a last snapshot), then delete its keys (never
    while a process holds its lease); whether they were deleted."""
    lineage = store.lineage(challenger)
    store.challengers.retire(challenger, time.time())
    deadline = time.monotonic() + RETIRE_WAIT
    while (lease := holder(lineage)) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if lease is not None:
        return False
    store.challengers.delete_lineage(challenger)
    return True


def promote(champion: SnapshotStore, loaded: LoadedSnapshot, challenger: str, reason: str,
            who: str | None = None) -> Promotion:
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
                              "previous_spec": previous_spec, "comparison": comparison, "who": who or operator(),
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
