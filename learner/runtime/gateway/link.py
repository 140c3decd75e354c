"""The model process's link to its gateway: the forked process, and the channel to it.

The gateway is forked before this process has any thread, so the fork is clean. Messages read
while waiting for a particular answer (a snapshot barrier's ``Flushed``) are kept, in order, and
handed out next, so nothing the gateway said is lost or reordered.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable

from learner.errors import GatewayFailed
from learner.runtime.gateway import protocol as p
from learner.runtime.shared.pipes import Duplex, duplex_pipes
from learner.settings import Settings

__all__ = ["GatewayLink"]

log = logging.getLogger(__name__)

#: Seconds the gateway may take to connect and check its topics.
READY_TIMEOUT = 60.0
#: Seconds a snapshot barrier may take (every prediction so far acknowledged by the broker).
FLUSH_TIMEOUT = 120.0


class GatewayLink:
    """The gateway process and the model side of the channel."""

    def __init__(self, settings: Settings, target: Callable[[Settings, Duplex], None]) -> None:
        context = multiprocessing.get_context("fork")
        ours, theirs = duplex_pipes(context)
        self.process = context.Process(target=target, args=(settings, theirs), name="learner-gateway", daemon=True)
        self.process.start()
        theirs.close()
        self.channel = p.model_side(ours)
        self._backlog: deque[p.ToModel] = deque()
        self._startup_timeout = settings.startup_timeout  # the gateway may wait that long for Kafka

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until the gateway says it is connected and its topics exist (it may first wait for Kafka for
        up to --startup-timeout); its failure as GatewayFailed."""
        message = self._expect(timeout + self._startup_timeout)
        if not isinstance(message, p.GatewayReady):
            raise GatewayFailed(f"the gateway sent {type(message).__name__} before it was ready")

    def send(self, message: p.ToGateway) -> None:
        self.channel.send(message)

    def next(self, timeout: float) -> p.ToModel | None:
        """The next message, if one comes within ``timeout`` seconds: what the pipe holds is read at once,
        and a control message (a barrier's answer, a report, a guard trip, a failure) is handed out
        before the batches read with it (see :mod:`learner.runtime.gateway.outbox`)."""
        while self.channel.ready(0 if self._backlog else timeout):
            self._backlog.append(self.channel.receive())
            timeout = 0
        if not self._backlog:
            return None
        for message in self._backlog:
            if not isinstance(message, p.Batch):
                self._backlog.remove(message)
                return message
        return self._backlog.popleft()

    def take_flushed(self) -> list[p.Flushed]:
        """The barriers' answers already in the pipe, without waiting (a slow model, mid-batch)."""
        while self.channel.ready(0):
            self._backlog.append(self.channel.receive())
        answers = [m for m in self._backlog if isinstance(m, p.Flushed)]
        for answer in answers:
            self._backlog.remove(answer)
        return answers

    def flushed(self, token: int, timeout: float = FLUSH_TIMEOUT) -> p.Flushed:
        """Wait for the answer to ``Flush(token)``; whatever comes before it is kept for later."""
        for message in self._backlog:
            if isinstance(message, p.Flushed) and message.token == token:
                self._backlog.remove(message)
                return message
        while True:
            message = self._expect(timeout)
            if isinstance(message, p.Flushed) and message.token == token:
                return message
            self._backlog.append(message)  # batches sent meanwhile: learned after the snapshot

    def drop_batches(self) -> None:
        """Forget batches read but not learned (a seek: the gateway drops them too)."""
        self._backlog = deque(m for m in self._backlog if not isinstance(m, p.Batch))

    def _expect(self, timeout: float) -> p.ToModel:
        if not self.channel.ready(timeout):
            raise GatewayFailed(f"the gateway did not answer within {timeout:g}s")
        message: p.ToModel = self.channel.receive()
        if isinstance(message, p.Failure):
            raise GatewayFailed(message.reason)
        return message

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the gateway to flush and exit; wait for it."""
        if self.alive:
            try:
                self.send(p.Stop())
            except OSError:
                pass
            self.process.join(timeout)
        if self.alive:
            log.warning("the gateway did not stop within %gs; killing it", timeout)
            self.process.kill()
            self.process.join(5)
