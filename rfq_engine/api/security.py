"""What ``rfq serve`` does for a security team: security headers on every response,
authentication with a limit on failures per client address, and TLS.

- **Headers.** A strict Content-Security-Policy (the web UI loads only its own modules and
  style sheet; ``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``, and ``Server: rfq-engine``
  with no version. Over TLS also ``Strict-Transport-Security``.
- **Failed authentication.** At most ``[api] auth_failures`` per client address in
  ``[api] auth_failure_window_s``; then every authenticated request from that address is a
  429 with ``Retry-After`` until the window ends, without its token being looked at. At
  most ``[api] auth_failure_clients`` addresses are remembered (oldest first out).
- **TLS.** ``ssl_context`` builds the server context from ``[api] tls_cert``/``tls_key``.
"""

from __future__ import annotations

import math
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from aiohttp import web, web_response

from rfq_engine.api.auth import PRINCIPAL, TokenIndex, authenticate
from rfq_engine.config import ApiConfig, ConfigError

__all__ = [
    "CSP",
    "PUBLIC",
    "SECURITY_HEADERS",
    "SERVER",
    "TOKENS_KEY",
    "FailureLimiter",
    "client_address",
    "install",
    "ssl_context",
]

log = structlog.get_logger("rfq_engine.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER: Final = "rfq-engine"
CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
              "form-action 'self'; frame-ancestors 'none'")
"""The web UI is ES modules and one style sheet from ``/static/`` (no inline script or
style attribute); ``connect-src 'self'`` covers its fetches and the WebSocket of the
same origin; ``data:`` is its empty favicon."""
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS: Final = "max-age=31536000"
PUBLIC: Final = ("/healthz", "/readyz", "/api/v1/openapi.json")
"""Paths anyone may call; every other ``/api/`` path and ``/metrics`` need a token."""
AUTHENTICATED: Final = ("/metrics",)
TOKENS_KEY: web.AppKey[TokenIndex] = web.AppKey("tokens", TokenIndex)


def needs_token(path: str) -> bool:
    return (path.startswith("/api/") and path not in PUBLIC) or path in AUTHENTICATED


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)


def _hide_server_version() -> None:
    """aiohttp answers a request it cannot even parse (a malformed request line) without
    running any handler or signal, with its default ``Server: Python/x aiohttp/y``; make
    that default ours too. It is read from ``aiohttp.web_response`` at every response."""
    setattr(web_response, "SERVER_SOFTWARE", SERVER)  # noqa: B010 (not an exported name)


class FailureLimiter:
    """Failed authentications per client address in fixed windows, in bounded memory."""

    def __init__(self, limit: int, window_s: float, max_clients: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        entry = self._clients.get(client)
        if entry is None:
            return None
        start, count = entry
        left = start + self.window_s - self._clock()
        if left <= 0:
            del self._clients[client]
            return None
        return left if count >= self.limit else None

    def failed(self, client: str) -> None:
        now = self._clock()
        start, count = self._clients.pop(client, (now, 0))
        if now >= start + self.window_s:
            start, count = now, 0
        self._clients[client] = (start, count + 1)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)


LIMITER_KEY: web.AppKey[FailureLimiter] = web.AppKey("auth_failures", FailureLimiter)


def client_address(request: web.Request, *, trust_forwarded_for: bool) -> str:
    """The peer's address; behind one trusted reverse proxy, the last ``X-Forwarded-For``
    entry (the one the proxy appended: earlier ones are whatever the client sent)."""
    if trust_forwarded_for:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        entries = [e.strip() for line in forwarded for e in line.split(",") if e.strip()]
        if entries:
            return entries[-1]
    return request.remote or "unknown"


def _too_many(wait: float) -> web.HTTPTooManyRequests:
    seconds = max(1, math.ceil(wait))
    return web.HTTPTooManyRequests(
        text=('{"error":"too_many_requests","reason":"too many failed authentications from '
              f'this address; retry in {seconds} s"}}'),
        content_type="application/json", headers={"Retry-After": str(seconds)})


def _auth_middleware(index: TokenIndex, limiter: FailureLimiter, trust_forwarded_for: bool) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_token(request.path):
            client = client_address(request, trust_forwarded_for=trust_forwarded_for)
            wait = limiter.retry_after(client)
            if wait is not None:
                raise _too_many(wait)
            try:
                request[PRINCIPAL] = authenticate(request, index)
            except web.HTTPUnauthorized:
                limiter.failed(client)
                log.warning("api.auth_failed", client=client, path=request.path,
                            blocked=limiter.retry_after(client) is not None)
                raise
        return await handler(request)

    return auth


def install(web_app: web.Application, api: ApiConfig) -> None:
    """Authentication (after the error middleware already installed) and the headers."""
    _hide_server_version()
    index = TokenIndex(api)
    limiter = FailureLimiter(api.auth_failures, api.auth_failure_window_s,
                             api.auth_failure_clients)
    web_app[TOKENS_KEY] = index
    web_app[LIMITER_KEY] = limiter
    web_app.middlewares.append(_auth_middleware(index, limiter, api.trust_forwarded_for))
    web_app.on_response_prepare.append(security_headers)


def ssl_context(api: ApiConfig) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later), or None without ``tls_cert``.
    Raises ``ConfigError`` naming the field when the files cannot be loaded."""
    if api.tls_cert is None or api.tls_key is None:
        return None
    password: str | None = None
    if api.tls_key_password_env is not None:
        password = os.environ.get(api.tls_key_password_env)
        if password is None:
            raise ConfigError(f"api.tls_key_password_env: environment variable "
                              f"{api.tls_key_password_env} is not set")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(api.tls_cert, api.tls_key, password=password)
    except FileNotFoundError as exc:
        raise ConfigError(f"api.tls_cert/tls_key: no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"api.tls_cert/tls_key: cannot load {api.tls_cert} with "
                          f"{api.tls_key}: {exc}") from None
    return context
