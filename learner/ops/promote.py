"""``learner promote``: a challenger's model becomes the champion's head (README "Experiments").

The running challenger is asked for a snapshot first (so the champion re-learns as little as
possible), that snapshot becomes a new, pinned version of the champion, and a rollback with replay
makes it the head (see :mod:`learner.state.promotion`). Then the challenger is retired: its
registration goes, its process sees that and stops with a last snapshot, and its keys are deleted.
"""

from __future__ import annotations

import time

from learner.core.positions import Position
from learner.errors import NoServiceAnswered, StateError, UsageError
from learner.ops.fleet import gather
from learner.state.control import ControlPlane
from learner.state.promotion import promote
from learner.state.snapshots import SnapshotStore

__all__ = ["promote_challenger"]

#: Seconds to wait for the promoted challenger's process to stop before its keys are deleted anyway.
RETIRE_WAIT = 30.0


def promote_challenger(store: SnapshotStore, challenger: str, reason: str, force: bool = False) -> int:
    enrolment = store.challengers.get(challenger)
    if enrolment is None:
        raise UsageError(f"{store.label} has no challenger {challenger!r}: see `learner challengers list`")
    lineage = store.lineage(challenger)
    version = _latest(lineage)
    loaded = lineage.load(version, force=force)
    _check_champion_not_behind(store, lineage, loaded.meta.position())
    done = promote(store, loaded, challenger, reason)
    comparison = done.comparison or {}
    difference = comparison.get("difference") or {}
    standing = (f"{comparison.get('paired_events', 0):,} events paired, difference {difference['value']:+.4f} "
                f"({difference['metric']})" if difference.get("paired") else "nothing paired")
    store.audit.append("promotion", f"challenger {challenger} ({done.spec}, its version {done.challenger_version}) -> "
                       f"version {done.version} (head was {done.previous}, {done.previous_spec}); {standing}; "
                       f"reason: {reason or '-'}")
    _retire(store, challenger)
    print(f"promoted challenger {challenger!r} ({done.spec}) of {store.label}: version {done.version} (from its "
          f"version {done.challenger_version}) is the head, pinned; a running service adopts it within 2 s and "
          f"re-learns from its offsets. `learner rollback --name {store.name} --to {done.previous}` undoes it.")
    return 0


def _check_champion_not_behind(store: SnapshotStore, lineage: SnapshotStore, position: Position) -> None:
    """Refuse when the champion has answered fewer events than the challenger learned: the champion would
    continue after them, and nothing would ever publish their predictions. A running champion is compared by
    the input events each side's status says it has done; a stopped one by its head's offsets, partition by
    partition."""
    champion, theirs = gather(store), gather(lineage).service
    if champion.service is not None and theirs is not None:
        behind = champion.service.events_done < theirs.events_done
    else:
        head = champion.last_snapshot.position() if champion.last_snapshot is not None else {}
        behind = any(offset > head.get(tp, 0) for tp, offset in position.items())
    if behind:
        raise UsageError(f"the champion of {store.label} is behind its challenger: a promotion now would publish "
                         "no prediction for the events between; start the champion (or let it catch up), then promote")


def _latest(lineage: SnapshotStore) -> int:
    """The challenger's newest snapshot: taken now when its process runs, else its head."""
    if gather(lineage).lease is not None:
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


def _retire(store: SnapshotStore, challenger: str) -> None:
    """Unregister the challenger, let its process stop (it takes a last snapshot), then delete its keys (never
    while a process holds its lease)."""
    lineage = store.lineage(challenger)
    store.challengers.retire(challenger, time.time())
    deadline = time.monotonic() + RETIRE_WAIT
    while (lease := gather(lineage).lease) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if lease is not None:
        print(f"{lineage.label} still runs ({lease.who} holds its lease): it stops at its next control poll; its "
              f"snapshots stay until `learner challengers remove --name {store.name} --challenger {challenger}`")
        return
    store.challengers.delete_lineage(challenger)
