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

``position_funding`` accrues one position from its trades: at each funding time since its first
trade (``funding_times``: every 24 / n hours from 00:00 UTC) it holds what its trades before that
time add up to. The rate is the venue account's ``funding_rate`` and the mark today's (past rates
and marks are not kept), so it is an estimate of what the position has paid so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Perpetual
from rfq_engine.domain.pricing import MarketSnapshot, fair_price
from rfq_engine.domain.values import decimal_str, format_ts
from rfq_engine.hedging.positions import LegTrade, TradeRecord, instrument_key, leg_trades

__all__ = ["FundingAccrual", "FundingInterval", "accrue_funding", "funding_payment", "funding_times",
           "perpetual_funding", "position_funding"]

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


# ------------------------------------------------------------------------------ per position


def funding_times(start: datetime, end: datetime, per_day: int) -> list[datetime]:
    """The funding times after ``start`` up to ``end``: every ``24 / per_day`` hours from 00:00
    UTC (00:00, 08:00 and 16:00 at 3 a day, as Deribit, OKX and Binance settle)."""
    if not 1 <= per_day <= 24:
        raise ValidationError("funding_intervals_per_day", f"must be 1 to 24, got {per_day}")
    step = timedelta(days=1) / per_day
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    day = datetime.combine(start.date(), dtime(0), UTC)
    at = day + step * ((start - day) // step + 1)
    out = []
    while at <= end:
        out.append(at)
        at += step
    return out


def position_funding(legs: Sequence[LegTrade], *, rate: Decimal, per_day: int, mark: Decimal,
                     now: datetime) -> FundingAccrual:
    """The funding one perpetual position (``legs``: its trades, one instrument, one kind) received
    at each funding time from its first trade to ``now``, holding what its trades before that time
    add up to: the quantity (linear, USD) or the USD notional (inverse, BTC: 1-USD contracts).
    ``rate`` and ``mark`` apply to every interval (past marks and rates are not kept: an estimate)."""
    ordered = sorted(legs, key=lambda leg: leg.filled_at)
    if not ordered:
        return FundingAccrual(Decimal(0), "USD", ())
    inverse = ordered[0].notional is not None

    def size(leg: LegTrade) -> Decimal:
        return (leg.notional or Decimal(0)) if inverse else leg.quantity

    held, index, payments = Decimal(0), 0, []
    for at in funding_times(ordered[0].filled_at, now, per_day):
        while index < len(ordered) and ordered[index].filled_at <= at:
            held += size(ordered[index])
            index += 1
        if held:
            payment = funding_payment(held, mark, rate, face_value=Decimal(1) if inverse else None)
            payments.append((FundingInterval(at, mark, rate), payment))
    held = sum((size(leg) for leg in ordered), Decimal(0))
    return FundingAccrual(held, "BTC" if inverse else "USD", tuple(payments))


def perpetual_funding(trades: Sequence[TradeRecord], rates: Mapping[str, tuple[Decimal, int]],
                      snapshot: MarketSnapshot, now: datetime) -> list[dict[str, Any]]:
    """Each perpetual position (by dealer, instrument, inverse or linear) with the funding it has
    paid so far (``position_funding``; positive: paid, negative: received), at its dealer's
    ``rates`` (``funding_rate``, intervals per day) and today's mark; a dealer without a rate
    says so."""
    today = now.astimezone(UTC).date()
    groups: dict[tuple[str, str, bool], list[LegTrade]] = {}
    for trade in trades:
        for leg in leg_trades(trade, snapshot, today):
            if isinstance(leg.instrument, Perpetual) and leg.filled_at <= now:
                group = (trade.dealer_id, instrument_key(leg.instrument), leg.notional is not None)
                groups.setdefault(group, []).append(leg)
    rows = []
    for (dealer, key, inverse), legs in sorted(groups.items()):
        mark = fair_price(legs[0].instrument, snapshot, today)
        row: dict[str, Any] = {"dealer": dealer, "instrument": key, "inverse": inverse,
                               "mark": decimal_str(mark),
                               "since": format_ts(min(leg.filled_at for leg in legs))}
        terms = rates.get(dealer)
        if terms is None:
            rows.append({**row, "held": None, "currency": None, "rate": None, "intervals_per_day": None,
                         "intervals": None, "paid": None, "paid_usd": None,
                         "note": f"no funding_rate in [risk.venues.{dealer}]"})
            continue
        accrual = position_funding(legs, rate=terms[0], per_day=terms[1], mark=mark, now=now)
        paid = -accrual.total
        with localcontext() as ctx:
            ctx.prec = 50
            paid_usd = (paid * mark).quantize(CENT, rounding=ROUND_HALF_EVEN) if inverse else paid
        rows.append({**row, "held": decimal_str(accrual.quantity), "currency": accrual.currency,
                     "rate": decimal_str(terms[0]), "intervals_per_day": terms[1],
                     "intervals": len(accrual.payments), "paid": f"{paid:f}", "paid_usd": f"{paid_usd:f}",
                     "note": "estimate: the configured rate at today's mark"})
    return rows
