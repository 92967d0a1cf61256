"""``/api/v1/hedge``: scenarios and programs.

- ``POST /api/v1/hedge/scenario``: hedged vs unhedged outcomes across prices (DOMAIN.md A
  and B), a thin JSON front to the pure ``rfq_engine.hedging.scenario`` functions the CLI
  uses, so the API, the web UI's chart and ``rfq hedge scenario --json`` agree.
- ``GET /api/v1/hedge/programs`` and ``/programs/{name}``: each configured program's terms,
  next scheduled runs, what its latest scheduled time plans, its recorded decisions and its
  coverage (``rfq_engine.hedging.overview``), read from the audit store.
- ``POST /api/v1/hedge/collateral`` and ``/production`` (``hedge:write``): operator inputs,
  appended to the audit log as ``collateral.posted`` / ``production.realized`` (actor: the
  caller; ``rfq_engine.hedging.inputs``). An ``Idempotency-Key`` makes a retry return the event
  it wrote (200, ``Idempotent-Replayed``), a different body under the same key is a 409.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, DecimalException
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import PRINCIPAL, require
from rfq_engine.api.body import is_text, query_int, read_json
from rfq_engine.api.rfqs import APP_KEY, REPLAYED
from rfq_engine.api.serialize import error, json_response
from rfq_engine.domain import ValidationError
from rfq_engine.domain.errors import Unavailable
from rfq_engine.domain.events import CollateralPosted, EventType, ProductionRealized, ProgramDecided, encode
from rfq_engine.domain.values import ENTRY_BOUNDS, check_fields, format_ts, parse_decimal, utc_now
from rfq_engine.hedging.funding import perpetual_funding
from rfq_engine.hedging.inputs import collateral_event, production_event
from rfq_engine.hedging.overview import program_overview
from rfq_engine.hedging.planner import requester_for
from rfq_engine.hedging.program import ProgramConfig
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.risk import funding_rates
from rfq_engine.hedging.scenario import NdfSide, ndf_table, scenario_table
from rfq_engine.readmodels.events import typed_events
from rfq_engine.store import EventFilter
from rfq_engine.wiring import App

__all__ = ["routes"]

routes = web.RouteTableDef()
MAX_POINTS = 200
PRICE_FIELDS = frozenset({"strategy", "spot", "cost", "quantity", "prices", "future_price", "put",
                          "call", "premium", "hedge_ratio"})
NDF_FIELDS = frozenset({"strategy", "unit_price", "hashrate_ph", "days", "settle_rates", "side",
                        "hedge_ratio", "power_mw", "power_price", "opex_only"})
"""The keys of each kind of scenario; any other is a 422 naming it."""
COLLATERAL_FIELDS = frozenset({"dealer", "amounts", "note"})
PRODUCTION_FIELDS = frozenset({"program", "period", "quantity", "note"})
MAX_KEY = 200
_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _dec(body: dict[str, Any], key: str, default: str | None = None) -> Decimal:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    return parse_decimal(value, key, ENTRY_BOUNDS)


def _opt(body: dict[str, Any], key: str) -> Decimal | None:
    return None if body.get(key) is None else parse_decimal(body[key], key, ENTRY_BOUNDS)


def _series(body: dict[str, Any], key: str) -> list[Decimal]:
    values = body.get(key)
    if not isinstance(values, list) or not values:
        raise ValidationError(key, "must be a non-empty list of decimal strings")
    if len(values) > MAX_POINTS:
        raise ValidationError(key, f"at most {MAX_POINTS} points")
    return [parse_decimal(v, f"{key}[{i}]", ENTRY_BOUNDS) for i, v in enumerate(values)]


def _strike(body: dict[str, Any], key: str) -> str | None:
    """A strike as given (``"35000"`` or ``"87.5%"`` of spot), its number held to the bounds."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError(key, "must be a price like \"35000\" or a percentage of spot like "
                              "\"87.5%\"")
    text = str(value).strip()
    parse_decimal(text[:-1] if text.endswith("%") else text, key, ENTRY_BOUNDS)
    return text


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(key, "must be true or false")
    return value


def _table(body: dict[str, Any]) -> dict[str, Any]:
    strategy = body.get("strategy")
    if strategy == "ndf":
        check_fields(body, NDF_FIELDS)
        days = body.get("days")
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValidationError("days", "must be a whole number of days")
        side = body.get("side", "short")
        if not isinstance(side, str) or side not in {s.value for s in NdfSide}:
            raise ValidationError("side", "must be 'short' (selling hashprice) or 'long'")
        return ndf_table(
            unit_price=_dec(body, "unit_price"), hashrate_ph=_dec(body, "hashrate_ph"), days=days,
            settle_rates=_series(body, "settle_rates"), side=NdfSide(side),
            hedge_ratio=_opt(body, "hedge_ratio"), power_mw=_opt(body, "power_mw"),
            power_price=_opt(body, "power_price"), opex_only=_flag(body, "opex_only"))
    if strategy in ("future", "put", "collar", "unhedged"):
        check_fields(body, PRICE_FIELDS)
        return scenario_table(
            strategy=str(strategy), spot=_dec(body, "spot"), cost=_dec(body, "cost", "0"),
            quantity=_dec(body, "quantity", "1"), prices=_series(body, "prices"),
            future_price=_opt(body, "future_price"), put_strike=_strike(body, "put"),
            call_strike=_strike(body, "call"), premium=_dec(body, "premium", "0"),
            hedge_ratio=_dec(body, "hedge_ratio", "1"))
    raise ValidationError("strategy", "must be one of future, put, collar, unhedged, ndf")


@routes.post("/api/v1/hedge/scenario")
@require("hedge:read")
async def scenario(request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        table = _table(body)
    except DecimalException:  # bounded inputs whose products still exceed 50 digits
        raise ValidationError("body", "the numbers are too far apart to compute this scenario "
                              "exactly") from None
    return json_response(table)


async def _overview(app: App, name: str, program: ProgramConfig, now: datetime,
                    limit: int | None) -> dict[str, Any]:
    flt = EventFilter(types=[EventType.PROGRAM_DECIDED.value], actor=requester_for(name))
    pairs = [(stored.ts, event) for stored, event in typed_events(await app.store.events(flt))
             if isinstance(event, ProgramDecided) and not event.dry_run]
    trades = await load_trades(app.store, requester_for(name))
    view = program_overview(name, program, decisions=[e for _, e in pairs],
                            decided_at=[ts for ts, _ in pairs], trades=trades,
                            forecast_defaults=app.config.forecast, now=now, limit=limit)
    try:  # each perpetual position's funding paid so far (docs/risk.md, "Funding")
        snapshot = await app.reference.snapshot()
        funding = perpetual_funding(trades, funding_rates(app.config.risk), snapshot, now)
        view.update(funding=funding, funding_error=None)
    except (Unavailable, ValidationError) as exc:  # no price to mark at: said, not a 500
        view.update(funding=None, funding_error=str(exc))
    return view


@routes.get("/api/v1/hedge/programs")
@require("hedge:read")
async def programs(request: web.Request) -> web.Response:
    """Every configured program with its latest decision, next runs and coverage."""
    app = request.app[APP_KEY]
    now = utc_now()
    views = [await _overview(app, name, program, now, 1)
             for name, program in sorted(app.config.programs.items())]
    return json_response({"as_of": format_ts(now), "programs": views})


@routes.get("/api/v1/hedge/programs/{name}")
@require("hedge:read")
async def program(request: web.Request) -> web.Response:
    """One program with its decisions, newest first (``?limit=``, default 50, at most 1000)."""
    app = request.app[APP_KEY]
    name = request.match_info["name"]
    found = app.config.programs.get(name)
    if found is None:
        return error(404, "not_found", "no such program")
    limit = query_int(request, "limit", 50, 1, 1000)
    now = utc_now()
    return json_response({"as_of": format_ts(now), **await _overview(app, name, found, now, limit)})


# ------------------------------------------------------------------------------ operator inputs

Input = CollateralPosted | ProductionRealized
Build = Callable[[Any, dict[str, Any], str, str | None], Input]


def _collateral(config: Any, body: dict[str, Any], by: str, key: str | None) -> Input:
    return collateral_event(body.get("dealer"), body.get("amounts"), agreements=config.collateral,
                            venues=config.risk.venues, by=by, note=body.get("note", ""), idempotency_key=key)


def _production(config: Any, body: dict[str, Any], by: str, key: str | None) -> Input:
    if "quantity" not in body:
        raise ValidationError("quantity", "is required")
    return production_event(body.get("program"), body.get("period"), body["quantity"],
                            programs=config.programs, by=by, note=body.get("note", ""), idempotency_key=key)


async def _record(request: web.Request, fields: frozenset[str], build: Build) -> web.Response:
    """Validate, then append the event (or replay the one an ``Idempotency-Key`` wrote)."""
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    body = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key.strip() or len(key) > MAX_KEY or not is_text(key)):
        return error(422, "validation", f"must be 1..{MAX_KEY} characters of UTF-8 text", "Idempotency-Key")
    check_fields(body, fields)
    event = build(app.config, body, principal.name, key)
    lock = _LOCKS.setdefault(app.engine, asyncio.Lock())
    async with lock:  # one request decides a key: never two events under it
        if key is not None:
            await app.store.flush()
            flt = EventFilter(types=[event.TYPE], actor=principal.name)
            earlier = [e for e in await app.store.events(flt) if e.payload.get("idempotency_key") == key]
            if earlier:
                if earlier[-1].payload != encode(event):
                    return error(409, "conflict", "this Idempotency-Key was used for a different "
                                 "request", "Idempotency-Key")
                return json_response(earlier[-1].to_dict(), headers={REPLAYED: "true"})
        stored = await app.engine.services.audit(None, event, actor=principal.name)
    return json_response(stored.to_dict(), status=201)


@routes.post("/api/v1/hedge/collateral")
@require("hedge:write")
async def post_collateral(request: web.Request) -> web.Response:
    """The collateral now posted in total with a desk or at a venue (``collateral.posted``)."""
    return await _record(request, COLLATERAL_FIELDS, _collateral)


@routes.post("/api/v1/hedge/production")
@require("hedge:write")
async def post_production(request: web.Request) -> web.Response:
    """A program's realized production in a month (``production.realized``)."""
    return await _record(request, PRODUCTION_FIELDS, _production)
