"""Bearer-token authentication and the role permission table.

401 without a valid token (or with an expired one), 403 for a role that may not act.
Tokens are compared by their SHA-256 (the config holds only hashes; a user may have several,
for rotation); the token is never logged or echoed. ``rfq_engine.api.security`` limits
failed authentications per client address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aiohttp import web

from rfq_engine.config import ApiConfig, Role

__all__ = [
    "PERMISSIONS",
    "PRINCIPAL",
    "Action",
    "Principal",
    "TokenIndex",
    "authenticate",
    "bearer_token",
    "hash_token",
    "require",
    "unauthorized",
]

Action = Literal[
    "rfq:create", "rfq:cancel", "rfq:approve", "rfq:read", "audit:read", "admin:halt",
    "dealers:read", "mandates:read", "stream:read", "hedge:read", "rfq:resolve", "ops:read",
    "hedge:write",
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
    "hedge:write": frozenset({"trader", "admin"}),  # operator inputs: collateral posted, production
    "ops:read": frozenset({"ops", "compliance", "admin"}),  # /metrics, detailed readiness
}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[Role]
    expires_at: datetime | None = None

    def may(self, action: Action) -> bool:
        return bool(self.roles & PERMISSIONS[action])


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenIndex:
    """Token hash -> principal, for every hash of every ``[[api.users]]`` entry. ``reload``
    swaps the users in place (``rfq serve`` on SIGHUP) without dropping a request."""

    def __init__(self, config: ApiConfig) -> None:
        self._by_hash: dict[str, Principal] = {}
        self.reload(config)

    def reload(self, config: ApiConfig) -> None:
        self._by_hash = {digest: Principal(u.name, frozenset(u.roles), u.expires_at)
                         for u in config.users for digest in u.token_hashes}

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, token: str) -> Principal | None:
        try:
            digest = hash_token(token)
        except UnicodeEncodeError:  # header bytes that are not UTF-8: no token at all
            return None
        return self._by_hash.get(digest)


def unauthorized(reason: str = "a valid bearer token is required") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=f'{{"error":"unauthorized","reason":"{reason}"}}',
        content_type="application/json", headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: web.Request) -> str:
    """``Authorization: Bearer <token>`` (or ``?token=`` for WebSockets, which browsers
    cannot give headers); empty when there is none."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.path.endswith("/stream"):
        token = request.query.get("token", "")
    return token


def authenticate(request: web.Request, index: TokenIndex, *,
                 now: datetime | None = None) -> Principal:
    """The caller. Raises 401 without a token, with an unknown one, or with one past its
    user's ``expires_at``."""
    token = bearer_token(request)
    principal = index.lookup(token) if token else None
    if principal is None:
        raise unauthorized()
    if principal.expires_at is not None \
            and (now or datetime.now().astimezone()) >= principal.expires_at:
        raise unauthorized("the token has expired; ask an administrator for a new one")
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
