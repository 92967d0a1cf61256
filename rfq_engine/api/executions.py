"""``POST /api/v1/rfqs/{rfq_id}/executions/{execution_id}/resolve``: a person's decision on
an award whose outcome is unknown (runbooks/unresolved-execution.md).

Body: ``{"executed": true|false, "evidence": str, "dealer_trade_id"?: str,
"quantity"?: decimal string, "price"?: decimal string}``; unknown fields are refused.
Answers 200 with the decision once it is durable; 409 when the award is already settled
(by the dealer or an earlier resolution) or still in last look; 403 for the requester
(four eyes); 404 for an unknown RFQ or execution; 422 naming the bad field.
"""

from __future__ import annotations

from aiohttp import web

from rfq_engine.api.auth import PRINCIPAL, require
from rfq_engine.api.body import read_json
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.serialize import json_response
from rfq_engine.domain import ExecutionId, ValidationError, decimal_str
from rfq_engine.domain.values import ENTRY_BOUNDS, check_fields
from rfq_engine.domain.values import parse_decimal as _parse_decimal
from rfq_engine.engine.resolution import Resolution

__all__ = ["routes"]

routes = web.RouteTableDef()
_FIELDS = ("executed", "evidence", "dealer_trade_id", "quantity", "price")


def _text(data: dict[str, object], name: str, *, limit: int) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    if len(value) > limit:
        raise ValidationError(name, f"at most {limit} characters")
    return value


def resolution_from(data: dict[str, object], execution_id: str, actor: str) -> Resolution:
    check_fields(data, _FIELDS)
    executed = data.get("executed")
    if not isinstance(executed, bool):
        raise ValidationError("executed", "must be true or false")
    quantity = data.get("quantity")
    price = data.get("price")
    return Resolution(
        ExecutionId(execution_id), executed, _text(data, "evidence", limit=4000), actor,
        None if quantity is None else _parse_decimal(quantity, "quantity", ENTRY_BOUNDS),
        None if price is None else _parse_decimal(price, "price", ENTRY_BOUNDS),
        _text(data, "dealer_trade_id", limit=200))


@routes.post("/api/v1/rfqs/{rfq_id}/executions/{execution_id}/resolve")
@require("rfq:resolve")
async def resolve_execution(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    principal = request[PRINCIPAL]
    rfq_id = request.match_info["rfq_id"]
    execution_id = request.match_info["execution_id"]
    resolution = resolution_from(await read_json(request), execution_id, principal.name)
    outcome = await app.engine.resolve_execution(rfq_id, resolution)  # UnknownExecution: 404
    return json_response({
        "rfq_id": rfq_id, "execution_id": execution_id, "executed": outcome.confirmed,
        "quantity": decimal_str(outcome.quantity) if outcome.confirmed else None,
        "price": decimal_str(outcome.price) if outcome.confirmed else None,
        "dealer_trade_id": outcome.dealer_trade_id, "resolved_by": principal.name,
    })
