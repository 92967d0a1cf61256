"""The ``[market]`` config section: a hand-written market for demos, tests and fallbacks.

    [market]
    spot = { BTC = "40000" }
    vol = { BTC = "0.55" }      # annualised implied vol
    rate = "0.05"               # risk-free, annual
    basis = { BTC = "0.06" }    # optional annual futures carry; defaults to rate
    hashprice = "55"            # USD per PH/s per day, for hashprice NDFs
    max_age_s = 30              # a snapshot older than this is refused

Prices are quoted decimal strings (a TOML float is refused, see ``configtypes``);
only the duration may be a bare number.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, field_validator

from rfq_engine.configtypes import STRICT, DecimalStr, PositiveDecimalStr
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str

__all__ = ["MarketConfig", "Seconds"]


def _to_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number of seconds like 30, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive, finite number of seconds, got {value!r}")
    return float(value)


Seconds = Annotated[float, BeforeValidator(_to_seconds)]
"""A positive duration in seconds; an int or a float (a duration is not money)."""


def _codes(values: dict[str, Decimal]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, value in values.items():
        code = key.strip().upper()
        if not code:
            raise ValueError("an underlying code must not be empty")
        if code in out:
            raise ValueError(f"underlying {code} is given twice")
        out[code] = value
    return out


class MarketConfig(BaseModel):
    """A market snapshot as configuration; ``to_snapshot(now)`` stamps it ``as_of`` now."""

    model_config = STRICT

    spot: dict[str, PositiveDecimalStr]
    vol: dict[str, DecimalStr] = {}
    rate: DecimalStr
    basis: dict[str, DecimalStr] = {}
    hashprice: PositiveDecimalStr | None = None
    max_age_s: Seconds = 30.0

    @field_validator("spot", "basis")
    @classmethod
    def _upper_codes(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return _codes(value)

    @field_validator("vol")
    @classmethod
    def _vol_non_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, vol in value.items():
            if vol < 0:
                raise ValueError(f"vol of {code} must not be negative, got {decimal_str(vol)}")
        return _codes(value)

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.max_age_s)

    def to_snapshot(self, now: datetime) -> MarketSnapshot:
        """This market as observed at ``now`` (a timezone-aware UTC datetime)."""
        return MarketSnapshot(
            spot=self.spot,
            vol=self.vol,
            rate=self.rate,
            basis=self.basis,
            hashprice=self.hashprice,
            as_of=now,
        )
