"""Parsing and formatting of the two value types that cross every boundary: decimals and UTC times.

Money and quantities are ``Decimal`` and travel as JSON strings; a float is refused,
never converted. Timestamps are timezone-aware UTC with microseconds and render as
``2026-11-21T10:00:00.123456Z``.

Every decimal is bounded, so no value can grow to megabytes in the hash-chained log (which
is never purged) or make arithmetic run away:

- ``ENTRY_BOUNDS``: what a person or a dealer sends (API bodies, config files, dealer
  messages): at most 28 significant digits (the precision the engine computes and writes
  decimals with, so nothing entered is rounded silently), a magnitude from ``1E-30`` up to
  ``9.99...E+30`` (adjusted exponent within +-30), and at most 100 characters of text.
- ``STORED_BOUNDS``, the default of ``parse_decimal``: wider (100 digits, +-400, 1,000
  characters), for values the engine reads back or computed itself (a notional is a
  product of bounded inputs and market prices) and for callers that have not opted in to
  the entry bounds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rfq_engine.domain.errors import ValidationError

__all__ = [
    "ENTRY_BOUNDS",
    "STORED_BOUNDS",
    "DecimalBounds",
    "check_fields",
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


@dataclass(frozen=True, slots=True)
class DecimalBounds:
    """The largest decimal a parser accepts."""

    digits: int
    """Significant digits: those of the coefficient, trailing zeros not counted."""
    exponent: int
    """Bound on the adjusted exponent (the power of ten of the leading digit), both ways."""
    chars: int
    """Length of the text form (a string, or an integer's decimal digits)."""

    def describe(self) -> str:
        return (f"a decimal has at most {self.digits} significant digits and "
                f"1E-{self.exponent} <= |x| < 1E+{self.exponent + 1} (or is 0)")


ENTRY_BOUNDS = DecimalBounds(digits=28, exponent=30, chars=100)
STORED_BOUNDS = DecimalBounds(digits=100, exponent=400, chars=1000)


def parse_decimal(value: object, field: str, bounds: DecimalBounds = STORED_BOUNDS) -> Decimal:
    """A finite, bounded ``Decimal`` from a decimal string, an int or a Decimal; floats and
    bools are refused."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a decimal string, got a boolean")
    if isinstance(value, float):
        raise ValidationError(field, f"must be a decimal string like \"{value}\", got a JSON float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        # 3.33 bits a digit: checked before converting, so a huge int costs nothing.
        if value.bit_length() > bounds.chars * 3:
            raise ValidationError(field, f"is too large: {bounds.describe()}")
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > bounds.chars:
            raise ValidationError(field, f"is {len(text)} characters long; a decimal has at most "
                                  f"{bounds.chars}")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValidationError(field, f"not a decimal number: {value!r}") from None
    else:
        raise ValidationError(field, f"must be a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValidationError(field, f"must be finite, got {value!r}")
    _check_bounds(result, field, bounds)
    return result


def _check_bounds(value: Decimal, field: str, bounds: DecimalBounds) -> None:
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not any(digits):  # a zero: only its exponent can be hostile ("0E-999999")
        if not -(bounds.exponent + bounds.digits) <= exponent <= bounds.exponent:
            raise ValidationError(field, f"has an out-of-range exponent: {bounds.describe()}")
        return
    significant = len(digits)
    while digits[significant - 1] == 0:
        significant -= 1
    if significant > bounds.digits:
        raise ValidationError(field, f"has {significant} significant digits: {bounds.describe()}")
    adjusted = value.adjusted()
    if adjusted > bounds.exponent:
        raise ValidationError(field, f"is too large: {bounds.describe()}")
    if adjusted < -bounds.exponent:
        raise ValidationError(field, f"is too small: {bounds.describe()}")


def parse_positive(value: object, field: str, bounds: DecimalBounds = STORED_BOUNDS) -> Decimal:
    result = parse_decimal(value, field, bounds)
    if result <= 0:
        raise ValidationError(field, f"must be positive, got {decimal_str(result)}")
    return result


def opt_decimal(value: object, field: str, bounds: DecimalBounds = STORED_BOUNDS) -> Decimal | None:
    return None if value is None else parse_decimal(value, field, bounds)


def check_fields(data: Mapping[str, Any], allowed: Collection[str], prefix: str = "") -> None:
    """A ValidationError naming the first key of ``data`` that is not in ``allowed``: a
    misspelt field is an error, never silently ignored."""
    for key in data:
        if key not in allowed:
            shown = key if len(key) <= 64 else key[:64] + "..."
            expected = (f"expected one of: {', '.join(sorted(allowed))}" if allowed
                        else "this object has no fields")
            raise ValidationError(f"{prefix}.{shown}" if prefix else shown,
                                  f"unknown field; {expected}")


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
        raise ValidationError(field, f"not an ISO 8601 timestamp: {value[:64]!r}") from None
    if ts.tzinfo is None:
        raise ValidationError(field, "timestamp has no time zone; send UTC with a trailing Z")
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # "9999-12-31T23:00:00-05:00" is past the last representable time
        raise ValidationError(field, f"out of range: {value[:64]!r}") from None


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
