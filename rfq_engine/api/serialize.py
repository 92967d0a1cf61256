"""Store rows to JSON-ready dicts: decimals as strings, times as ``...Z``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from rfq_engine.domain import to_jsonable
from rfq_engine.store import AwardRow, FillRow, QuoteRow, RfqRow

__all__ = ["error", "json_response", "row"]


def row(value: RfqRow | QuoteRow | AwardRow | FillRow) -> dict[str, Any]:
    data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, RfqRow):
        data["spec"] = dict(value.spec)
    result: dict[str, Any] = to_jsonable(data)
    return result


def _default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Money is Decimal and renders as a string; floats are only durations and rates."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default)
    return web.Response(text=body, status=status, content_type="application/json",
                        headers=headers)


def error(status: int, kind: str, reason: str, field: str | None = None) -> web.Response:
    payload: dict[str, Any] = {"error": kind, "reason": reason}
    if field is not None:
        payload["field"] = field
    return json_response(payload, status=status)
