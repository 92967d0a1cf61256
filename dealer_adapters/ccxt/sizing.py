"""A size in the requester's terms (the underlying, BTC) to the venue's amount and back.

Linear markets: one venue amount unit is ``amount_value`` of the underlying (0.01 BTC per
OKX BTC-USDT-SWAP contract; 1 BTC per unit on Deribit's BTC_USDC-PERPETUAL, whose amounts
are in BTC), so ``amount = quantity / amount_value``, rounded down to the venue's step.

Inverse markets (Deribit BTC-PERPETUAL and dated BTC futures: amounts in USD, contracts of
10 USD; OKX BTC-USD-SWAP: contracts of 100 USD): a quantity of BTC is worth
``quantity * conversion`` USD at the quote's *conversion price* (the walked book's
size-weighted price, before fees: ``BookFill.vwap``). The rule, stated once here:
- **to the venue:** ``quantity * conversion / amount_value`` venue units, rounded **down**
  to whole contracts (never more than the size asked). The residual, the BTC the rounding
  leaves out, is reported in the quote's detail and in a decline;
- **back from the venue:** what the venue executed, ``filled * amount_value / conversion``
  of BTC, at the same conversion price, recorded with the intent. That is the confirm's
  quantity (rounded down to 1e-12), so the store's fill is what the venue executed,
  converted back, and never more than the award.

Quantities travel with 12 decimal places; a size within that precision of a whole
contract is that contract (``slack``), so a quote's own quantity converts back to the
contracts it was quoted for.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from rfq_engine.domain import decimal_str
from rfq_engine.domain.venue import VenueMarket, round_to_step

__all__ = ["QUANTUM", "executed_underlying", "floor_quantity", "intent_units", "order_amount"]

QUANTUM = Decimal(1).scaleb(-12)
"""Package quantities are rounded down to this (the quote's and the confirm's)."""


def floor_quantity(value: Decimal) -> Decimal:
    """``value`` rounded down to ``QUANTUM``, trailing zeros dropped."""
    with localcontext() as ctx:
        ctx.prec = 40
        ctx.rounding = ROUND_FLOOR
        return value.quantize(QUANTUM).normalize()


def _step(market: VenueMarket) -> Decimal:
    return max(market.contract_amount, market.amount_step or Decimal(0))


def order_amount(market: VenueMarket, underlying: Decimal, conversion: Decimal | None = None,
                 slack: Decimal = QUANTUM) -> Decimal:
    """The venue amount for ``underlying`` (see the module docstring); ``conversion`` is
    required for an inverse market; ``slack`` is the underlying's own rounding."""
    with localcontext() as ctx:
        ctx.prec = 40
        if not market.inverse:
            return round_to_step(underlying / market.amount_value, market.amount_step)
        if conversion is None or conversion <= 0:
            raise ValueError(f"{market.symbol}: an inverse contract needs a conversion price")
        step = _step(market)
        exact = underlying * conversion / market.amount_value
        nearest = (exact / step).to_integral_value(rounding=ROUND_HALF_EVEN) * step
        if abs(exact - nearest) <= slack * conversion / market.amount_value:
            return nearest
        return round_to_step(exact, step)


def intent_units(market: VenueMarket, conversion: Decimal | None) -> dict[str, Any]:
    """What the outcome needs to convert the venue's amounts back, journaled with the intent."""
    units: dict[str, Any] = {
        "market_type": market.type,
        "amount_unit": market.amount_unit.value,
        "amount_value": decimal_str(market.amount_value),
        "contract_size": decimal_str(market.contract_size),
        "contract_ccy": market.contract_ccy,
        "settle": market.settle or market.quote,
        "inverse": market.inverse,
    }
    if market.inverse:
        assert conversion is not None
        units["conversion_price"] = decimal_str(conversion)
    if market.premium_ccy:
        units["premium_currency"] = market.premium_ccy
    return units


def executed_underlying(intent: Mapping[str, Any], filled: Decimal) -> Decimal:
    """The underlying of ``filled`` venue units, exact (an intent journaled before units were
    recorded has ``contract_size`` only: ccxt's contracts, as it was sized then)."""
    value = Decimal(str(intent.get("amount_value", intent["contract_size"])))
    with localcontext() as ctx:
        ctx.prec = 40
        if intent.get("inverse"):
            return filled * value / Decimal(str(intent["conversion_price"]))
        return filled * value
