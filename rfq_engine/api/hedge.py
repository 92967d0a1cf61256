"""``/api/v1/hedge/scenario``: hedged vs unhedged outcomes across prices (DOMAIN.md A and B).

A thin JSON front to the pure ``rfq_engine.hedging.scenario`` functions the CLI uses, so
the API, the web UI's chart and ``rfq hedge scenario --json`` give the same numbers.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import require
from rfq_engine.api.serialize import json_response
from rfq_engine.domain import ValidationError, parse_decimal
from rfq_engine.hedging.scenario import ndf_table, scenario_table

__all__ = ["routes"]

routes = web.RouteTableDef()
MAX_POINTS = 200


def _dec(body: dict[str, Any], key: str, default: str | None = None) -> Decimal:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    return parse_decimal(value, key)


def _opt(body: dict[str, Any], key: str) -> Decimal | None:
    return None if body.get(key) is None else parse_decimal(body[key], key)


def _series(body: dict[str, Any], key: str) -> list[Decimal]:
    values = body.get(key)
    if not isinstance(values, list) or not values:
        raise ValidationError(key, "must be a non-empty list of decimal strings")
    if len(values) > MAX_POINTS:
        raise ValidationError(key, f"at most {MAX_POINTS} points")
    return [parse_decimal(v, f"{key}[{i}]") for i, v in enumerate(values)]


@routes.post("/api/v1/hedge/scenario")
@require("hedge:read")
async def scenario(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error":"bad_request","reason":"body is not valid JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    strategy = body.get("strategy")
    if strategy == "ndf":
        days = body.get("days")
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValidationError("days", "must be a whole number of days")
        table = ndf_table(
            unit_price=_dec(body, "unit_price"), hashrate_ph=_dec(body, "hashrate_ph"), days=days,
            settle_rates=_series(body, "settle_rates"), side=str(body.get("side", "short")),
            hedge_ratio=_opt(body, "hedge_ratio"), power_mw=_opt(body, "power_mw"),
            power_price=_opt(body, "power_price"), opex_only=bool(body.get("opex_only", False)))
    elif strategy in ("future", "put", "collar", "unhedged"):
        table = scenario_table(
            strategy=str(strategy), spot=_dec(body, "spot"), cost=_dec(body, "cost", "0"),
            quantity=_dec(body, "quantity", "1"), prices=_series(body, "prices"),
            future_price=_opt(body, "future_price"),
            put_strike=None if body.get("put") is None else str(body["put"]),
            call_strike=None if body.get("call") is None else str(body["call"]),
            premium=_dec(body, "premium", "0"), hedge_ratio=_dec(body, "hedge_ratio", "1"))
    else:
        raise ValidationError("strategy", "must be one of future, put, collar, unhedged, ndf")
    return json_response(table)
