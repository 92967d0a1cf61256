"""Operations: health, readiness, metrics, the caller, dealers (status + scorecards), mandates,
kill switch.

``/healthz`` and ``/readyz`` are public and say only "up" and "ready or not" (no dealer id,
no kill-switch reason). The checks behind readiness (``/api/v1/readiness``) and
``/metrics`` need a token whose roles allow ``ops:read`` (ops, compliance, admin)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from rfq_engine.api.auth import PERMISSIONS, PRINCIPAL, require
from rfq_engine.api.body import read_json
from rfq_engine.api.metrics import Metrics
from rfq_engine.api.rfqs import APP_KEY, reason_field
from rfq_engine.api.serialize import json_response
from rfq_engine.domain import parse_ts, utc_now
from rfq_engine.domain.values import check_fields
from rfq_engine.readmodels.scorecard import SCORECARD_EVENT_TYPES, dealer_scorecards
from rfq_engine.store import EventFilter

__all__ = ["METRICS_KEY", "routes"]

routes = web.RouteTableDef()
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _readiness(request: web.Request) -> tuple[bool, dict[str, object]]:
    app = request.app[APP_KEY]
    checks: dict[str, object] = {}
    ready = True
    try:
        await app.store.get_rfq("readyz-probe")
        checks["store"] = "ok"
    except Exception as exc:  # readiness reports, it never raises
        checks["store"] = f"unreachable: {type(exc).__name__}"
        ready = False
    writer = app.store.health  # reads can work while commits fail (a full disk, read-only)
    checks["audit_writer"] = writer.to_dict()
    ready = ready and writer.up
    online = {d: app.engine.dealer_online(d) for d in app.engine.dealers}
    checks["dealers_online"] = sum(online.values())
    checks["dealers"] = online
    for adapter in app.adapters:
        connected = getattr(adapter, "connected", None)
        if isinstance(connected, bool):
            checks[f"transport:{type(adapter).__name__}"] = "connected" if connected else "down"
            ready = ready and connected
    if not any(online.values()):
        ready = False
    checks["halted"] = app.engine.halted
    return ready, checks


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Public: ``{"ready": true}`` (200) or ``{"ready": false}`` (503), nothing more."""
    ready, _ = await _readiness(request)
    return json_response({"ready": ready}, status=200 if ready else 503)


@routes.get("/api/v1/readiness")
@require("ops:read")
async def readiness(request: web.Request) -> web.Response:
    """What ``/readyz`` decides from: the store, each dealer, each transport, the kill switch."""
    ready, checks = await _readiness(request)
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


@routes.get("/metrics")
@require("ops:read")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    """Who the token belongs to and what it may do: the web UI shows only what the roles allow."""
    principal = request[PRINCIPAL]
    return json_response({"name": principal.name, "roles": sorted(principal.roles),
                          "may": sorted(a for a in PERMISSIONS if principal.may(a))})


@routes.get("/api/v1/dealers")
@require("dealers:read")
async def dealers(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    since = (parse_ts(request.query["since"], "since") if "since" in request.query
             else utc_now() - timedelta(days=30))
    events = await app.store.events(EventFilter(types=list(SCORECARD_EVENT_TYPES), since=since))
    cards = dealer_scorecards(events)
    kinds = {spec.id: spec.kind for spec in app.config.dealers}
    out = []
    for dealer in app.engine.dealers:
        card = cards.get(dealer)
        out.append({"dealer_id": dealer, "kind": kinds.get(dealer, "?"),
                    "online": app.engine.dealer_online(dealer),
                    "scorecard": card.to_dict() if card else None})
    return json_response({"since": since, "dealers": out})


@routes.get("/api/v1/mandates")
@require("mandates:read")
async def mandates(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response({"mandates": {name: m.model_dump(mode="json")
                                       for name, m in app.config.mandates.items()}})


@routes.get("/api/v1/admin/halt")
@require("rfq:read")
async def halt_status(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response({"halted": app.engine.halted is not None, "reason": app.engine.halted})


@routes.post("/api/v1/admin/halt")
@require("admin:halt")
async def halt(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    data = await read_json(request, optional=True)
    check_fields(data, ("reason",))
    reason = reason_field(data, missing="the kill switch needs a reason")
    cancelled = await app.engine.kill_switch(actor=principal.name, reason=reason)
    return json_response({"halted": True, "reason": reason, "cancelled": cancelled})


@routes.post("/api/v1/admin/resume")
@require("admin:halt")
async def resume(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    check_fields(await read_json(request, optional=True), ())
    await app.engine.resume(actor=principal.name)
    return json_response({"halted": False})
