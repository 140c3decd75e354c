"""HMAC-SHA256 signatures over snapshot metadata (which carries the model's checksum).

Pickle is code execution: a snapshot is unpickled only after its metadata's signature verifies and
the blob's SHA-256 matches the checksum inside that signed metadata.

>>> signer = Signer(b"secret")
>>> signature = signer.sign(b'{"version": 1}')
>>> signer.verify(b'{"version": 1}', signature), signer.verify(b'{"version": 2}', signature)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["UNSIGNED", "Signer", "checksum"]

UNSIGNED = "unsigned"


class Signer:
    """Signs with a secret key; with no key (``--insecure-no-signing``) it signs nothing."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def sign(self, payload: bytes) -> str:
        if self._key is None:
            return UNSIGNED
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def verify(self, payload: bytes, signature: str) -> bool:
        """True when ``signature`` is ours; an unsigned snapshot verifies only without a key."""
        if self._key is None:
            return signature == UNSIGNED
        return hmac.compare_digest(self.sign(payload), signature)


def checksum(blob: bytes) -> str:
    """The SHA-256 of a snapshot blob, as hex."""
    return hashlib.sha256(blob).hexdigest()
