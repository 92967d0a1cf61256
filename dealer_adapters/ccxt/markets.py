"""Domain instruments to venue markets, by the structure ``load_markets()`` returns.

The matching itself is pure and lives in ``rfq_engine.domain.venue`` so the engine's
ccxt reference prices use the very same rules; this module adds what the dealer needs
around it: reading an exchange's loaded markets, resolving an RFQ's legs with a decline
reason for any leg the venue does not list, and the quantity checks (unit and lot size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rfq_engine.domain import Leg, RfqNew, decimal_str
from rfq_engine.domain.venue import (
    NoMarket,
    VenueMarket,
    describe_instrument,
    match_market,
    round_to_step,
)

__all__ = ["LegMarket", "NoMarket", "VenueMarket", "resolve_legs", "venue_markets"]


def venue_markets(markets: Mapping[str, Mapping[str, Any]] | None, precision_mode: int) -> list[VenueMarket]:
    """Every market of ``exchange.markets`` (as ``load_markets()`` left it) that can be traded."""
    out = []
    for market in (markets or {}).values():
        parsed = VenueMarket.from_ccxt(market, precision_mode)
        if parsed is not None:
            out.append(parsed)
    return out


@dataclass(frozen=True, slots=True)
class LegMarket:
    """An RFQ leg, the market it trades on, and its size at the venue for the RFQ's quantity."""

    leg: Leg
    market: VenueMarket
    quantity: Decimal
    """Underlying units of this leg for the RFQ's quantity (``quantity * ratio``)."""
    contracts: Decimal
    """Venue amount: ``quantity / contract_size``, rounded down to the lot step."""


def resolve_legs(
    rfq: RfqNew,
    markets: Sequence[VenueMarket],
    *,
    venue: str,
    currency_aliases: Mapping[str, Sequence[str]] | None = None,
    require_whole_lots: bool = True,
) -> list[LegMarket] | NoMarket:
    """Each leg's market, or the decline reason of the first leg that cannot trade here.

    The RFQ's quantity must be in the legs' underlying (``"BTC"`` for BTC instruments): a
    venue's contracts are converted with their contract size, never assumed to be 1.
    With ``require_whole_lots`` a size that is not a whole number of the venue's lots is
    declined (otherwise the caller quotes the rounded-down size as a partial).
    """
    out: list[LegMarket] = []
    for index, leg in enumerate(rfq.legs):
        instrument = leg.instrument
        found = match_market(instrument, markets, currency_aliases=currency_aliases)
        if isinstance(found, NoMarket):
            return NoMarket(f"{venue}: {found.reason}")
        if rfq.quantity_unit.strip().upper() != instrument.underlying.upper():
            return NoMarket(
                f"{venue}: quantity is in {rfq.quantity_unit}, but {describe_instrument(instrument)} "
                f"trades in {instrument.underlying}"
            )
        quantity = rfq.quantity * leg.ratio
        contracts = round_to_step(quantity / found.contract_size, found.amount_step)
        if contracts <= 0:
            return NoMarket(f"{venue}: leg {index + 1} size {decimal_str(quantity)} is below one lot "
                            f"of {found.symbol}")
        if require_whole_lots and contracts * found.contract_size != quantity:
            return NoMarket(
                f"{venue}: leg {index + 1} size {decimal_str(quantity)} {instrument.underlying} is not a "
                f"whole number of {found.symbol} lots (contract size {decimal_str(found.contract_size)}, "
                f"lot {found.amount_step})"
            )
        if found.min_amount is not None and contracts < found.min_amount:
            return NoMarket(f"{venue}: leg {index + 1} is below the minimum size of {found.symbol}")
        out.append(LegMarket(leg, found, quantity, contracts))
    return out
