"""Who may read the dashboard, and what a page may do (README "Dashboard").

- On loopback (the default) only a Host header naming loopback is served, so a web page elsewhere
  cannot reach it by pointing a name of its own at 127.0.0.1 (DNS rebinding); Starlette's
  ``TrustedHostMiddleware`` checks it.
- Anywhere else a token is required, read from a file: presented once as ``?token=...`` (answered with
  an HttpOnly, SameSite=Strict cookie and a redirect that drops it from the address), or as
  ``Authorization: Bearer ...`` by a script.
- Every answer carries a Content-Security-Policy that lets the page load and fetch only from its own
  origin, run no inline script and be framed by nobody.

>>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
(True, True, True, False)
>>> token_from("Bearer abc", ""), token_from(None, "learner_dashboard=xyz; other=1")
('abc', 'xyz')
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from learner.errors import UsageError

__all__ = ["COOKIE", "CSP", "LOOPBACK_NAMES", "SecurityHeaders", "TokenGate", "is_loopback", "read_token", "token_from"]

#: Plotly adds its own style rules at run time, so styles (not scripts) may be inline; every fetch,
#: script, image and font still comes from the page's own origin only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COOKIE = "learner_dashboard"
TOKEN = re.compile(r"[A-Za-z0-9\-_.~+/=]+")
#: The Host names a loopback dashboard answers to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin",
           "cross-origin-resource-policy": "same-origin"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path | None, host: str, insecure: bool = False) -> str | None:
    """The token from the first line of ``path``; a usage error when one is needed and missing or too short."""
    if path is None:
        if is_loopback(host) or insecure:
            return None
        raise UsageError(f"--host {host} is not loopback: give --token-file (a file whose first line is a token of at "
                         "least 16 characters) so that only those who have it can read the page (in a container "
                         "published on the host's loopback only: --insecure-no-token)")
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read --token-file {path}: {error.strerror}") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16 or not TOKEN.fullmatch(token):
        raise UsageError(f"the first line of {path} is not a token: at least 16 letters, digits or -_.~+/=")
    return token


def token_from(authorization: str | None, cookie: str) -> str | None:
    """The token a request presents: a bearer token, else the dashboard's cookie."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie)
    except Exception:  # a malformed cookie header presents nothing
        return None
    return jar[COOKIE].value if COOKIE in jar else None


class SecurityHeaders:
    """Adds the policy headers to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


class TokenGate:
    """Refuses (401) a request that does not present the token; trades a ``?token=`` for a cookie."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        offered = dict(query).get("token")
        if offered is not None and self._good(offered):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            await _answer(send, 303, b"", [("location", scope["path"] + (f"?{rest}" if rest else "")),
                                            ("set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")])
            return
        if self._good(token_from(headers.get("authorization"), headers.get("cookie", ""))):
            await self.app(scope, receive, send)
            return
        await _answer(send, 401, b"this dashboard needs its token: open it once as /?token=<the token>\n",
                      [("content-type", "text/plain; charset=utf-8")])

    def _good(self, offered: str | None) -> bool:
        assert self.token is not None
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
    await send({"type": "http.response.body", "body": body})
