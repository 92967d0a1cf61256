"""Calendar rolls' results from the price traded (pure): price sold minus price bought back.

A roll is a two-leg calendar of futures (``positions``' module docstring says how a package's
legs and sides are read); its result comes from the one net price it traded at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from rfq_engine.domain.instruments import Future
from rfq_engine.domain.rfq import Side
from rfq_engine.domain.values import decimal_str, format_ts
from rfq_engine.hedging.positions import TradeRecord, executed_sides, instrument_key

__all__ = ["RollResult", "roll_results"]

_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _d(value: Decimal) -> str:
    return decimal_str(_OUT.plus(value))


@dataclass(frozen=True, slots=True)
class RollResult:
    """A calendar roll: bought back ``near``, sold ``far`` (or the reverse), at one net price."""

    rfq_id: str
    fill_id: str
    bought: Future
    sold: Future
    quantity: Decimal
    price: Decimal
    result_per_unit: Decimal
    filled_at: datetime

    @property
    def result_total(self) -> Decimal:
        return _OUT.plus(self.result_per_unit * self.quantity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rfq_id": self.rfq_id,
            "fill_id": self.fill_id,
            "bought": instrument_key(self.bought),
            "sold": instrument_key(self.sold),
            "quantity": _d(self.quantity),
            "price": _d(self.price),
            "result_per_unit": _d(self.result_per_unit),
            "result_total": _d(self.result_total),
            "filled_at": format_ts(self.filled_at),
        }


def roll_results(trades: Iterable[TradeRecord]) -> list[RollResult]:
    """Each fill of a two-leg calendar of futures (one bought, one sold, same underlying, ratios 1).

    The result per unit is the price sold minus the price bought back; with one net price it
    is the net price when the requester sold the package, minus it when they bought it
    (the net price is what the requester receives on a sell, pays on a buy). Its sign comes
    from the prices, never from an assumption of contango or backwardation.
    """
    out = []
    for trade in trades:
        spec = trade.spec
        legs = spec.legs
        if len(legs) != 2 or not all(isinstance(leg.instrument, Future) for leg in legs):
            continue
        if legs[0].instrument.underlying != legs[1].instrument.underlying \
                or legs[0].ratio != 1 or legs[1].ratio != 1:
            continue
        sides = executed_sides(spec)
        if set(sides) != {Side.BUY, Side.SELL}:
            continue
        bought = legs[sides.index(Side.BUY)].instrument
        sold = legs[sides.index(Side.SELL)].instrument
        assert isinstance(bought, Future) and isinstance(sold, Future)
        per_unit = trade.price if spec.requester_side is Side.SELL else -trade.price
        out.append(RollResult(trade.rfq_id, trade.fill_id, bought, sold, trade.quantity, trade.price,
                              per_unit, trade.filled_at))
    return sorted(out, key=lambda r: (r.filled_at, r.fill_id))
