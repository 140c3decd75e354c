"""A snapshot's state as bytes: pickled with the highest protocol, unpickled only after verification.

Unpickling is code execution: only a blob whose signed metadata and checksum verified reaches
:func:`load_state` (:mod:`learner.state.snapshots`, :mod:`learner.state.live`).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from learner.core.snapshot_state import SnapshotState
from learner.errors import CorruptSnapshot

__all__ = ["dump_state", "load_state"]


def dump_state(state: SnapshotState) -> bytes:
    """Pickle a snapshot's state (highest protocol: large models serialise much faster)."""
    return pickle.dumps(state.to_dict(), protocol=pickle.HIGHEST_PROTOCOL)


#: Modules of earlier releases whose classes snapshots may hold, and where those classes live now.
_MOVED_MODULES = {
    "learner.evaluation": "learner.core.evaluation",
    "learner.step": "learner.core.step",
    "learner.drift": "learner.core.drift",
    "learner.models": "learner.core.models",
}


class _Unpickler(pickle.Unpickler):
    """Finds classes that moved between releases, so older snapshots still load."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED_MODULES.get(module, module), name)


def load_state(blob: bytes) -> SnapshotState:
    """Unpickle a verified blob; any failure is a CorruptSnapshot (it will not load on a retry either).

    >>> load_state(dump_state(SnapshotState("a model", learned=3)))
    SnapshotState(model='a model', learned=3, scorecard=None, evaluation=None, labels=None, marks={})
    >>> load_state(pickle.dumps({"learned": 3}))
    Traceback (most recent call last):
    ...
    learner.errors.CorruptSnapshot: does not hold a usable snapshot state: it holds no model
    >>> load_state(b"\\x80\\x04cno_such_module\\nThing\\n)\\x81.")
    Traceback (most recent call last):
    ...
    learner.errors.CorruptSnapshot: does not unpickle: ModuleNotFoundError: No module named 'no_such_module'
    """
    try:
        state = _Unpickler(io.BytesIO(blob)).load()
    except Exception as error:  # unpickling can raise anything: all mean "cannot load"
        raise CorruptSnapshot(f"does not unpickle: {type(error).__name__}: {error}") from None
    if not isinstance(state, dict):
        raise CorruptSnapshot(f"does not hold a snapshot state but {type(state).__name__}")
    try:
        return SnapshotState.from_dict(state)
    except (TypeError, ValueError) as error:
        raise CorruptSnapshot(f"does not hold a usable snapshot state: {error}") from None
