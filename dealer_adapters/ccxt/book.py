"""Order books from the venue, walked for a size: the pure part lives in the domain.

``rfq_engine.domain.venue`` holds the walk (VWAP, taker fee on the right side, contract
size, lot rounding) so the engine's reference prices use the same code. Here: reading a
ccxt order book (floats, converted once with ``Decimal(str(x))``: see ``venue_decimal``)
and choosing the fee the walk applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rfq_engine.domain.venue import BookFill, BookLevel, OrderBook, VenueMarket, walk_book

__all__ = ["BookFill", "BookLevel", "OrderBook", "book_from_ccxt", "taker_fee", "walk_book"]


def book_from_ccxt(book: Mapping[str, Any]) -> OrderBook:
    """A ccxt order-book structure as Decimal levels (best first)."""
    return OrderBook.from_ccxt(book)


def taker_fee(market: VenueMarket, override: Decimal | None) -> Decimal:
    """The configured fee if any, else the market's ``taker`` fee, else zero.

    A venue's listed fee is its base tier; an account on a better tier should configure
    ``taker_fee`` so quotes are not needlessly wide.
    """
    if override is not None:
        return override
    return market.taker_fee if market.taker_fee is not None else Decimal(0)
