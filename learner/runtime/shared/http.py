"""The HTTP endpoint of a running service: /metrics, /healthz, /readyz, /status (README "Monitoring").

Served from a daemon thread, from the start (a hot standby answers /healthz and says why it is not
ready), so an orchestrator's probes see the process as soon as it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(port: int, registry: CollectorRegistry, status: Callable[[], dict[str, Any]],
          ready: Callable[[], str | None]) -> ThreadingHTTPServer:
    """Serve the endpoint on ``port`` from a daemon thread; ``ready`` returns None or why not."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif path == "/readyz":
                reason = ready()
                self._send(503 if reason else 200, f"{reason or 'ready'}\n".encode(), "text/plain")
            elif path == "/status":
                self._send(200, orjson.dumps(status(), option=orjson.OPT_NON_STR_KEYS), "application/json")
            else:
                self._send(404, b"not found: try /metrics, /healthz, /readyz, /status\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    log.info("metrics and health on http://0.0.0.0:%d/metrics, /healthz, /readyz, /status", port)
    return server
