"""A venue's margin account as the venue states it (read through ccxt; ``dealer_adapters.ccxt.margin``).

Plain values, no rules: the risk monitor (``rfq_engine.hedging.risk``) compares them with its
thresholds and says, figure by figure, whether it used the venue's number or its own estimate
from ``[risk.venues.<dealer>]``. Every amount is in the account's margin ``currency`` (BTC for
Deribit's inverse contracts, the ``ccy`` of an OKX balance), a ``Decimal`` parsed from the
venue's own string (ccxt's unified fields are floats: they are used only where the venue's
string is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rfq_engine.domain.venue import VenueMarket

__all__ = ["VenueAccountMargin", "VenuePositionMargin"]


@dataclass(frozen=True, slots=True)
class VenuePositionMargin:
    """One open position at the venue (``fetch_positions``)."""

    symbol: str
    """ccxt's unified symbol (``BTC/USD:BTC-261225``)."""
    market: VenueMarket | None
    """The market, to match the position with the store's instrument (``domain.venue.match_market``)."""
    side: str
    """``long`` or ``short``."""
    size: Decimal | None
    """The venue's size, signed (Deribit: USD for inverse contracts; OKX: contracts)."""
    entry_price: Decimal | None
    mark_price: Decimal | None
    liquidation_price: Decimal | None
    initial_margin: Decimal | None
    maintenance_margin: Decimal | None
    margin_ratio: Decimal | None = None
    """The venue's own ratio where it gives one (OKX ``mgnRatio``: equity over maintenance; 1 liquidates)."""


@dataclass(frozen=True, slots=True)
class VenueAccountMargin:
    """The account's margin in one currency (``fetch_balance``), with its open positions."""

    dealer: str
    exchange: str
    currency: str
    read_at: datetime
    equity: Decimal | None
    """Margin balance: the collateral plus unrealized P&L (Deribit ``margin_balance``, OKX ``eq``)."""
    initial_margin: Decimal | None
    maintenance_margin: Decimal | None
    margin_ratio: Decimal | None = None
    """The venue's own ratio where it gives one (OKX ``mgnRatio``)."""
    positions: tuple[VenuePositionMargin, ...] = ()
    error: str | None = None
    """Why nothing could be read (the figures are then all ``None``; the monitor uses its estimate)."""

    @classmethod
    def unread(cls, dealer: str, exchange: str, currency: str, read_at: datetime, error: str
               ) -> VenueAccountMargin:
        return cls(dealer, exchange, currency, read_at, None, None, None, error=error)
