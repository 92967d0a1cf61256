"""The store's trades netted as they are recorded: the risk watch's ``PositionBook``.

``records.load_trades`` reads every fill and every RFQ submission each time. The risk watch
(``riskwatch``) needs the whole book every ``[risk] interval_s`` and before each program's
RFQs; at tens of thousands of fills that read, and netting it all again, held the process
for seconds a pass (docs/performance.md, the 10-minute soak). A ``TradeLedger`` reads the
log from where it stopped instead: ``refresh`` takes the ``fill.recorded`` and
``rfq.submitted`` events after the last one read, in pages of ``PAGE`` events, turns each new
fill into a ``TradeRecord`` exactly as ``load_trades`` does (the fill's row as the fills table
projects it, the spec and reference legs of its RFQ's submission) and nets it into the book
(``PositionBook.add``). A pass reads and nets the new fills only; the parsing and netting run
in a thread, the store's reads on the loop.

- A repeated ``fill.recorded`` (same fill id) is ignored, as the fills table ignores it; the
  ledger keeps the fill ids it netted for that (a short string per fill).
- A fill whose RFQ was submitted before the page holding it is matched by a look-up of that
  RFQ's submission (``EventFilter(rfq_id=...)``); a fill with no submission is skipped, as
  ``load_trades`` skips it.
- When the book cannot net a fill (out of order, or a multi-leg fill without reference leg
  prices: ``book`` module docstring) the ledger reads every trade again: fill order restored,
  the book continues from there; with a fill that needs a market, the ledger keeps the trades
  (``trades``) and ``book_for`` nets them at each pass's market, as ``build_positions`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date

import structlog

from rfq_engine.domain.events import EventType, RfqSubmitted
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.hedging.book import PositionBook, needs_market
from rfq_engine.hedging.positions import TradeRecord
from rfq_engine.hedging.records import trade_record
from rfq_engine.readmodels.events import typed
from rfq_engine.store.base import AuditStore, EventFilter, FillRow
from rfq_engine.store.events import AuditEvent
from rfq_engine.store.projection import FillRecorded, changes_for

__all__ = ["PAGE", "TradeLedger"]

log = structlog.get_logger("rfq_engine.risk")

PAGE = 2000
"""Events read and netted at a time: a page's events are all a pass holds at once."""

_TYPES = [EventType.FILL_RECORDED.value, EventType.RFQ_SUBMITTED.value]


def _fill_row(event: AuditEvent) -> FillRow | None:
    for change in changes_for(event):
        if isinstance(change, FillRecorded):
            return change.row
    return None


class TradeLedger:
    """See the module docstring. ``after_seq``: the last event read."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self.after_seq = 0
        self.book = PositionBook()
        self.trades: list[TradeRecord] | None = None
        """Every trade, kept only once a fill needed a market (module docstring)."""
        self._netted: set[str] = set()
        self.rebuilds = 0

    @property
    def fills(self) -> int:
        """The fills the ledger holds, netted or kept."""
        return self.book.fills if self.trades is None else len(self.trades)

    def book_for(self, snapshot: MarketSnapshot, today: date) -> PositionBook:
        """The book at this market: the netted one, or (trades kept) every trade netted now."""
        if self.trades is None:
            return self.book
        return PositionBook.of(self.trades, snapshot, today)

    async def refresh(self) -> int:
        """Net the fills recorded since the last refresh; the number netted."""
        netted = 0
        carried: dict[str, AuditEvent] = {}
        while True:
            page = await self._store.events(EventFilter(types=_TYPES, after_seq=self.after_seq, limit=PAGE))
            if not page:
                return netted
            here = {e.rfq_id: e for e in page if e.type == EventType.RFQ_SUBMITTED.value and e.rfq_id}
            submitted = {**carried, **here}
            fills = [e for e in page if e.type == EventType.FILL_RECORDED.value]
            for rfq_id in sorted({e.rfq_id for e in fills if e.rfq_id and e.rfq_id not in submitted}):
                found = await self._store.events(EventFilter(
                    rfq_id=rfq_id, types=[EventType.RFQ_SUBMITTED.value], limit=1))
                if found:
                    submitted[rfq_id] = found[0]
            count = await asyncio.to_thread(self._net, fills, submitted)
            if count is None:  # the book could not net a fill: read every trade again
                await self._rebuild()
                return self.fills
            netted += count
            self.after_seq = page[-1].seq
            if len(page) < PAGE:
                return netted
            # an RFQ submitted on this page may fill on the next; older ones are looked up
            matched = {e.rfq_id for e in fills}
            carried = {r: e for r, e in here.items() if r not in matched}

    def _records(self, fills: Sequence[AuditEvent], submitted: Mapping[str, AuditEvent]
                 ) -> list[TradeRecord]:
        out = []
        specs: dict[str, tuple[RfqSubmitted, RfqSpec]] = {}
        for event in fills:
            row = _fill_row(event)
            if row is None or row.fill_id in self._netted:
                continue
            sub = submitted.get(row.rfq_id)
            if sub is None:
                continue
            if row.rfq_id not in specs:
                decoded = typed(sub.type, sub.payload, seq=sub.seq, rfq_id=sub.rfq_id)
                if not isinstance(decoded, RfqSubmitted):
                    continue
                specs[row.rfq_id] = (decoded, RfqSpec.from_dict(decoded.spec))
            decoded, spec = specs[row.rfq_id]
            self._netted.add(row.fill_id)
            out.append(trade_record(row, decoded, spec))
        return out

    def _net(self, fills: Sequence[AuditEvent], submitted: Mapping[str, AuditEvent]) -> int | None:
        """Net the page's new fills (in a thread); None when one cannot be (the ledger is then
        read again from the start: ``_rebuild``)."""
        trades = self._records(fills, submitted)
        if self.trades is not None:
            self.trades.extend(trades)
            return len(trades)
        for i, trade in enumerate(trades):
            if not self.book.add(trade):
                log.info("risk.ledger_rebuild", fill_id=trade.fill_id, netted=i,
                         reason="needs a market" if needs_market(trade) else "out of fill order")
                return None
        return len(trades)

    async def _rebuild(self) -> None:
        """Every trade read again (the ledger from the start, keeping them), then netted in
        fill order; kept as trades when one needs a market."""
        self.rebuilds += 1
        self.after_seq, self._netted, self.book, self.trades = 0, set(), PositionBook(), []
        await self.refresh()
        trades = self.trades
        if not any(needs_market(t) for t in trades):
            self.book, self.trades = await asyncio.to_thread(PositionBook.of, trades), None
