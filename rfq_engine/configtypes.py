"""Pydantic field types shared by every config model.

``DecimalStr`` accepts a decimal *string* or an integer, never a float: a TOML float
like ``spot = 40000.1`` is refused with a message saying to quote it, because a binary
float cannot hold most decimal prices exactly. It is held to the entry bounds of decimals
(``rfq_engine.domain.values.ENTRY_BOUNDS``: 28 significant digits, 1E-30 <= |x| < 1E+31).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, PlainSerializer

from rfq_engine.domain.values import ENTRY_BOUNDS, decimal_str, parse_decimal

__all__ = ["STRICT", "DecimalStr", "PositiveDecimalStr"]

STRICT = ConfigDict(extra="forbid", frozen=True)
"""Model config for every config section: unknown keys are errors (typos are caught)."""


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f'must be a quoted decimal string like "{value}", not a float')
    return parse_decimal(value, "value", ENTRY_BOUNDS)


def _to_positive(value: Any) -> Decimal:
    result = _to_decimal(value)
    if result <= 0:
        raise ValueError(f"must be positive, got {decimal_str(result)}")
    return result


DecimalStr = Annotated[
    Decimal, BeforeValidator(_to_decimal), PlainSerializer(decimal_str, return_type=str)
]
PositiveDecimalStr = Annotated[
    Decimal, BeforeValidator(_to_positive), PlainSerializer(decimal_str, return_type=str)
]
