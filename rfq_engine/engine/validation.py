"""Engine-side checks of a quote that do not depend on the mandate (pure functions).

The mandate's rules (tolerance, credit) are applied after these, in ``rfq_engine.mandate``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rfq_engine.domain import Quote, QuoteSide, RfqSpec, decimal_str

__all__ = ["check_quote"]


def check_quote(spec: RfqSpec, quote: Quote, *, now: datetime, min_validity: timedelta) -> str | None:
    """Why ``quote`` cannot be awarded now, or None when it can.

    ``now`` is the UTC time of the check; a quote must stay valid ``min_validity`` past it.
    """
    side = spec.award_side
    price = quote.price(side)
    if price is None:
        return f"no {side.value} quoted; the RFQ needs the {side.value} side"
    if not spec.package.is_multi_leg and price <= 0:
        return f"non-positive {side.value} {decimal_str(price)} for a single-leg package"
    if quote.quantity <= 0:
        return "non-positive quantity"
    if quote.quantity > spec.quantity:
        return (
            f"over-size: quoted {decimal_str(quote.quantity)} for a request of "
            f"{decimal_str(spec.quantity)}"
        )
    if quote.quantity < spec.quantity and not spec.allow_partial:
        return (
            f"partial size {decimal_str(quote.quantity)} of {decimal_str(spec.quantity)} "
            "but the RFQ does not allow partial fills"
        )
    if quote.valid_until <= now + min_validity:
        return f"expired: valid_until {quote.valid_until.isoformat()} is not after {now.isoformat()}"
    if spec.limit_price is not None:
        worse = price < spec.limit_price if side is QuoteSide.BID else price > spec.limit_price
        if worse:
            limit = decimal_str(spec.limit_price)
            return f"{side.value} {decimal_str(price)} is worse than the limit {limit}"
    return None
