"""Transaction-cost analysis of an execution against its references (pure).

``tca(side, price, at_request, at_award)`` measures an execution price against the package
reference the engine recorded when the RFQ was submitted (``rfq.submitted``) and, when
one was recorded, against the reference at the award. With a live provider
(``CcxtReferenceProvider``) the reference value is the package at the venue's mids, so
these are the slippage vs mid at request and at award.

Conventions, as everywhere else in the engine:
- ``side`` is the awarded side: ``bid`` when the requester sold the package, ``ask`` when
  it bought; prices are per unit of package quantity, net over the legs;
- slippage is in bps of the reference's ``underlying_price`` (a collar's net premium sits
  near zero, so bps of the package value would explode), rounded to 0.01 bps;
- positive means better for the requester than the reference: sold above it, bought below.

``market_move_bps`` is how the reference itself moved between request and award, in the
requester's terms (positive: the market moved in its favour), so the two figures can be
told apart: the part of the slippage the waiting cost, and the part the dealer's price did.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.rfq import QuoteSide
from rfq_engine.domain.values import decimal_str, parse_decimal
from rfq_engine.pricing.reference import PackageReference

__all__ = ["Reference", "slippage_bps", "tca"]

Reference = PackageReference | Mapping[str, Any]
"""A reference as the engine holds it, or as the audit log records it (``to_dict``)."""

BPS = Decimal(10_000)
_CENT_BPS = Decimal("0.01")
_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)
"""Fixed context: some libraries (ccxt) change the thread's default rounding as a side effect."""


def _value_and_base(reference: Reference) -> tuple[Decimal, Decimal] | None:
    if isinstance(reference, PackageReference):
        return reference.value, reference.underlying_price
    value, base = reference.get("value"), reference.get("underlying_price")
    if value is None or base is None:
        return None
    return parse_decimal(value, "reference.value"), parse_decimal(base, "reference.underlying_price")


def slippage_bps(side: QuoteSide | str, price: Decimal, reference: Reference | None) -> Decimal | None:
    """``price`` against ``reference`` in bps of its underlying price; positive is better for
    the requester."""
    if reference is None:
        return None
    parts = _value_and_base(reference)
    if parts is None or parts[1] <= 0:
        return None
    value, base = parts
    with localcontext(_CTX):
        edge = (price - value) if QuoteSide(side) is QuoteSide.BID else (value - price)
        return (edge / base * BPS).quantize(_CENT_BPS)


def tca(
    side: QuoteSide | str,
    price: Decimal,
    at_request: Reference | None,
    at_award: Reference | None = None,
) -> dict[str, str | None]:
    """Slippage of ``price`` vs the reference at request and at award, and the market's move.

    Every figure is a decimal string of bps, or None when its reference is missing.
    """
    vs_request = slippage_bps(side, price, at_request)
    vs_award = slippage_bps(side, price, at_award)
    move: Decimal | None = None
    if vs_request is not None and vs_award is not None and at_request is not None and at_award is not None:
        request_parts, award_parts = _value_and_base(at_request), _value_and_base(at_award)
        assert request_parts is not None and award_parts is not None
        # the award reference measured against the request one, as if it were a fill
        move = slippage_bps(side, award_parts[0], at_request)
    return {
        "vs_request_bps": None if vs_request is None else decimal_str(vs_request),
        "vs_award_bps": None if vs_award is None else decimal_str(vs_award),
        "market_move_bps": None if move is None else decimal_str(move),
    }
