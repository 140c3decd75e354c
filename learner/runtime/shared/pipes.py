"""A two-way channel between the model process and the gateway, made of two large OS pipes.

A batch of events is hundreds of kilobytes; with the default 64 KiB pipe (or a socketpair) the
sender blocks mid-message until the reader, a thread that must win the GIL back for each chunk,
drains it, and both processes stall. Pipes grown to 1 MiB (``F_SETPIPE_SZ``, Linux) take a whole
batch in one write.
"""

from __future__ import annotations

import fcntl
import logging
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

__all__ = ["PIPE_BYTES", "Duplex", "duplex_pipes"]

log = logging.getLogger(__name__)

PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Duplex:
    """One end of the channel: ``send_bytes`` on one pipe, ``recv_bytes``/``poll`` on the other."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self._reader, self._writer = reader, writer

    def send_bytes(self, data: bytes) -> None:
        self._writer.send_bytes(data)

    def recv_bytes(self) -> bytes:
        return self._reader.recv_bytes()

    def poll(self, timeout: float = 0.0) -> bool:
        return self._reader.poll(timeout)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def duplex_pipes(context: BaseContext) -> tuple[Duplex, Duplex]:
    """Two connected ends: what one sends, the other receives."""
    a_reader, b_writer = context.Pipe(duplex=False)
    b_reader, a_writer = context.Pipe(duplex=False)
    for end in (b_writer, a_writer):
        _grow(end)
    return Duplex(a_reader, a_writer), Duplex(b_reader, b_writer)


def _grow(end: Any) -> None:
    try:
        fcntl.fcntl(end.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except OSError as error:  # not Linux, or over /proc/sys/fs/pipe-max-size: still correct, slower
        log.debug("cannot grow pipe: %s", error)
