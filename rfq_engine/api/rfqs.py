"""``/api/v1/rfqs``: create (idempotent), list (filtered and keyset-paginated in the store),
get, cancel, approve, refuse.

Bodies are strict: an unknown key is a 422 naming it (``legs[0].sde``), decimals are held
to the entry bounds (``rfq_engine.domain.values.ENTRY_BOUNDS``) and a ``reason`` to
``MAX_REASON`` characters.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import PRINCIPAL, require
from rfq_engine.api.body import is_text, query_int, read_json
from rfq_engine.api.idempotency import Claim, IdempotencyMap, Named
from rfq_engine.api.serialize import error, json_response, row
from rfq_engine.domain import RfqSpec, RfqState, ValidationError, format_ts, parse_ts
from rfq_engine.domain.rfq import MAX_KEY
from rfq_engine.domain.values import check_fields
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store import EventFilter, RfqCursor, RfqQuery, RfqRow
from rfq_engine.wiring import App

__all__ = ["APP_KEY", "IDEMPOTENCY_KEY", "MAX_REASON", "reason_field", "routes"]

routes = web.RouteTableDef()
APP_KEY: web.AppKey[App] = web.AppKey("rfq_app", App)
IDEMPOTENCY_KEY: web.AppKey[IdempotencyMap] = web.AppKey("idempotency", IdempotencyMap)
MAX_LIMIT = 1000
MAX_CURSOR = 400
MAX_REASON = 1000
REPLAYED = "Idempotent-Replayed"


def reason_field(data: Mapping[str, Any], *, missing: str | None = None) -> str:
    """The body's ``reason``: a string of at most ``MAX_REASON`` characters; when it is
    required, ``missing`` says why."""
    value = data.get("reason")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError("reason", f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_REASON:
        raise ValidationError("reason", f"at most {MAX_REASON} characters, got {len(value)}")
    text = value.strip()
    if missing is not None and not text:
        raise ValidationError("reason", missing)
    return text


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


def _live_view(app: App, rfq_id: str) -> dict[str, Any] | None:
    """The view of an RFQ just accepted, from its live run (no store read, no flush)."""
    run = app.engine.live(rfq_id)
    if run is None or run.submitted_at is None:
        return None
    spec, book = run.spec, run.book
    summary = RfqRow(rfq_id, spec.client_rfq_id, spec.requester, spec.mandate,
                     spec.direction.value, spec.quantity, spec.quantity_unit, book.state.value,
                     book.notional if book.notional is not None else Decimal(0),
                     book.filled_quantity, run.submitted_at, run.submitted_at, book.reason,
                     spec.to_dict())
    view = {**row(summary), "quotes": [], "awards": [], "fills": [], "decision": None}
    return view


async def _earlier(app: App, user: str, key: str) -> Named | None:
    """The RFQ stored (or being submitted) under ``key`` before this process remembered it."""
    rfq_id = await app.engine.lookup_client_rfq(user, key)
    if rfq_id is None:
        return None
    found = await app.store.get_rfq(rfq_id)
    if found is None:
        await app.store.flush()
        found = await app.store.get_rfq(rfq_id)
    if found is not None:
        return Named(rfq_id, dict(found.spec))
    run = app.engine.live(rfq_id)
    return Named(rfq_id, run.spec.to_dict() if run is not None else {})


async def _decide(request: web.Request, spec: RfqSpec, key: str) -> tuple[Named, bool]:
    """What ``key`` names, and whether this request created it (module ``idempotency``)."""
    app = request.app[APP_KEY]
    keys = request.app[IDEMPOTENCY_KEY]
    while True:
        claim: Claim | Named = keys.claim(spec.requester, key)
        if isinstance(claim, Named):
            return claim, False
        if not claim.owner:
            named = await claim.wait()
            if named is not None:
                return named, False
            continue  # the request deciding it failed: decide again
        try:
            earlier = await _earlier(app, spec.requester, key)
            named = earlier or Named(await app.engine.submit(spec), spec.to_dict())
        except BaseException:
            keys.abandon(claim)
            raise
        keys.decide(claim, named)
        return named, earlier is None


@routes.post("/api/v1/rfqs")
@require("rfq:create")
async def create_rfq(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    data = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not key.strip() or len(key) > MAX_KEY:
            return error(422, "validation", f"must be 1..{MAX_KEY} characters", "Idempotency-Key")
        if not is_text(key):  # header bytes that are not UTF-8
            return error(422, "validation", "must be UTF-8 text", "Idempotency-Key")
        if data.get("client_rfq_id") not in (None, key):
            return error(422, "validation", "differs from the Idempotency-Key header",
                         "client_rfq_id")
        data["client_rfq_id"] = key
    if data.get("requester") not in (None, principal.name):
        return error(403, "forbidden", "an RFQ is requested in one's own name", "requester")
    data["requester"] = principal.name
    spec = RfqSpec.from_dict(data, default_window_ms=app.config.engine.default_window_ms,
                             strict=True)
    rfq_id: str
    if spec.client_rfq_id is None:
        rfq_id, created = await app.engine.submit(spec), True
    else:
        named, created = await _decide(request, spec, spec.client_rfq_id)
        if named.spec != spec.to_dict():
            return error(409, "conflict", "this Idempotency-Key was used for a different "
                         "request", "Idempotency-Key")
        rfq_id = named.rfq_id
    # A new RFQ's view comes from the live run (its rfq.submitted is durable): the POST
    # waits for no other RFQ's events. A replay reads the stored RFQ.
    view = _live_view(app, rfq_id) if created else None
    if view is None:
        await app.store.flush()
        view = await rfq_view(app, rfq_id)
    headers = {"Location": f"/api/v1/rfqs/{rfq_id}"}
    if not created:
        headers[REPLAYED] = "true"
    return json_response(view, status=201 if created else 200, headers=headers)


def cursor_text(cursor: RfqCursor) -> str:
    """The opaque ``next`` of a page: base64url of ``<created_at> <rfq_id>``."""
    raw = f"{format_ts(cursor.created_at)} {cursor.rfq_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_cursor(text: str) -> RfqCursor:
    """A ``next`` this API returned, or a 422 naming ``after``."""
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError("too long")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        ts, space, rfq_id = raw.decode("utf-8").partition(" ")
        if not space or not rfq_id:
            raise ValueError("no rfq_id")
        return RfqCursor(parse_ts(ts, "after"), rfq_id)
    except ValueError:  # binascii.Error, UnicodeDecodeError and ValidationError too
        raise ValidationError("after", "not a cursor from this API's next") from None


def list_query(request: web.Request) -> RfqQuery:
    """``GET /rfqs``'s parameters: ``state`` (repeatable), ``requester``, ``mandate``,
    ``since <= created_at < until``, ``after`` (a page's ``next``) and ``limit``."""
    q = request.query
    states = q.getall("state", []) or None
    known = {x.value for x in RfqState}
    unknown = [s for s in states or () if s not in known]
    if unknown:
        raise ValidationError("state", f"unknown state {unknown[0]!r}")
    return RfqQuery(
        states=states, requester=q.get("requester"), mandate=q.get("mandate"),
        created_since=parse_ts(q["since"], "since") if "since" in q else None,
        created_until=parse_ts(q["until"], "until") if "until" in q else None,
        after=parse_cursor(q["after"]) if "after" in q else None,
        limit=query_int(request, "limit", 200, 1, MAX_LIMIT),
    )


@routes.get("/api/v1/rfqs")
@require("rfq:read")
async def list_rfqs(request: web.Request) -> web.Response:
    """Newest first, one keyset page: the filters and the page are the store's query."""
    page = await request.app[APP_KEY].store.rfq_page(list_query(request))
    return json_response({"rfqs": [row(r) for r in page.rows],
                          "next": None if page.next is None else cursor_text(page.next)})


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
    data = await read_json(request, optional=True)
    check_fields(data, ("reason",))
    reason = reason_field(data) or f"cancelled by {principal.name}"
    found = await app.store.get_rfq(rfq_id)
    if found is None:
        return error(404, "not_found", "no such RFQ")
    if "admin" not in principal.roles and found.requester != principal.name:
        return error(403, "forbidden", "a trader may cancel only their own RFQs")
    if app.engine.live(rfq_id) is None:
        return error(409, "conflict", f"the RFQ is {found.state}; only a live RFQ can be cancelled")
    await app.engine.cancel(rfq_id, actor=principal.name, reason=reason)
    return json_response({"rfq_id": rfq_id, "cancel_requested": True, "reason": reason},
                         status=202)


async def _approval(request: web.Request, grant: bool) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    rfq_id = request.match_info["rfq_id"]
    data = await read_json(request, optional=True)
    check_fields(data, () if grant else ("reason",))
    reason = "" if grant else reason_field(data, missing="a refusal needs a reason")
    if app.engine.live(rfq_id) is None:  # the live run is the authority; the store lags it
        found = await app.store.get_rfq(rfq_id)
        if found is None:
            return error(404, "not_found", "no such RFQ")
        return error(409, "conflict", f"the RFQ is {found.state}, not pending approval")
    if grant:  # InvalidState (409) / NotPermitted (403) come from the engine
        await app.engine.approve(rfq_id, approver=principal.name)
    else:
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

