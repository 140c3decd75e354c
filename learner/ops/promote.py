"""``learner promote``: a challenger's model becomes the champion's head (README "Experiments").

The steps are :func:`learner.state.promotion.promote_challenger`'s (a champion's ``--auto-promote``
runs the same); this is what the operator reads.
"""

from __future__ import annotations

from learner.state.promotion import promote_challenger
from learner.state.snapshots import SnapshotStore

__all__ = ["promote_command"]


def promote_command(store: SnapshotStore, challenger: str, reason: str, force: bool = False) -> int:
    done = promote_challenger(store, challenger, reason, force=force)
    if not done.retired:
        lineage = store.lineage(challenger)
        print(f"{lineage.label} still runs: it stops at its next control poll; its snapshots stay until "
              f"`learner challengers remove --name {store.name} --challenger {challenger}`")
    print(f"promoted challenger {challenger!r} ({done.spec}) of {store.label}: version {done.version} (from its "
          f"version {done.challenger_version}) is the head, pinned; a running service adopts it within 2 s and "
          f"re-learns from its offsets. `learner rollback --name {store.name} --to {done.previous}` undoes it.")
    return 0
