"""More strategies from the playbook (pure): a futures hedge with a call overlay, and
hashprice NDFs with the unit price in USD or in BTC.

**Futures with a call overlay.** Sell futures at ``F`` on ``r`` of production and buy calls
of strike ``K`` at premium ``c`` on ``k`` of that quantity (``call_ratio``). Per unit of
production at the price ``S`` at expiry:

    revenue = (1 - r) x S + r x (F + k x (max(S - K, 0) - c))

The futures fix the price of the hedged share; the calls give back its upside above ``K``
for their premium (a short future plus a long call is a synthetic put).

**Hashprice NDF in BTC.** Luxor quotes NDFs with the unit price ``U`` in USD or in BTC per
PH/s per day. The seller receives ``(U - R) x H x N`` in the unit's currency; a BTC amount
is worth its USD at the BTC price. ``U_BTC = U_USD / BTC price``, to the satoshi.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import decimal_str

__all__ = ["future_call_revenue", "future_call_table", "ndf_settlement", "unit_price_in_btc"]

CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")


def _fraction(value: Decimal, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise ValidationError(field, f"must be a fraction in [0, 1], got {value!r}")
    return value


def future_call_revenue(price: Decimal, *, future_price: Decimal, call_strike: Decimal, premium: Decimal,
                        hedge_ratio: Decimal = Decimal(1), call_ratio: Decimal = Decimal(1)) -> Decimal:
    """Revenue per unit of production at ``price`` (see the module docstring)."""
    r, k = _fraction(hedge_ratio, "hedge_ratio"), _fraction(call_ratio, "call_ratio")
    with localcontext() as ctx:
        ctx.prec = 50
        call = max(price - call_strike, Decimal(0)) - premium
        return +((1 - r) * price + r * (future_price + k * call))


def future_call_table(*, prices: Sequence[Decimal], future_price: Decimal, call_strike: Decimal,
                      premium: Decimal, quantity: Decimal = Decimal(1), cost: Decimal = Decimal(0),
                      hedge_ratio: Decimal = Decimal(1), call_ratio: Decimal = Decimal(1)) -> dict[str, Any]:
    """Unhedged and hedged revenue and P&L per unit and in total at each price (USD to the cent)."""
    rows = []
    for price in prices:
        hedged = future_call_revenue(price, future_price=future_price, call_strike=call_strike,
                                     premium=premium, hedge_ratio=hedge_ratio, call_ratio=call_ratio)
        rows.append({"price": decimal_str(price), "unhedged_revenue": decimal_str(price),
                     "hedged_revenue": decimal_str(hedged), "hedged_pnl": decimal_str(hedged - cost),
                     "hedged_revenue_total": f"{(hedged * quantity).quantize(CENT, ROUND_HALF_EVEN):f}",
                     "unhedged_revenue_total": f"{(price * quantity).quantize(CENT, ROUND_HALF_EVEN):f}"})
    return {"strategy": "future_call", "future_price": decimal_str(future_price),
            "call_strike": decimal_str(call_strike), "premium": decimal_str(premium),
            "hedge_ratio": decimal_str(hedge_ratio), "call_ratio": decimal_str(call_ratio),
            "hedged_share_floor": decimal_str(future_price - call_ratio * premium), "rows": rows}


def unit_price_in_btc(unit_usd: Decimal, btc_price: Decimal) -> Decimal:
    """A USD unit hashprice in BTC per PH/s per day, to the satoshi."""
    if not isinstance(btc_price, Decimal) or not btc_price.is_finite() or btc_price <= 0:
        raise ValidationError("btc_price", f"must be a positive USD price, got {btc_price!r}")
    with localcontext() as ctx:
        ctx.prec = 50
        return (unit_usd / btc_price).quantize(SATOSHI, rounding=ROUND_HALF_EVEN)


def ndf_settlement(*, unit_price: Decimal, index: Decimal, hashrate_ph: Decimal, days: int,
                   unit_ccy: str = "USD", side: str = "short",
                   btc_price: Decimal | None = None) -> dict[str, str | None]:
    """What the NDF's holder receives: ``(U - R) x H x N`` for the seller (``side`` short),
    the opposite for the buyer; in the unit's currency (USD to the cent, BTC to the satoshi),
    with a BTC amount's USD value at ``btc_price`` when given."""
    if unit_ccy not in ("USD", "BTC"):
        raise ValidationError("unit_ccy", f"must be USD or BTC, got {unit_ccy!r}")
    if side not in ("short", "long"):
        raise ValidationError("side", f"must be short or long, got {side!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValidationError("days", f"must be a whole number of days >= 1, got {days!r}")
    step = CENT if unit_ccy == "USD" else SATOSHI
    with localcontext() as ctx:
        ctx.prec = 50
        contracts = hashrate_ph * days
        amount = (unit_price - index) * contracts * (1 if side == "short" else -1)
        notional = (unit_price * contracts).quantize(step, ROUND_HALF_EVEN)
        settled = amount.quantize(step, ROUND_HALF_EVEN)
        usd = None
        if unit_ccy == "BTC" and btc_price is not None:
            usd = f"{(amount * btc_price).quantize(CENT, ROUND_HALF_EVEN):f}"
    return {"contracts": decimal_str(contracts), "unit_ccy": unit_ccy, "notional": f"{notional:f}",
            "settlement": f"{settled:f}", "settlement_usd": f"{settled:f}" if unit_ccy == "USD" else usd}
