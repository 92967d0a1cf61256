"""The desk's three HTTP calls (``docs/dealers-rest.md``), authenticated, on one reused session.

``DeskClient`` only moves bytes: it sends a JSON body, signs the request, and returns the
status and the raw text of the answer (``DeskResponse``). Reading that answer is
``parsing.py``'s job; what to do with it is the adapter's. Transport failures raise
``aiohttp.ClientError`` / ``OSError`` / ``TimeoutError`` to the caller.

Signing (``scheme = "hmac"``): ``X-Signature`` is the lowercase hex HMAC-SHA256, keyed with
the secret, of ``f"{timestamp}\\n{METHOD}\\n{path}\\n{body}"`` where ``timestamp`` is the
``X-Timestamp`` header (milliseconds since the Unix epoch), ``path`` the request path as
sent (the base URL's path included, e.g. ``/api/v1/orders``) and ``body`` the exact bytes
sent (empty for a GET).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from dealer_adapters.rest.config import BearerAuth, HmacAuth, RestDealerConfig

__all__ = [
    "MAX_BODY_BYTES",
    "ORDERS_PATH",
    "QUOTES_PATH",
    "DeskClient",
    "DeskResponse",
    "Signer",
    "hmac_signature",
    "resolve_signer",
]

QUOTES_PATH = "/v1/quotes"
ORDERS_PATH = "/v1/orders"
MAX_BODY_BYTES = 1_000_000
"""A larger answer is cut here and is malformed (a desk answer is a small JSON object)."""


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``timestamp\\nMETHOD\\npath\\nbody`` keyed with ``secret``."""
    message = b"\n".join([timestamp.encode(), method.upper().encode(), path.encode(), body])
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Signer:
    """Adds the auth headers of one desk to a request."""

    def __init__(self, headers: Callable[[str, str, bytes], dict[str, str]]) -> None:
        self._headers = headers

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return self._headers(method, path, body)

    @classmethod
    def bearer(cls, token: str) -> Signer:
        value = f"Bearer {token}"
        return cls(lambda _method, _path, _body: {"Authorization": value})

    @classmethod
    def hmac(cls, key: str, secret: str, clock_ms: Callable[[], int] | None = None) -> Signer:
        now_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

        def headers(method: str, path: str, body: bytes) -> dict[str, str]:
            timestamp = str(now_ms())
            return {
                "X-Key": key,
                "X-Timestamp": timestamp,
                "X-Signature": hmac_signature(secret, timestamp, method, path, body),
            }

        return cls(headers)


def resolve_signer(dealer_id: str, auth: BearerAuth | HmacAuth, environ: Mapping[str, str]) -> Signer:
    """The signer for ``auth`` with its secrets read from ``environ``; a missing or empty
    variable is a ``ValueError`` naming the dealer and the variable (never its value)."""

    def read(variable: str, what: str) -> str:
        value = environ.get(variable, "")
        if not value:
            raise ValueError(
                f"dealer {dealer_id!r}: [dealers.rest].auth: environment variable {variable} "
                f"({what}) is not set"
            )
        return value

    if isinstance(auth, BearerAuth):
        return Signer.bearer(read(auth.token_env, "bearer token"))
    return Signer.hmac(read(auth.key_env, "API key"), read(auth.secret_env, "API secret"))


@dataclass(frozen=True, slots=True)
class DeskResponse:
    """An HTTP answer: the status and the body as text (cut at ``MAX_BODY_BYTES``)."""

    status: int
    text: str
    truncated: bool = False


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; every decimal in ``body`` is already a string."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class DeskClient:
    """One desk's HTTP calls on one ``aiohttp.ClientSession`` (owned by the adapter)."""

    def __init__(self, session: aiohttp.ClientSession, config: RestDealerConfig, signer: Signer) -> None:
        self._session = session
        self._base = config.base_url
        self._base_path = urlsplit(config.base_url).path.rstrip("/")
        self._signer = signer

    async def request_quote(self, body: Mapping[str, Any]) -> DeskResponse:
        return await self._call("POST", QUOTES_PATH, encode_body(body))

    async def place_order(self, body: Mapping[str, Any]) -> DeskResponse:
        return await self._call("POST", ORDERS_PATH, encode_body(body))

    async def get_order(self, client_order_id: str) -> DeskResponse:
        return await self._call("GET", f"{ORDERS_PATH}/{quote(client_order_id, safe='')}", b"")

    async def _call(self, method: str, path: str, body: bytes) -> DeskResponse:
        headers = {"Accept": "application/json", **self._signer.headers(method, self._base_path + path, body)}
        if body:
            headers["Content-Type"] = "application/json"
        async with self._session.request(
            method, self._base + path, data=body or None, headers=headers, allow_redirects=False
        ) as response:
            raw = bytearray()
            truncated = False
            async for chunk in response.content.iter_chunked(64 * 1024):
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    truncated = True
                    del raw[MAX_BODY_BYTES:]
                    break
            return DeskResponse(response.status, raw.decode("utf-8", errors="replace"), truncated)
