"""``/api/v1/hedge``: scenarios and programs.

- ``POST /api/v1/hedge/scenario``: hedged vs unhedged outcomes across prices (DOMAIN.md A
  and B), a thin JSON front to the pure ``rfq_engine.hedging.scenario`` functions the CLI
  uses, so the API, the web UI's chart and ``rfq hedge scenario --json`` agree.
- ``GET /api/v1/hedge/programs`` and ``/programs/{name}``: each configured program's terms,
  next scheduled runs, what its latest scheduled time plans, its recorded decisions and its
  coverage (``rfq_engine.hedging.overview``), read from the audit store.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, DecimalException
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import require
from rfq_engine.api.body import query_int, read_json
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.serialize import error, json_response
from rfq_engine.domain import ValidationError
from rfq_engine.domain.errors import Unavailable
from rfq_engine.domain.events import EventType, ProgramDecided
from rfq_engine.domain.values import ENTRY_BOUNDS, check_fields, format_ts, parse_decimal, utc_now
from rfq_engine.hedging.funding import perpetual_funding
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
