"""``learner dashboard``: the reader, the application and uvicorn, in a process of its own (README "Dashboard").

It is never part of a learner: it reads Redis (one reader, whatever the visitors) and, when Kafka is
given, the serve replicas' heartbeats; it writes nothing anywhere. uvicorn's ``limit_concurrency``
answers 503 beyond ``--dashboard-max-connections`` requests at once, so many open tabs cost a
bounded amount of memory and CPU.
"""

from __future__ import annotations

import socket
import sys

import uvicorn

from learner.connections import Connections
from learner.core.status import Heartbeat
from learner.errors import UsageError
from learner.runtime.dashboard.access import LOOPBACK_NAMES, read_token
from learner.runtime.dashboard.app import build_app
from learner.runtime.dashboard.reader import Replicas, SharedReader
from learner.settings import Settings

__all__ = ["serve"]


def _replicas(settings: Settings) -> Replicas | None:
    """How to list a model's serve replicas, when the command was pointed at a Kafka."""
    if not {"bootstrap_servers", "kafka_config", "kafka_config_file"} & settings.model_fields_set:
        return None
    from learner.runtime.replica.registry import heard

    def replicas(name: str) -> list[Heartbeat]:
        return heard(settings.model_copy(update={"name": name}), timeout=2.0)

    return replicas


def serve(settings: Settings) -> int:
    """Serve until interrupted; prints the address (with the port the system chose for port 0)."""
    host = settings.dashboard_host
    token = read_token(settings.dashboard_token_file, host, settings.dashboard_insecure_no_token)
    connections = Connections(settings)
    reader = SharedReader(connections.catalog(), _replicas(settings))
    # Without a token only loopback names are served (DNS rebinding); a token guards whatever name is used.
    app = build_app(reader, list(LOOPBACK_NAMES) if token is None else None, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, settings.dashboard_port))
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{settings.dashboard_port}: {error.strerror} (--host, --port)") from None
    sock.listen(128)  # listening before the address is printed: a client that reads it may connect at once
    port = sock.getsockname()[1]
    reader.start()
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard on http://{shown}:{port}/ (the models of {connections.describe_redis()}"
          + (", token required" if token else "") + ")", flush=True)
    # uvicorn answers 503 once the open connections reach its limit, counting the one asking.
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=settings.dashboard_max_connections + 1,
                            server_header=False, proxy_headers=False, timeout_keep_alive=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        reader.stop()
        sys.stdout.flush()
    return 0
