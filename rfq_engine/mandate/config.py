"""A mandate as configuration: the ``[mandates.<name>]`` TOML section leadership writes.

    [mandates.treasury]
    underlyings = ["BTC"]
    instruments = ["future", "option"]
    max_tenor_days = 190
    max_notional_per_rfq = "10000000"
    max_notional_per_day = "20000000"
    max_notional_per_month = "60000000"
    min_quotes = 2
    price_tolerance_bps = "200"
    approval_threshold = "5000000"
    max_hedge_ratio = "0.8"
    approval_timeout_s = 900

    [mandates.treasury.dealers]
    desk-a = { credit_limit = "5000000" }
    desk-b = { credit_limit = "8000000" }

Strict by design: an unknown key is an error (a typo such as ``max_notional_per_dya``
would otherwise silently leave a cap unenforced), money is a quoted decimal string
(a TOML float is refused), and every validation error names its field.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from rfq_engine.configtypes import STRICT, PositiveDecimalStr
from rfq_engine.domain.instruments import InstrumentKind
from rfq_engine.domain.rfq import ClosePolicy
from rfq_engine.domain.values import decimal_str

__all__ = ["DealerLimit", "MandateConfig"]


def _to_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number of seconds like 900, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive, finite number of seconds, got {value!r}")
    return float(value)


_Seconds = Annotated[float, BeforeValidator(_to_seconds)]


class DealerLimit(BaseModel):
    """An approved dealer's terms: the most open exposure the desk may have with it."""

    model_config = STRICT

    credit_limit: PositiveDecimalStr


class MandateConfig(BaseModel):
    """What a mandate allows. Optional limits that are absent are simply not enforced."""

    model_config = STRICT

    underlyings: list[str] = Field(min_length=1)
    instruments: list[InstrumentKind] = Field(min_length=1)
    max_tenor_days: StrictInt = Field(ge=0)
    dealers: dict[str, DealerLimit] = Field(min_length=1)
    max_notional_per_rfq: PositiveDecimalStr | None = None
    max_notional_per_day: PositiveDecimalStr | None = None
    max_notional_per_month: PositiveDecimalStr | None = None
    min_quotes: StrictInt = Field(default=1, ge=1)
    price_tolerance_bps: PositiveDecimalStr | None = None
    require_reference: StrictBool | None = None
    approval_threshold: PositiveDecimalStr | None = None
    max_hedge_ratio: PositiveDecimalStr | None = None
    approval_timeout_s: _Seconds = 900.0
    close_policy: ClosePolicy = ClosePolicy.ALL_ANSWERED
    """When an RFQ's response window closes unless the RFQ names its own (``deadline``:
    always at the deadline; ``all_answered``: early once every dealer asked answered)."""
    currency: str = "USD"
    """The currency caps, limits and thresholds are written in (a label for reasons)."""

    @field_validator("underlyings")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        codes = [code.strip().upper() for code in value]
        if any(not code for code in codes):
            raise ValueError("an underlying code must not be empty")
        if len(set(codes)) != len(codes):
            raise ValueError("lists an underlying twice")
        return codes

    @field_validator("instruments")
    @classmethod
    def _unique_kinds(cls, value: list[InstrumentKind]) -> list[InstrumentKind]:
        if len(set(value)) != len(value):
            raise ValueError("lists an instrument kind twice")
        return value

    @field_validator("dealers")
    @classmethod
    def _dealer_ids(cls, value: dict[str, DealerLimit]) -> dict[str, DealerLimit]:
        if any(not dealer.strip() or dealer != dealer.strip() for dealer in value):
            raise ValueError("a dealer id must be non-empty, without surrounding spaces")
        return value

    @field_validator("max_hedge_ratio")
    @classmethod
    def _ratio(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value > 1:
            raise ValueError(f"must be a fraction in (0, 1], got {decimal_str(value)}")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not code or len(code) > 16:
            raise ValueError(f"must be a currency code like 'USD', got {value!r}")
        return code

    @field_validator("min_quotes")
    @classmethod
    def _reachable(cls, value: int, info: ValidationInfo) -> int:
        dealers = info.data.get("dealers")
        if dealers is not None and value > len(dealers):
            raise ValueError(
                f"{value} quotes needed but only {len(dealers)} dealers approved, "
                "so no RFQ could ever be awarded"
            )
        return value

    @property
    def reference_required(self) -> bool:
        """Explicit ``require_reference``, else true exactly when a tolerance is set.

        A quote cannot be checked against a tolerance without a reference, so a mandate
        with a tolerance rejects quotes when no reference is available unless it says
        otherwise.
        """
        if self.require_reference is not None:
            return self.require_reference
        return self.price_tolerance_bps is not None
