"""Perpetual funding accrued (pure): DOMAIN.md "Perpetual funding".

Every funding interval (8 hours on most venues) the longs pay the shorts ``notional x rate``
when the rate is positive, and the shorts pay the longs when it is negative. The notional is
the position's size at that interval's mark price:

- a linear perpetual (quoted and margined in USD): ``|quantity| x mark``, paid in USD, each
  payment rounded half even to the cent, as a venue books it;
- an inverse perpetual (contracts of a USD face value, margined in BTC):
  ``contracts x face / mark`` BTC, each payment rounded half even to the satoshi.

``accrue_funding`` returns each payment, signed for the holder (positive: received), and
the total: a short hedge earns positive funding and pays negative funding, and its cost
over a month is the sum of its payments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import decimal_str, format_ts

__all__ = ["FundingAccrual", "FundingInterval", "accrue_funding", "funding_payment"]

CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")
MAX_RATE = Decimal("0.1")
"""10% per interval: far beyond any venue's cap; a larger rate is an input error."""


@dataclass(frozen=True, slots=True)
class FundingInterval:
    """One funding time, the mark price then and the rate (``0.0001`` = 0.01%)."""

    at: datetime
    mark: Decimal
    rate: Decimal


def funding_payment(quantity: Decimal, mark: Decimal, rate: Decimal, *,
                    face_value: Decimal | None = None) -> Decimal:
    """What the holder of ``quantity`` (positive long, negative short; contracts when
    ``face_value`` is given) receives at one interval: ``-quantity x notional_per_unit x rate``.
    USD to the cent for a linear perpetual; BTC to the satoshi for an inverse one."""
    if not isinstance(mark, Decimal) or not mark.is_finite() or mark <= 0:
        raise ValidationError("mark", f"must be a positive price, got {mark!r}")
    if not isinstance(rate, Decimal) or not rate.is_finite() or abs(rate) > MAX_RATE:
        raise ValidationError("rate", f"must be a funding rate per interval in [-0.1, 0.1], got {rate!r}")
    with localcontext() as ctx:
        ctx.prec = 50
        if face_value is None:
            return (-quantity * mark * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
        if face_value <= 0:
            raise ValidationError("face_value", f"must be a positive USD amount, got {face_value!r}")
        return (-quantity * face_value / mark * rate).quantize(SATOSHI, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class FundingAccrual:
    quantity: Decimal
    currency: str
    payments: tuple[tuple[FundingInterval, Decimal], ...]

    @property
    def total(self) -> Decimal:
        return sum((p for _, p in self.payments), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": decimal_str(self.quantity), "currency": self.currency,
                "total": f"{self.total:f}",
                "payments": [{"at": format_ts(i.at), "mark": decimal_str(i.mark), "rate": decimal_str(i.rate),
                              "payment": f"{p:f}"} for i, p in self.payments]}


def accrue_funding(quantity: Decimal, intervals: Sequence[FundingInterval], *,
                   face_value: Decimal | None = None) -> FundingAccrual:
    """Every interval's payment to the holder of ``quantity`` and their sum."""
    payments = tuple((i, funding_payment(quantity, i.mark, i.rate, face_value=face_value)) for i in intervals)
    return FundingAccrual(quantity, "USD" if face_value is None else "BTC", payments)
