"""Faults injected for real: a TCP proxy the test controls, between the service and a server.

``partition()`` is a network partition: every connection through the proxy, old and new, stops
carrying bytes in both directions (they wait in the kernel's buffers; the peers see nothing but
silence and their own timeouts), until ``heal()``. ``reset()`` closes every connection at once, as
a peer that restarted would. The embedded Tansu advertises the proxy's port, so that every
connection a Kafka client opens goes through it.
"""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import orjson

from learner.local.servers import free_port
from tests.conftest import Stack
from tests.test_crash import SteadyProducer, events


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``, and breaks on demand."""

    def __init__(self, target: int, port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    def partition(self) -> None:
        """Stop carrying bytes, both ways, on every connection (new ones included)."""
        self._flowing.clear()

    def refuse(self) -> None:
        """Be a server that is down: every connection closed, new ones closed as soon as accepted."""
        self._refusing = True
        self.reset()

    def heal(self) -> None:
        self._refusing = False
        self._flowing.set()

    def reset(self) -> None:
        """Close every open connection (new ones are accepted as usual)."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closing.set()
        self._flowing.set()
        self.reset()
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closing.is_set():
                if not self._flowing.wait(0.2):
                    continue  # partitioned: nothing is read, so nothing is carried
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    if not self._flowing.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with self._lock:
                    self._sockets.discard(sock)
                sock.close()


FAULT_SECONDS = 15.0


def _stalled(stack: Stack, service: subprocess.Popen[bytes], port: int, what: str) -> str:
    """A failure's message for a service that stopped making progress without exiting: its status, then
    where each of its threads stood, so that a stall seen once in CI says where it stood."""
    return f"{what}; the service's status: {_status(port)}; {stack.threads(service)}"


def _status(port: int) -> str:
    """The service's /status, for a failure's message: what it had learned and what it was waiting for."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError as error:
        return f"unavailable ({error})"


@dataclass
class Recovery:
    """How long after a fault cleared the service published a new prediction, and wrote a new snapshot."""

    prediction: float
    snapshot: float
    predicted_during: int  # predictions made while the fault lasted


def through_a_fault(stack: Stack, inject: Callable[[], None], clear: Callable[[], None],
                    seconds: float = FAULT_SECONDS, per_second: int = 500, env: dict[str, str] | None = None,
                    during: Callable[[int], None] | None = None, args: tuple[str, ...] = ()) -> Recovery:
    """A service under a steady producer, a fault for ``seconds``, then the checks every fault test
    makes: it never exited, every input event has a prediction, and every event was learned exactly
    once (a Tally model on the stack's partitions). ``during(metrics_port)`` runs while the fault lasts."""
    feeder = SteadyProducer(stack, events(per_second * 600, seed=11), per_second=per_second)
    port = free_port()
    service = stack.start("--model", "tests.models:tally", "--snapshot-every-events", "1000",
                          "--snapshot-every-seconds", "0", "--metrics-port", str(port), *args, env=env)
    stack.wait_learned(1000)
    began = time.time()
    inject()
    if during is not None:
        during(port)
    time.sleep(max(0.0, seconds - (time.time() - began)))  # the fault's duration: the scenario, not a wait
    cleared = time.time()
    clear()
    store = stack.store()
    deadline = time.monotonic() + 120
    while (head := store.head()) is None or store.meta(head).created <= cleared:
        assert service.poll() is None, f"the service exited:\n{stack.log()}"
        assert time.monotonic() < deadline, _stalled(stack, service, port,
                                                     f"no snapshot after the fault cleared ({feeder.sent} events sent)")
        time.sleep(0.05)
    snapshot = store.meta(head).created - cleared
    sent = feeder.finish(at_least=store.meta(head).events_learned + 1000)
    ids = {e["id"] for e in sent}
    # Exactly once means once per message of the input log. The feeder, like most producers, is not
    # idempotent: a send whose answer the fault cut off is sent again, and the log may hold it twice.
    copies = Counter(orjson.loads(m.value())["x"]["i"] for m in stack.read_all(stack.input))
    assert set(copies) == set(range(len(sent))), "the feeder lost events"
    logged = copies.total()
    # Every event predicted and learned, then a clean stop (its last snapshot covers them all).
    outputs = [orjson.loads(m.value()) for m in stack.read(
        stack.output, len(ids), timeout=120, until=lambda ms: {orjson.loads(m.value())["id"] for m in ms} >= ids)]
    assert {o["id"] for o in outputs} == ids  # every event has a prediction (some twice: at least once)
    stack.wait_done(logged)
    assert service.poll() is None, f"the service exited:\n{stack.log()}"
    assert stack.stop(service) == 0, stack.log()

    state = store.load(store.head()).state
    assert state.learned == logged and state.model.seen == copies  # exactly once per message in the log
    after = [o["ts"] for o in outputs if o["ts"] > cleared]
    during = sum(1 for o in outputs if began + 1 < o["ts"] < cleared - 1)
    return Recovery(min(after) - cleared if after else float("nan"), snapshot, during)
