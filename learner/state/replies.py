"""Redis replies as the state layer reads them: raw bytes (clients never decode responses).

redis-py types a reply as ``bytes | str`` (``decode_responses`` decides which at run time); every
client of the learner keeps the default, bytes, since blobs are binary.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_bytes", "as_int", "as_text"]


def as_bytes(reply: Any) -> bytes | None:
    """A bulk reply: bytes, or None when the key or field does not exist."""
    if reply is None or isinstance(reply, bytes):
        return reply
    return str(reply).encode()


def as_text(reply: Any) -> str | None:
    """A bulk reply as text (UTF-8), or None."""
    raw = as_bytes(reply)
    return None if raw is None else raw.decode()


def as_int(reply: Any) -> int | None:
    """A bulk or integer reply as an int, or None."""
    return None if reply is None else int(reply)
