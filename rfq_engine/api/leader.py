"""The API of an engine that is not (or no longer) the leader (``rfq serve --ha``).

A standby has no engine and no store open: every request but ``/healthz`` gets 503
``{"error": "not_leader", "reason", "leader": {"name", "address", "epoch", "since"} | null}``
with ``Retry-After: 1``; clients (and a load balancer that routes on ``/readyz``) go to the
leader's advertised address. Reads are refused too: a standby serves nothing it would have
to take from a store it does not write, so every answer comes from the one engine that
decides. ``/readyz`` says ``{"ready": false, "role": "standby", "leader": ...}`` (503);
``/healthz`` is 200 (the process is alive: do not restart it).

The leader's own app gets ``leader_middleware``: ``/readyz`` says ``"role": "leader"`` and
the epoch, and once the leader is deposed (its lock lost to another engine) every request
gets the same 503 as on a standby while the process stops.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from rfq_engine.api.security import security_headers
from rfq_engine.api.serialize import json_response
from rfq_engine.store.leader import Candidate, Role

__all__ = ["RETRY_AFTER_S", "leader_middleware", "not_leader", "standby_app"]

RETRY_AFTER_S: Final = 1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _leader(candidate: Candidate) -> dict[str, Any] | None:
    seen = candidate.leader
    if seen is None or (candidate.role is Role.DEPOSED and seen.name == candidate.name):
        return None
    return seen.to_dict()


def not_leader(candidate: Candidate) -> web.Response:
    """503: this engine does not decide; the body names the leader it knows of."""
    if candidate.role is Role.LEADER:  # elected, still recovering: it answers in a moment
        error, reason = "not_ready", "this engine took the lead and is recovering; retry"
    elif candidate.role is Role.DEPOSED:
        error, reason = "not_leader", f"this engine is no longer the leader: {candidate.problem}"
    else:
        error, reason = "not_leader", "this engine is a standby; send requests to the leader"
    response = json_response({"error": error, "reason": reason, "role": candidate.role.value,
                              "leader": _leader(candidate)}, status=503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def standby_app(candidate: Candidate) -> web.Application:
    """The whole API of a standby: ``/healthz`` 200, ``/readyz`` 503 naming the leader,
    anything else ``not_leader``."""

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok", "role": candidate.role.value})

    async def readyz(request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ready": False, "role": candidate.role.value,
                                "leader": _leader(candidate), "problem": candidate.problem}
        if candidate.role is Role.LEADER:  # the lock is taken, recovery not yet done
            body["epoch"] = candidate.epoch
        response = json_response(body, status=503)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    async def anything(request: web.Request) -> web.Response:
        return not_leader(candidate)

    app = web.Application()
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def leader_middleware(candidate: Candidate) -> Any:
    """For the leader's app: the role and epoch in ``/readyz``; ``not_leader`` once deposed."""

    @web.middleware
    async def leadership(request: web.Request, handler: Handler) -> web.StreamResponse:
        if candidate.role is not Role.LEADER:
            if request.path == "/healthz":
                return await handler(request)
            return not_leader(candidate)
        response = await handler(request)
        if request.path == "/readyz" and isinstance(response, web.Response) \
                and isinstance(response.body, bytes):
            body = json.loads(response.body)
            body.update(role=Role.LEADER.value, epoch=candidate.epoch)
            return json_response(body, status=response.status)
        return response

    return leadership
