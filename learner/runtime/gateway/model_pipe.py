"""The gateway's end of the pipes to the model process: one thread drains what the model sends, one sends.

The reader drains the pipe continuously, so the model process never blocks on a send; the writer
sends from the :class:`~learner.runtime.gateway.outbox.Outbox` (a batch is larger than the pipe, and a
blocking write must not stop the gateway's main loop from publishing meanwhile). When the model
process goes away, the main loop hears a :class:`~learner.runtime.gateway.protocol.Stop`.
"""

from __future__ import annotations

import logging
import queue
import threading

from learner.errors import LearnerError
from learner.runtime.gateway import protocol as p
from learner.runtime.gateway.outbox import Outbox

__all__ = ["ModelPipe"]

log = logging.getLogger(__name__)


class ModelPipe:
    """What the model process sent (``inbox``), what goes to it (``outbox``), and the two threads."""

    def __init__(self, channel: p.Channel) -> None:
        self.channel = channel
        self.inbox: queue.Queue[p.ToGateway] = queue.Queue()
        self.outbox = Outbox()  # control messages ahead of batches (see outbox.py)
        self.writer: threading.Thread | None = None

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True, name="from-model").start()
        self.writer = threading.Thread(target=self._write, daemon=True, name="to-model")
        self.writer.start()

    @property
    def writing(self) -> bool:
        return self.writer is not None and self.writer.is_alive()

    def _read(self) -> None:
        try:
            while True:
                self.inbox.put(self.channel.receive())
        except EOFError:
            self.inbox.put(p.Stop())
        except LearnerError as error:
            log.error("%s", error)
            self.inbox.put(p.Stop())

    def _write(self) -> None:
        try:
            while (message := self.outbox.get()) is not None:
                self.channel.send(message)
        except OSError:
            self.inbox.put(p.Stop())
