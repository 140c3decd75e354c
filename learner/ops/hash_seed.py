"""One hash seed per model, so that a restarted service computes exactly what the one before did.

Python salts the hash of every string with a random seed per process. Models whose arithmetic
follows the iteration order of a set or dict of strings (some River estimators iterate the union
of feature names, or their classes) then differ in the last bits of their floats from one process
to the next: a model restored after a crash would not predict *exactly* like one never
interrupted. ``learner run`` therefore runs with a hash seed of its model's own: derived from the
model name and the signing key (an HMAC, so it cannot be guessed from the name alone: a known
seed would let an attacker who controls feature names craft colliding ones). When the variable
``PYTHONHASHSEED`` is not already that value, the command starts itself again with it (same
process id, same arguments), before it has imported anything heavy. A ``PYTHONHASHSEED`` set by
the operator is respected as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

from learner.settings import Settings

__all__ = ["VARIABLE", "pin", "seed_for"]

VARIABLE = "PYTHONHASHSEED"
#: Set by the command before it starts itself again: the seed is ours, not the operator's.
_PINNED = "LEARNER_HASH_SEED_PINNED"


def seed_for(name: str, key: bytes | None) -> int:
    """The hash seed of a model: stable for a name and key, between 1 and 2**32 - 1.

    >>> seed_for("fraud", b"k") == seed_for("fraud", b"k") != seed_for("fraud", b"other")
    True
    """
    digest = hmac.new(key or b"", b"learner hash seed:" + name.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") % (2**32 - 1) + 1


def pin(settings: Settings) -> None:
    """Make sure this process runs with the model's hash seed; may replace the process (exec)."""
    wanted = str(seed_for(settings.name, settings.key_bytes()))
    current = os.environ.get(VARIABLE)
    if current is not None and (current == wanted or os.environ.get(_PINNED) != "1"):
        return  # already ours, or the operator's own choice
    os.environ[VARIABLE] = wanted
    os.environ[_PINNED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
