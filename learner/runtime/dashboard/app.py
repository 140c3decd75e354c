"""The dashboard's web application (README "Dashboard"): two pages, their script and style, the
charting library's script from inside its Python package, and a read-only JSON API.

Every route only reads, and only from :class:`~learner.runtime.dashboard.reader.SharedReader`'s
copies. The JSON endpoints are plain functions: Starlette runs them on its thread pool, where
waiting for the reader's first read of a model does not hold up the event loop.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from learner.runtime.dashboard.access import SecurityHeaders, TokenGate
from learner.runtime.dashboard.reader import SharedReader

__all__ = ["STATIC", "build_app"]

STATIC = Path(__file__).parent / "static"
#: plotly.js as the plotly wheel ships it: served from this origin, never from a CDN.
PLOTLY_JS = Path(importlib.util.find_spec("plotly").origin or "").parent / "package_data" / "plotly.min.js"  # type: ignore[union-attr]
NO_STORE = {"cache-control": "no-store"}


def _json(body: bytes | object, status: int = 200) -> Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(raw, status, media_type="application/json", headers=NO_STORE)


def build_app(reader: SharedReader, allowed_hosts: list[str] | None, token: str | None) -> Starlette:
    """The application; ``allowed_hosts`` None serves any Host (a token guards it instead)."""

    def models(_: Request) -> Response:
        names = reader.names()
        summaries = [reader.summary(name) for name in names]
        return _json({"models": summaries, "problem": reader.problem})

    def overview(request: Request) -> Response:
        raw = reader.overview(request.path_params["name"])
        if raw is None:
            return _json({"error": "no such model in this Redis"}, 404)
        return _json(raw)

    def history(request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            return _json({"error": "since is a time in epoch seconds"}, 400)
        return _json({"points": reader.history(request.path_params["name"], since), "problem": reader.problem})

    def page(name: str) -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=NO_STORE)

    routes = [
        Route("/", lambda _: page("index.html")),
        Route("/models/{name}", lambda _: page("model.html")),
        Route("/api/models", models),
        Route("/api/models/{name}", overview),
        Route("/api/models/{name}/history", history),
        Route("/healthz", lambda _: _json({"ok": reader.problem is None, "problem": reader.problem},
                                          200 if reader.problem is None else 503)),
        Route("/assets/plotly.min.js", lambda _: FileResponse(PLOTLY_JS, media_type="text/javascript")),
        Mount("/assets", StaticFiles(directory=STATIC)),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(TokenGate, token=token)]
    if allowed_hosts is not None:
        middleware.insert(1, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, middleware=middleware)



