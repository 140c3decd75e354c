"""A child forked to do one piece of work off the hot path, and how it reports back.

The model process forks (rather than threads) for what would hold the GIL for long: pickling the
model for a snapshot or for the live model. The fork is a copy of the model at that event
boundary, so the stream learns on while the child works. Every such child behaves the same way:
it dies with its parent, leaves Ctrl-C to the parent, turns whatever its work raised into a
result, reports that result pickled on a pipe, and exits without running the parent's clean-up
(``os._exit``). The parent polls without blocking, or waits; a child that died without a word
reports nothing (None). Results are small (an outcome, not a model): the parent reads the pipe
once the child has exited, so a result must fit in the pipe's buffer (64 KiB on Linux).
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

from learner.runtime.shared.process import die_with_parent

__all__ = ["Forked"]

T = TypeVar("T")


class Forked(Generic[T]):
    """One child at work: ``work`` runs in it; ``failed`` makes a result of what ``work`` raised."""

    def __init__(self, work: Callable[[], T], failed: Callable[[BaseException], T],
                 close_in_child: tuple[int, ...] = ()) -> None:
        report_read, report_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(report_read)
            for fd in close_in_child:
                os.close(fd)
            _child(work, failed, report_write)
        os.close(report_write)
        self.pid, self._report = pid, report_read
        self.done = False

    def poll(self) -> tuple[bool, T | None]:
        """``(finished, result)``, never blocking: the result is None when the child died without one."""
        pid, _status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False, None
        return True, self._collect()

    def wait(self) -> T | None:
        """Block until the child has finished; its result (None when it died without one)."""
        os.waitpid(self.pid, 0)
        return self._collect()

    def _collect(self) -> T | None:
        self.done = True
        chunks = []
        while chunk := os.read(self._report, 65536):
            chunks.append(chunk)
        os.close(self._report)
        return pickle.loads(b"".join(chunks)) if chunks else None


def _child(work: Callable[[], T], failed: Callable[[BaseException], T], report: int) -> None:
    result: object = None
    try:
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        result = work()
    except BaseException as error:  # whatever it is, the child reports it
        try:
            result = failed(error)
        except BaseException:
            result = None
    finally:
        try:
            data = memoryview(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            while data:  # a small result: the parent reads it once the child has exited
                data = data[os.write(report, data):]
        finally:
            os._exit(0)
