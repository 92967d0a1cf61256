"""Domain instruments to venue markets, by the structure ``load_markets()`` returns.

The matching itself is pure and lives in ``rfq_engine.domain.venue`` so the engine's
ccxt reference prices use the very same rules; this module adds what the dealer needs
around it: reading an exchange's loaded markets, resolving an RFQ's legs with a decline
reason for any leg the venue does not list (or whose market the venue dialect refused at
start-up, ``units.py``), and the quantity checks (unit and lot size).

Sizes go through the market's ``amount_value`` (the underlying one venue amount unit is
worth), never through ccxt's ``contractSize`` alone: on Deribit a linear future's amount is
in BTC although its ``contractSize`` is 0.001. An inverse market's size depends on the
price, so it is sized by the book walk (``walk_inverse``), not here.
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
    """Venue amount: ``quantity / amount_value``, rounded down to the lot step (0 for an
    inverse market: its contracts depend on the price)."""


def resolve_legs(
    rfq: RfqNew,
    markets: Sequence[VenueMarket],
    *,
    venue: str,
    currency_aliases: Mapping[str, Sequence[str]] | None = None,
    require_whole_lots: bool = True,
    allow_inverse: bool = False,
    refused: Mapping[str, str] | None = None,
) -> list[LegMarket] | NoMarket:
    """Each leg's market, or the decline reason of the first leg that cannot trade here.

    The RFQ's quantity must be in the legs' underlying (``"BTC"`` for BTC instruments): a
    venue's contracts are converted with their contract size, never assumed to be 1.
    With ``require_whole_lots`` a size that is not a whole number of the venue's lots is
    declined (otherwise the caller quotes the rounded-down size as a partial).
    ``allow_inverse``: inverse futures and perpetuals match (the caller sizes them);
    ``refused``: markets the venue dialect refused at start-up, with why.
    """
    out: list[LegMarket] = []
    for index, leg in enumerate(rfq.legs):
        instrument = leg.instrument
        usable = [m for m in markets if m.symbol not in refused] if refused else markets
        found = match_market(instrument, usable, currency_aliases=currency_aliases,
                             allow_inverse=allow_inverse)
        if isinstance(found, NoMarket):
            shadow = match_market(instrument, markets, currency_aliases=currency_aliases,
                                  allow_inverse=allow_inverse) if refused else found
            if refused and not isinstance(shadow, NoMarket) and shadow.symbol in refused:
                return NoMarket(f"{venue}: {shadow.symbol} was refused when the dealer started, its units "
                                f"do not match the venue's documentation: {refused[shadow.symbol]}")
            return NoMarket(f"{venue}: {found.reason}")
        if rfq.quantity_unit.strip().upper() != instrument.underlying.upper():
            return NoMarket(
                f"{venue}: quantity is in {rfq.quantity_unit}, but {describe_instrument(instrument)} "
                f"trades in {instrument.underlying}"
            )
        quantity = rfq.quantity * leg.ratio
        if found.inverse:
            out.append(LegMarket(leg, found, quantity, Decimal(0)))
            continue
        contracts = round_to_step(quantity / found.amount_value, found.amount_step)
        if contracts <= 0:
            return NoMarket(f"{venue}: leg {index + 1} size {decimal_str(quantity)} is below one lot "
                            f"of {found.symbol}")
        if require_whole_lots and contracts * found.amount_value != quantity:
            return NoMarket(
                f"{venue}: leg {index + 1} size {decimal_str(quantity)} {instrument.underlying} is not a "
                f"whole number of {found.symbol} lots ({decimal_str(found.amount_value)} "
                f"{instrument.underlying} per amount unit, lot {found.amount_step})"
            )
        if found.min_amount is not None and contracts < found.min_amount:
            return NoMarket(f"{venue}: leg {index + 1} is below the minimum size of {found.symbol}")
        out.append(LegMarket(leg, found, quantity, contracts))
    return out
