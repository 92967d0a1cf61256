"""A venue position's margin figures: the venue's where it states them, else the estimate (pure).

The estimate is ``risk.inverse_margin`` / ``risk.linear_margin`` from ``[risk.venues.<dealer>]``
(the collateral and the margin rates in the config). Where the venue's account was read
through ccxt (``rfq_engine.domain.margin.VenueAccountMargin``), its figures replace the
estimate's one by one, and ``sources`` says which each came from (``venue`` or ``config``):

- the account's ``equity``, ``initial_margin`` and ``maintenance_margin`` (the venue's cross
  margin: what it compares the equity with), when the account is in the position's margin
  currency (the coin for an inverse contract, a USD-like currency for a linear one);
- the ``liquidation_price`` of the venue's position in the same instrument (matched by
  structure, ``domain.venue.match_market``), its distance from the venue's mark.

Then usage = maintenance / equity and call = max(0, initial - equity) (rounded up to the
satoshi in coin, to the cent in USD; in USD at the mark) are recomputed from the figures used.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.margin import VenueAccountMargin, VenuePositionMargin
from rfq_engine.domain.values import decimal_str
from rfq_engine.domain.venue import NoMarket, match_market
from rfq_engine.hedging.margin import SATOSHI
from rfq_engine.hedging.positions import Position

__all__ = ["FIGURES", "USD_LIKE", "account_row", "with_venue"]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)
CENT = Decimal("0.01")
USD_LIKE = frozenset({"USD", "USDT", "USDC"})
FIGURES = ("equity", "initial_margin", "maintenance_margin", "liquidation_price")


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(_OUT.plus(value))


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def venue_position(position: Position, positions: Sequence[VenuePositionMargin]
                   ) -> VenuePositionMargin | None:
    """The venue's position in the instrument of ``position`` (same inverse or linear kind)."""
    candidates = [p for p in positions if p.market is not None and p.market.inverse == position.inverse]
    found = match_market(position.instrument, [p.market for p in candidates if p.market is not None],
                         allow_inverse=True)
    if isinstance(found, NoMarket):
        return None
    return next((p for p in candidates if p.symbol == found.symbol), None)


def with_venue(figures: dict[str, Any], position: Position, account: VenueAccountMargin | None
               ) -> dict[str, Any]:
    """``figures`` (an estimate) with the venue's figures where it has them, and their ``sources``."""
    sources = dict.fromkeys(FIGURES, "config")
    if account is None or account.error is not None:
        return {**figures, "sources": sources, "venue_error": None if account is None else account.error}
    coin = position.instrument.underlying.upper()
    same = account.currency == coin if position.inverse else account.currency in USD_LIKE
    values = {name: _dec(figures[name]) for name in FIGURES}
    if same:
        for name, venue in (("equity", account.equity), ("initial_margin", account.initial_margin),
                            ("maintenance_margin", account.maintenance_margin)):
            if venue is not None:
                values[name], sources[name] = venue, "venue"
    held = venue_position(position, account.positions)
    assert position.mark is not None
    mark = position.mark
    if held is not None and held.liquidation_price is not None:
        values["liquidation_price"], sources["liquidation_price"] = held.liquidation_price, "venue"
        mark = held.mark_price or mark
    if set(sources.values()) == {"config"}:
        return {**figures, "sources": sources, "venue_error": None,
                "venue_symbol": None if held is None else held.symbol}
    with localcontext(_WORK):
        equity, initial = values["equity"], values["initial_margin"]
        maintenance = values["maintenance_margin"]
        assert equity is not None and initial is not None and maintenance is not None
        step = SATOSHI if position.inverse else CENT
        gap = (initial - equity).quantize(Decimal("1e-18"), rounding=ROUND_HALF_EVEN)
        call = max(Decimal(0), gap).quantize(step, rounding=ROUND_CEILING)
        call_usd = (call * mark).quantize(CENT, rounding=ROUND_CEILING) if position.inverse else call
        usage = maintenance / equity if equity > 0 else None
        liquidation = values["liquidation_price"]
        distance = abs(liquidation - mark) / mark if liquidation is not None and liquidation > 0 else None
    return {**figures, "equity": _d(equity), "initial_margin": _d(initial),
            "maintenance_margin": _d(maintenance), "usage": _d(usage), "call": _d(call),
            "call_usd": _d(call_usd), "liquidation_price": _d(liquidation), "distance": _d(distance),
            "venue_mark": _d(mark if held is not None and held.mark_price else None),
            "venue_symbol": None if held is None else held.symbol,
            "_usage": usage, "_distance": distance, "_call": call, "sources": sources, "venue_error": None}


def account_row(account: VenueAccountMargin) -> dict[str, Any]:
    """The account as read (JSON-ready), for the report's ``venue_accounts``."""
    return {"venue": account.dealer, "exchange": account.exchange, "currency": account.currency,
            "read_at": account.read_at.isoformat().replace("+00:00", "Z"), "error": account.error,
            "equity": _d(account.equity), "initial_margin": _d(account.initial_margin),
            "maintenance_margin": _d(account.maintenance_margin), "margin_ratio": _d(account.margin_ratio),
            "positions": [{"symbol": p.symbol, "side": p.side, "size": _d(p.size),
                           "entry_price": _d(p.entry_price), "mark_price": _d(p.mark_price),
                           "liquidation_price": _d(p.liquidation_price),
                           "initial_margin": _d(p.initial_margin),
                           "maintenance_margin": _d(p.maintenance_margin),
                           "margin_ratio": _d(p.margin_ratio)} for p in account.positions]}
