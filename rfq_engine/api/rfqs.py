"""``/api/v1/rfqs``: create (idempotent), list, get, cancel, approve, refuse."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import PRINCIPAL, require
from rfq_engine.api.serialize import error, json_response, row
from rfq_engine.app import App
from rfq_engine.decision import build_decision_record
from rfq_engine.domain import RfqSpec, RfqState
from rfq_engine.store import EventFilter

__all__ = ["routes"]

routes = web.RouteTableDef()
APP_KEY: web.AppKey[App] = web.AppKey("rfq_app", App)
MAX_LIMIT = 1000


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error":"bad_request","reason":"body is not valid JSON"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error":"bad_request","reason":"body must be a JSON object"}',
                                 content_type="application/json")
    return data


async def rfq_view(app: App, rfq_id: str) -> dict[str, Any] | None:
    store = app.store
    found = await store.get_rfq(rfq_id)
    if found is None:
        return None
    events = await store.events(EventFilter(rfq_id=rfq_id))
    return {
        **row(found),
        "quotes": [row(q) for q in await store.quotes(rfq_id)],
        "awards": [row(a) for a in await store.awards(rfq_id)],
        "fills": [row(f) for f in await store.fills(rfq_id)],
        "decision": build_decision_record(events) if events else None,
    }


@routes.post("/api/v1/rfqs")
@require("rfq:create")
async def create_rfq(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    data = await _body(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not key.strip() or len(key) > 200:
            return error(422, "validation", "must be 1..200 characters", "Idempotency-Key")
        if data.get("client_rfq_id") not in (None, key):
            return error(422, "validation", "differs from the Idempotency-Key header",
                         "client_rfq_id")
        data["client_rfq_id"] = key
    if data.get("requester") not in (None, principal.name):
        return error(403, "forbidden", "an RFQ is requested in one's own name", "requester")
    data["requester"] = principal.name
    spec = RfqSpec.from_dict(data, default_window_ms=app.config.engine.default_window_ms)
    replay = None
    if spec.client_rfq_id is not None:
        replay = await app.engine.lookup_client_rfq(principal.name, spec.client_rfq_id)
        if replay is not None:
            earlier = await app.store.get_rfq(replay)
            if earlier is not None and dict(earlier.spec) != spec.to_dict():
                return error(409, "conflict", "this Idempotency-Key was used for a different "
                             "request", "Idempotency-Key")
    rfq_id = replay or await app.engine.submit(spec)
    await app.store.flush()
    view = await rfq_view(app, rfq_id)
    headers = {"Location": f"/api/v1/rfqs/{rfq_id}"}
    if replay is not None:
        headers["Idempotent-Replayed"] = "true"
    return json_response(view, status=200 if replay else 201, headers=headers)


@routes.get("/api/v1/rfqs")
@require("rfq:read")
async def list_rfqs(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    states = request.query.getall("state", []) or None
    if states:
        unknown = [s for s in states if s not in {x.value for x in RfqState}]
        if unknown:
            return error(422, "validation", f"unknown state {unknown[0]!r}", "state")
    try:
        limit = int(request.query.get("limit", "200"))
    except ValueError:
        return error(422, "validation", "must be a whole number", "limit")
    if not 1 <= limit <= MAX_LIMIT:
        return error(422, "validation", f"must be 1..{MAX_LIMIT}", "limit")
    rows = await app.store.rfqs(states=states, limit=None)
    requester = request.query.get("requester")
    mandate = request.query.get("mandate")
    picked = [r for r in rows if (requester is None or r.requester == requester)
              and (mandate is None or r.mandate == mandate)]
    picked.sort(key=lambda r: r.created_at, reverse=True)
    return json_response({"rfqs": [row(r) for r in picked[:limit]]})


@routes.get("/api/v1/rfqs/{rfq_id}")
@require("rfq:read")
async def get_rfq(request: web.Request) -> web.Response:
    view = await rfq_view(request.app[APP_KEY], request.match_info["rfq_id"])
    if view is None:
        return error(404, "not_found", "no such RFQ")
    return json_response(view)


@routes.post("/api/v1/rfqs/{rfq_id}/cancel")
@require("rfq:cancel")
async def cancel_rfq(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    rfq_id = request.match_info["rfq_id"]
    data = await _body(request) if request.can_read_body else {}
    found = await app.store.get_rfq(rfq_id)
    if found is None:
        return error(404, "not_found", "no such RFQ")
    if "admin" not in principal.roles and found.requester != principal.name:
        return error(403, "forbidden", "a trader may cancel only their own RFQs")
    if app.engine.live(rfq_id) is None:
        return error(409, "conflict", f"the RFQ is {found.state}; only a live RFQ can be cancelled")
    reason = str(data.get("reason", "")) or f"cancelled by {principal.name}"
    await app.engine.cancel(rfq_id, actor=principal.name, reason=reason)
    return json_response({"rfq_id": rfq_id, "cancel_requested": True, "reason": reason},
                         status=202)


async def _approval(request: web.Request, grant: bool) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    rfq_id = request.match_info["rfq_id"]
    data = await _body(request) if request.can_read_body else {}
    if app.engine.live(rfq_id) is None:  # the live run is the authority; the store lags it
        found = await app.store.get_rfq(rfq_id)
        if found is None:
            return error(404, "not_found", "no such RFQ")
        return error(409, "conflict", f"the RFQ is {found.state}, not pending approval")
    if grant:  # InvalidState (409) / NotPermitted (403) come from the engine
        await app.engine.approve(rfq_id, approver=principal.name)
    else:
        reason = str(data.get("reason", "")).strip()
        if not reason:
            return error(422, "validation", "a refusal needs a reason", "reason")
        await app.engine.refuse(rfq_id, approver=principal.name, reason=reason)
    return json_response({"rfq_id": rfq_id, "approved": grant, "by": principal.name}, status=202)


@routes.post("/api/v1/rfqs/{rfq_id}/approve")
@require("rfq:approve")
async def approve_rfq(request: web.Request) -> web.Response:
    return await _approval(request, True)


@routes.post("/api/v1/rfqs/{rfq_id}/refuse")
@require("rfq:approve")
async def refuse_rfq(request: web.Request) -> web.Response:
    return await _approval(request, False)

