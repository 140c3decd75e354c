"""Which snapshot a model starts from: the head, or when it does not load, its newest ancestor that does.

Ancestors, not merely older versions: after a rollback, older numbers include the branch the
operator discarded (README "Snapshots, history and rollback").
"""

from __future__ import annotations

import logging

from learner.errors import OtherRiverVersion, SnapshotMissing, SnapshotRefused
from learner.state.snapshots import LoadedSnapshot, SnapshotStore

__all__ = ["load_head"]

log = logging.getLogger(__name__)


def load_head(store: SnapshotStore, force: bool = False) -> LoadedSnapshot | None:
    """The head, or (loudly) its newest ancestor that loads; None for a new model.

    Ancestors, not merely older versions: after a rollback, older numbers include the branch
    the operator discarded. Only when a version's own metadata is unreadable (so its parent is
    unknown) does the walk fall back to the next older number. A head written by another river
    version is not corrupt: that is refused (``--force`` loads it), never skipped.
    """
    head = store.head()
    if head is None:
        return None
    version: int | None = head
    while version is not None:
        try:
            loaded = store.load(version, force)
        except OtherRiverVersion:
            if version == head:
                raise
            log.error("version %d of %r was written by another river version; trying its parent", version,
                      store.name)
        except (SnapshotMissing, SnapshotRefused) as error:
            log.error("%s; trying its parent", error)
        else:
            if version == head:
                return loaded
            fallback = f"head {head} of {store.name!r} is unusable: fell back to version {version}"
            log.error("%s", fallback)
            return LoadedSnapshot(loaded.meta, loaded.state, fallback)
        version = _parent_or_older(store, version)
    raise SnapshotRefused(f"no snapshot of {store.name!r} can be loaded (head was {head})")


def _parent_or_older(store: SnapshotStore, version: int) -> int | None:
    """Where the walk to a loadable ancestor goes next from ``version``."""
    try:
        parent = store.meta(version).parent
    except (SnapshotMissing, SnapshotRefused):
        parent = None
    else:
        if parent is None or parent < version:
            return parent
    return next((v for v in reversed(store.versions()) if v < version), None)
