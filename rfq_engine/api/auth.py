"""Bearer-token authentication and the role permission table.

401 without a valid token, 403 for a role that may not act. Tokens are compared by their
SHA-256 (the config holds only hashes); the token is never logged or echoed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from rfq_engine.config import ApiConfig, Role

__all__ = [
    "PERMISSIONS",
    "PRINCIPAL",
    "Action",
    "Principal",
    "authenticate",
    "hash_token",
    "require",
]

Action = Literal[
    "rfq:create", "rfq:cancel", "rfq:approve", "rfq:read", "audit:read", "admin:halt",
    "dealers:read", "mandates:read", "stream:read", "hedge:read", "rfq:resolve",
]

PERMISSIONS: dict[Action, frozenset[Role]] = {
    "rfq:create": frozenset({"trader", "admin"}),
    "rfq:cancel": frozenset({"trader", "admin"}),  # a trader only their own RFQs
    "rfq:approve": frozenset({"approver", "admin"}),  # never one's own
    "rfq:resolve": frozenset({"approver", "admin"}),  # an unresolved award; never one's own
    "rfq:read": frozenset({"trader", "approver", "compliance", "admin"}),
    "audit:read": frozenset({"compliance", "admin"}),  # query, verify, export
    "admin:halt": frozenset({"admin"}),  # the kill switch
    "dealers:read": frozenset({"trader", "approver", "compliance", "admin"}),
    "mandates:read": frozenset({"trader", "approver", "compliance", "admin"}),
    "stream:read": frozenset({"trader", "approver", "compliance", "admin"}),
    "hedge:read": frozenset({"trader", "approver", "compliance", "admin"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[Role]

    def may(self, action: Action) -> bool:
        return bool(self.roles & PERMISSIONS[action])


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenIndex:
    def __init__(self, config: ApiConfig) -> None:
        self._by_hash = {u.token_sha256: Principal(u.name, frozenset(u.roles)) for u in config.users}

    def lookup(self, token: str) -> Principal | None:
        return self._by_hash.get(hash_token(token))


def authenticate(request: web.Request, index: TokenIndex) -> Principal:
    """The caller, from ``Authorization: Bearer <token>`` (or ``?token=`` for WebSockets,
    which browsers cannot give headers). Raises 401."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.path.endswith("/stream"):
        token = request.query.get("token", "")
    principal = index.lookup(token) if token else None
    if principal is None:
        raise web.HTTPUnauthorized(
            text='{"error":"unauthorized","reason":"a valid bearer token is required"}',
            content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
    return principal


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require(action: Action) -> Callable[[Handler], Handler]:
    """Decorator: 403 unless the authenticated principal's roles allow ``action``."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = request[PRINCIPAL]
            if not principal.may(action):
                roles = ", ".join(sorted(PERMISSIONS[action]))
                raise web.HTTPForbidden(
                    text=f'{{"error":"forbidden","reason":"{action} needs one of: {roles}"}}',
                    content_type="application/json")
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.action = action  # type: ignore[attr-defined]
        return guarded

    return wrap


def roles_for(action: Action) -> Iterable[Role]:
    return sorted(PERMISSIONS[action])
