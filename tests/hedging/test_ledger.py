"""The risk watch's book kept between passes (``book.PositionBook``, ``ledger.TradeLedger``).

The claim: a ledger refreshed from the log gives the figures ``load_trades`` +
``build_positions`` / ``risk_report`` give over every fill, on the memory and the SQLite store,
whatever page the fills and their submissions fall on; each refresh nets only what is new; a
repeated fill counts once; a fill out of order, or one that needs the day's market, makes it
read everything again and stay exact.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rfq_engine.domain.events import FillRecorded, RfqSubmitted, encode
from rfq_engine.domain.instruments import Future, Instrument, Perpetual, instrument_to_dict
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.hedging import ledger as ledger_module
from rfq_engine.hedging import riskwatch
from rfq_engine.hedging.book import PositionBook
from rfq_engine.hedging.ledger import TradeLedger
from rfq_engine.hedging.margin import CollateralAgreement
from rfq_engine.hedging.positions import TradeRecord, build_positions
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.risk import RiskConfig, collateral_shortfalls, risk_report
from rfq_engine.store import AuditStore, InMemoryAuditStore, SqlAuditStore
from rfq_engine.store import writer as writer_module
from tests.faults.conftest import until

D = Decimal
TODAY = date(2026, 12, 10)
DEC = Future("BTC", "USD", date(2026, 12, 25))
JAN = Future("BTC", "USD", date(2027, 1, 29))
NOV = Future("BTC", "USD", date(2026, 11, 27))  # expired: marking settles it
PERP = Perpetual("BTC", "USD")
NOW = datetime(2026, 12, 10, 12, tzinfo=UTC)
_ids = itertools.count(1)


def market(btc: str = "40000") -> MarketSnapshot:
    return MarketSnapshot(spot={"BTC": D(btc)}, vol={"BTC": D("0.5")}, rate=D("0.05"),
                          basis={"BTC": D("0.06")}, hashprice=D(55), as_of=NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditStore]:
    made: AuditStore = (InMemoryAuditStore() if request.param == "memory"
                        else SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", checkpoint_path=None))
    async with made:
        yield made


async def submit(store: AuditStore, legs: Sequence[tuple[Instrument, str]], direction: str = "buy", *,
                 reference: Sequence[str] | None = None, requester: str = "alice") -> str:
    rfq_id = f"rfq-{next(_ids)}"
    spec = {"legs": [{"instrument": instrument_to_dict(i), "side": s} for i, s in legs],
            "direction": direction, "quantity": "1", "quantity_unit": "BTC", "dealers": ["desk-a"],
            "requester": requester, "mandate": "treasury"}
    ref = None if reference is None else {"legs": list(reference)}
    store.append(rfq_id, RfqSubmitted.TYPE, requester, encode(RfqSubmitted(spec=spec, reference=ref)))
    return rfq_id


async def fill(store: AuditStore, rfq_id: str, dealer: str, quantity: str, price: str, *,
               fill_id: str | None = None, trade_id: str = "") -> str:
    fid = fill_id or f"fill-{next(_ids)}"
    event = FillRecorded(fill_id=fid, execution_id=f"x-{fid}", dealer_id=dealer, mandate="treasury",
                         price=D(price), quantity=D(quantity), notional=D(quantity) * D(price),
                         dealer_trade_id=trade_id)
    await store.append(rfq_id, FillRecorded.TYPE, "engine", encode(event))
    return fid


async def book_of_every_kind(store: AuditStore) -> None:
    """Linear and inverse futures, a perpetual, a calendar with reference legs, a program's fill,
    an expired future, over five dealers; positions opened, added to, reduced and flipped."""
    for dealer, side, qty, price in [("desk-a", "buy", "3", "40100"), ("desk-a", "sell", "1", "40500"),
                                     ("desk-b", "sell", "2", "40300"), ("desk-a", "sell", "4", "39900")]:
        await fill(store, await submit(store, [(DEC, side)], side), dealer, qty, price)
    inverse = await submit(store, [(PERP, "sell")], "sell")
    await fill(store, inverse, "deribit", "0.5", "40000", trade_id="t1 settle=BTC notional=20000 USD")
    perp = await submit(store, [(PERP, "buy")])
    await fill(store, perp, "bybit", "2", "40050")
    roll = await submit(store, [(DEC, "buy"), (JAN, "sell")], "sell", reference=["40200", "40550"])
    await fill(store, roll, "desk-b", "2", "300")
    hedge = await submit(store, [(JAN, "sell")], "sell", requester="program:p")
    await fill(store, hedge, "desk-c", "5", "40600")
    await fill(store, await submit(store, [(NOV, "buy")]), "desk-c", "1", "39000")


def everything(trades: Sequence[TradeRecord], book: PositionBook, snapshot: MarketSnapshot) -> None:
    """The book's positions and report are those of every trade."""
    for dealer in [None, *sorted({t.dealer_id for t in trades})]:
        mine = [t for t in trades if dealer is None or t.dealer_id == dealer]
        assert [p.to_dict() for p in book.positions(dealer, snapshot, TODAY)] == \
               [p.to_dict() for p in build_positions(mine, snapshot, TODAY)], dealer
    cfg = RiskConfig.model_validate({"venues": {"bybit": {
        "collateral": "100000", "initial_margin": "0.1", "maintenance_margin": "0.05",
        "funding_rate": "0.0001"}}, "depth": {"BTC-USD": "3"}})
    agreements = {"desk-a": CollateralAgreement.model_validate(
        {"initial_margin": {"USD": "0.1"}, "minimum_transfer": "1000", "posted": {"USD": "5000"}})}
    kw: dict[str, Any] = {"cfg": cfg, "snapshot": snapshot, "today": TODAY, "agreements": agreements,
                          "credit_lines": {"desk-b": (D("100000"), "treasury")}, "now": NOW}
    assert risk_report(book=book, **kw) == risk_report(trades=trades, **kw)
    planned = [RfqSpec.from_dict({"legs": [{"instrument": instrument_to_dict(JAN), "side": "sell"}],
                                  "direction": "sell", "quantity": "10", "quantity_unit": "BTC",
                                  "dealers": ["desk-a"], "requester": "program:p", "mandate": "treasury"})]
    short = collateral_shortfalls(agreements, trades, planned, snapshot, TODAY)
    assert short and collateral_shortfalls(agreements, (), planned, snapshot, TODAY, book=book) == short


async def test_the_ledger_gives_every_figure_of_every_trade_and_nets_only_what_is_new(
        store: AuditStore) -> None:
    await book_of_every_kind(store)
    ledger = TradeLedger(store)
    assert await ledger.refresh() == 9
    trades = await load_trades(store)
    assert len(trades) == 9 and ledger.book.fills == 9
    everything(trades, ledger.book, market())
    everything(trades, ledger.book, market("45000"))  # marking twice changes nothing kept
    assert await ledger.refresh() == 0
    # more fills: one reduces desk-a's short, one adds to the perpetual; one repeats a fill id
    rfq = await submit(store, [(DEC, "buy")])
    await fill(store, rfq, "desk-a", "1.5", "39000")
    again = await fill(store, await submit(store, [(PERP, "buy")]), "bybit", "1", "40070")
    await fill(store, rfq, "desk-a", "9", "1", fill_id=again)  # the fills table ignores it too
    assert await ledger.refresh() == 2
    trades = await load_trades(store)
    assert len(trades) == 11 and ledger.book.fills == 11 and ledger.rebuilds == 0
    everything(trades, ledger.book, market())


async def test_fills_match_submissions_pages_apart(store: AuditStore, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.setattr(ledger_module, "PAGE", 2)
    early = [await submit(store, [(DEC, "buy")]) for _ in range(5)]
    await book_of_every_kind(store)
    for rfq in early:  # submitted pages before their fills: matched by a look-up
        await fill(store, rfq, "desk-a", "1", "40000")
    unknown = await fill(store, "rfq-never-submitted", "desk-a", "7", "1")  # skipped, as load_trades
    ledger = TradeLedger(store)
    assert await ledger.refresh() == 14
    trades = await load_trades(store)
    assert unknown not in {t.fill_id for t in trades} and len(trades) == 14
    everything(trades, ledger.book, market())


async def test_a_fill_out_of_order_rebuilds_the_book_in_fill_order(store: AuditStore,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    await book_of_every_kind(store)
    ledger = TradeLedger(store)
    await ledger.refresh()
    rfq = await submit(store, [(DEC, "sell")], "sell")
    monkeypatch.setattr(writer_module, "utc_now", lambda: NOW - timedelta(days=30))  # a clock set back
    await fill(store, rfq, "desk-a", "2", "41000")
    monkeypatch.undo()
    assert await ledger.refresh() == 10 and ledger.rebuilds == 1
    assert ledger.trades is None  # netted again, in fill order, and kept netting
    trades = await load_trades(store)
    everything(trades, ledger.book, market())
    await fill(store, await submit(store, [(DEC, "buy")]), "desk-a", "1", "40000")
    assert await ledger.refresh() == 1 and ledger.rebuilds == 1
    everything(await load_trades(store), ledger.book, market())


async def test_a_fill_split_at_the_days_market_keeps_the_trades(store: AuditStore) -> None:
    await book_of_every_kind(store)
    ledger = TradeLedger(store)
    await ledger.refresh()
    roll = await submit(store, [(DEC, "buy"), (JAN, "sell")], "sell")  # no reference legs recorded
    await fill(store, roll, "desk-b", "1", "250")
    await ledger.refresh()
    assert ledger.rebuilds == 1 and ledger.trades is not None and len(ledger.trades) == 10
    trades = await load_trades(store)
    for snapshot in (market(), market("45000")):  # its legs move with the market
        everything(trades, ledger.book_for(snapshot, TODAY), snapshot)
    await fill(store, await submit(store, [(DEC, "buy")]), "desk-a", "1", "40000")
    assert await ledger.refresh() == 1 and len(ledger.trades) == 11


def test_the_book_refuses_what_it_cannot_net_and_changes_nothing() -> None:
    spec = RfqSpec.from_dict({"legs": [{"instrument": instrument_to_dict(DEC), "side": "buy"}],
                              "direction": "buy", "quantity": "1", "quantity_unit": "BTC",
                              "dealers": ["d"], "requester": "a", "mandate": "treasury"})
    roll = RfqSpec.from_dict({"legs": [{"instrument": instrument_to_dict(DEC), "side": "buy"},
                                       {"instrument": instrument_to_dict(JAN), "side": "sell"}],
                              "direction": "sell", "quantity": "1", "quantity_unit": "BTC",
                              "dealers": ["d"], "requester": "a", "mandate": "treasury"})
    book = PositionBook()
    assert book.add(TradeRecord("f2", "r2", spec, D(40000), D(1), NOW, "d"))
    before = [p.to_dict() for p in book.positions(None, market(), TODAY)]
    assert not book.add(TradeRecord("f1", "r1", spec, D(40000), D(5), NOW, "d"))  # sorts before f2
    assert not book.add(TradeRecord("f3", "r3", roll, D(300), D(1), NOW, "d"))  # needs a market
    assert book.fills == 1 and [p.to_dict() for p in book.positions(None, market(), TODAY)] == before
    assert book.add(TradeRecord("f3", "r3", roll, D(300), D(1), NOW, "d", reference_legs=(D(1), D(2))))


class Market:
    async def snapshot(self) -> MarketSnapshot:
        return market()


async def test_the_watch_nets_new_fills_between_evaluations(store: AuditStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation nets only the fills of the last few seconds, however long its interval:
    the 10-minute soak's two evaluations each netted five minutes of fills at once."""
    monkeypatch.setattr(riskwatch, "CATCH_UP_S", 0.01)
    config = SimpleNamespace(risk=RiskConfig.model_validate({"interval_s": 3600}))
    watch = riskwatch.RiskWatch(SimpleNamespace(), store, config, Market())  # type: ignore[arg-type]
    await watch.start()
    try:
        assert watch.last_report is not None and watch.last_report["counterparties"] == []
        await book_of_every_kind(store)
        await until(lambda: watch._ledger.book.fills == 9)  # no evaluation due for an hour
        report = await watch.evaluate()
        trades = await load_trades(store)
        expected, _ = risk_report(cfg=config.risk, trades=trades, snapshot=market(), today=report_day(report),
                                  agreements={}, credit_lines={}, now=None)
        assert report["counterparties"] == expected["counterparties"] and len(expected["counterparties"]) == 5
    finally:
        await watch.stop()


def report_day(report: dict[str, Any]) -> date:
    return date.fromisoformat(report["as_of"])
