"""Parsing and formatting of the two value types that cross every boundary: decimals and UTC times.

Money and quantities are ``Decimal`` and travel as JSON strings; a float is refused,
never converted. Timestamps are timezone-aware UTC with microseconds and render as
``2026-11-21T10:00:00.123456Z``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rfq_engine.domain.errors import ValidationError

__all__ = [
    "decimal_str",
    "format_ts",
    "opt_decimal",
    "parse_date",
    "parse_decimal",
    "parse_positive",
    "parse_ts",
    "require",
    "utc_now",
]


def parse_decimal(value: object, field: str) -> Decimal:
    """A finite ``Decimal`` from a decimal string, an int or a Decimal; floats and bools are refused."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a decimal string, got a boolean")
    if isinstance(value, float):
        raise ValidationError(field, f"must be a decimal string like \"{value}\", got a JSON float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValidationError(field, f"not a decimal number: {value!r}") from None
    else:
        raise ValidationError(field, f"must be a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValidationError(field, f"must be finite, got {value!r}")
    return result


def parse_positive(value: object, field: str) -> Decimal:
    result = parse_decimal(value, field)
    if result <= 0:
        raise ValidationError(field, f"must be positive, got {decimal_str(result)}")
    return result


def opt_decimal(value: object, field: str) -> Decimal | None:
    return None if value is None else parse_decimal(value, field)


def decimal_str(value: Decimal) -> str:
    """Plain positional notation, no exponent, no trailing zeros: ``Decimal('4.0E+4')`` -> ``'40000'``."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be UTC-aware")
    utc = ts.astimezone(UTC)
    # ``isoformat`` is about half the cost of ``strftime``. In UTC it reads
    # ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (32 characters), or without ``.ffffff`` when the
    # microseconds are zero (25); ``%Y`` does not pad a year below 1000, so those go to
    # ``strftime``, as does a datetime subclass (it may format itself differently).
    if type(utc) is datetime and utc.year >= 1000:
        text = utc.isoformat()
        if len(text) == 32:
            return text[:26] + "Z"
        if len(text) == 25:
            return text[:19] + ".000000Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: object, field: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(field, "timestamp has no time zone; send UTC with a trailing Z")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValidationError(field, f"must be an ISO 8601 UTC timestamp string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"not an ISO 8601 timestamp: {value!r}") from None
    if ts.tzinfo is None:
        raise ValidationError(field, "timestamp has no time zone; send UTC with a trailing Z")
    return ts.astimezone(UTC)


def parse_date(value: object, field: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a date string YYYY-MM-DD, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(field, f"not a date YYYY-MM-DD: {value!r}") from None


def require(data: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    """``data[key]`` or a ValidationError naming the missing field."""
    if not isinstance(data, Mapping):
        raise ValidationError(prefix or key, f"must be an object, got {type(data).__name__}")
    if key not in data or data[key] is None:
        raise ValidationError(f"{prefix}.{key}" if prefix else key, "is required")
    return data[key]
