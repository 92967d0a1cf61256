"""Canonical JSON: the byte string hashed by the audit chain and signed by the dealer protocol.

Keys sorted, separators ``,`` and ``:``, no whitespace, UTF-8 with non-ASCII kept.
Decimals render as plain strings and datetimes as UTC ``...Z`` strings, so a payload
holding domain values can be written directly.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from rfq_engine.domain.values import decimal_str, format_ts

__all__ = ["canonical_json", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Domain values to JSON-ready ones: Decimal -> str, datetime -> ...Z, date -> ISO, Enum -> value."""
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        raise TypeError("floats are not allowed in canonical JSON; use Decimal")
    return value


def _default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


def canonical_json(value: Any) -> str:
    """Refuses floats anywhere in ``value`` (``json.dumps`` never asks ``default`` about them,
    so they are converted first, which raises on a float)."""
    return json.dumps(
        to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        default=_default,
    )
