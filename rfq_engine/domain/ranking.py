"""Ranking quotes: the best price on the requester's side first; ties go to the earlier quote.

Pure: it ranks what it is given. Which quotes are *valid* is decided before (engine
validation and mandate rules); ranking never sees an invalid one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from rfq_engine.domain.messages import Quote
from rfq_engine.domain.rfq import QuoteSide

__all__ = ["is_better", "rank_quotes"]


def _key(quote: Quote, side: QuoteSide) -> tuple[Decimal, datetime, str]:
    price = quote.price(side)
    if price is None:
        raise ValueError(f"quote {quote.quote_id} has no {side.value}")
    # Highest bid first, lowest ask first; then earliest arrival, then a stable tiebreak.
    signed = -price if side is QuoteSide.BID else price
    return signed, quote.received_at, quote.dealer_id


def rank_quotes(quotes: Iterable[Quote], side: QuoteSide) -> list[Quote]:
    """Best first. Every quote must carry a price on ``side``."""
    return sorted(quotes, key=lambda q: _key(q, side))


def is_better(a: Quote, b: Quote, side: QuoteSide) -> bool:
    return _key(a, side) < _key(b, side)
