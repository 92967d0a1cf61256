"""RiskBook: reservations and fills on top of the store's base, across a UTC day change."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from rfq_engine.engine.risk import RiskBook
from rfq_engine.store.memory import InMemoryAuditStore

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)


async def test_dealer_exposure_across_midnight_counts_each_fill_once() -> None:
    store = InMemoryAuditStore()
    await store.open()
    try:
        book = RiskBook(store)
        await book.load("m", ("d1",), datetime(2026, 11, 20, 23, 0, tzinfo=UTC))
        book.reserve_award("e1", "d1", Decimal(100))
        assert book.exposure("d1", D1) == 100           # in flight
        book.settle_award("e1", Decimal(80), today=D1)
        assert book.exposure("d1", D1) == 80            # filled, not yet in the store's base
        # After midnight the new day's base comes from the store, which holds the fill:
        book._dealer_base[("d1", D2)] = Decimal(80)     # what filled_notional(open_on=D2) returns
        assert book.exposure("d1", D2) == 80            # not 160
        book.reserve_award("e2", "d1", Decimal(50))
        book.settle_award("e2", Decimal(0), today=D2)   # rejected: the reservation goes away
        assert book.exposure("d1", D2) == 80
    finally:
        await store.close()
