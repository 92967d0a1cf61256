"""Positions netted fill by fill and kept (pure): what the risk monitor holds between passes.

``positions.build_positions`` nets every fill each time it is called. The risk watch
(``riskwatch``) evaluates every ``[risk] interval_s`` over a book that only grows, and at
tens of thousands of fills netting all of them took seconds of the process's one
interpreter each pass (the 10-minute soak of docs/performance.md). A ``PositionBook`` keeps
the netted positions instead and nets each new fill once (``add``): a pass costs the new
fills plus marking the positions, and the book's memory is one ``Position`` per instrument
and dealer, not one record per fill.

What it keeps:

- the netted, unmarked positions of each dealer and of all dealers together;
  ``positions(dealer, snapshot, today, settlements)`` marks copies of them (a mark never
  changes the book), ``None`` for every dealer together;
- as trades, only what a figure needs trade by trade: the fills with a perpetual leg
  (funding accrues per interval held, ``funding.perpetual_funding``) and the fills of hedge
  programs (coverage, ``report.coverage``; a program trades a few times a month).

A fill is netted only where the result is the one ``build_positions`` gives over all the
fills, and ``add`` returns False (changing nothing) otherwise:

- **out of order**: fills net in ``fill_order`` (time, then id); a fill that sorts before
  the last one netted would change the average cost of what came after it;
- **needs a market**: a multi-leg fill without the reference leg prices recorded at
  submission is split at the marks of the day (``positions.leg_trades``), so its legs differ
  from one market to the next.

The caller then builds the book again from every trade (``of``), as the risk watch does
(``ledger.TradeLedger``). ``of`` nets in fill order, a fill that needs a market at the one
given, so a book with such a fill is exact for that market only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from rfq_engine.domain.instruments import Perpetual
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.hedging.positions import (
    Position,
    PositionKey,
    TradeRecord,
    apply_legs,
    fill_order,
    leg_trades,
    mark_positions,
)

__all__ = ["PositionBook", "needs_market"]

PROGRAM_PREFIX = "program:"


def needs_market(trade: TradeRecord) -> bool:
    """Whether splitting the fill into legs takes the day's marks (``leg_trades``)."""
    legs = trade.spec.legs
    return len(legs) > 1 and (trade.reference_legs is None or len(trade.reference_legs) != len(legs))


@dataclass
class PositionBook:
    """See the module docstring. ``fills`` counts the fills netted."""

    fills: int = 0
    perpetual_trades: list[TradeRecord] = field(default_factory=list)
    program_trades: list[TradeRecord] = field(default_factory=list)
    _by_dealer: dict[str, dict[PositionKey, Position]] = field(default_factory=dict, repr=False)
    _all: dict[PositionKey, Position] = field(default_factory=dict, repr=False)
    _last: tuple[datetime, str] | None = None

    @classmethod
    def of(cls, trades: Iterable[TradeRecord], snapshot: MarketSnapshot | None = None,
           today: date | None = None) -> PositionBook:
        """Every trade netted in fill order; a fill that needs a market split at ``snapshot``
        (``leg_trades`` raises without one)."""
        book = cls()
        for trade in sorted(trades, key=fill_order):
            book._net(trade, snapshot, today)
        return book

    @property
    def dealers(self) -> set[str]:
        """The dealers with a fill in the book."""
        return set(self._by_dealer)

    def add(self, trade: TradeRecord) -> bool:
        """Net one more fill; False (nothing changed) when it cannot be (module docstring)."""
        if needs_market(trade) or (self._last is not None and fill_order(trade) < self._last):
            return False
        self._net(trade, None, None)
        return True

    def _net(self, trade: TradeRecord, snapshot: MarketSnapshot | None, today: date | None) -> None:
        legs = leg_trades(trade, snapshot, today)  # raises before anything changes
        apply_legs(self._by_dealer.setdefault(trade.dealer_id, {}), legs)
        apply_legs(self._all, legs)
        if any(isinstance(leg.instrument, Perpetual) for leg in legs):
            self.perpetual_trades.append(trade)
        if trade.spec.requester.startswith(PROGRAM_PREFIX):
            self.program_trades.append(trade)
        self.fills += 1
        self._last = max(self._last, fill_order(trade)) if self._last is not None else fill_order(trade)

    def positions(self, dealer: str | None, snapshot: MarketSnapshot, today: date,
                  settlements: Mapping[str, Decimal] | None = None) -> list[Position]:
        """The dealer's positions (every dealer's together: ``None``), marked, in key order."""
        held = self._all if dealer is None else self._by_dealer.get(dealer, {})
        return mark_positions([replace(p) for p in held.values()], snapshot, today, settlements)

    def positions_with(self, dealer: str, trades: Sequence[TradeRecord], snapshot: MarketSnapshot,
                       today: date) -> list[Position]:
        """The dealer's positions were ``trades`` netted after every fill in the book (planned
        trades: ``risk.collateral_shortfalls``), marked; the book is unchanged."""
        held = {key: replace(p) for key, p in self._by_dealer.get(dealer, {}).items()}
        for trade in trades:
            apply_legs(held, leg_trades(trade, snapshot, today))
        return mark_positions(held.values(), snapshot, today)
