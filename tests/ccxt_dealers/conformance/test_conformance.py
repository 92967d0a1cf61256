"""The venue conformance suite (issue 16): every venue dialect (OKX, Deribit, Bybit, Binance)
passes the same cases, each against its fake venue (written from the venue's public API
documentation) through the real ccxt and, where the case is about what was traded, through
the engine and its audit store.

Every case compares what the fake venue recorded (the orders it received, what it
executed) with the store (the fills, the decision record) or, for a restart, with what the
restarted dealer reports from its journal and the venue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import ROUND_FLOOR
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt import CcxtDealers
from dealer_adapters.ccxt.dialects import derive_key, dialect_for
from dealer_adapters.ccxt.journal import Journal
from dealer_adapters.protocol import ExecutionState
from rfq_engine.domain import DealerId, RfqSpec, RfqState, utc_now
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store import EventFilter, open_store
from tests.ccxt_dealers.conformance.venues import MARKETS, VENUES, Market, Venue
from tests.engine.conftest import mandate_config

CASES = [(v, m) for v in VENUES for m in MARKETS[v]]


@dataclass
class Run:
    venue: Venue
    fake: Any
    tmp_path: Path

    @property
    def dealer(self) -> DealerId:
        return DealerId(f"{self.venue.name}-book")

    def orders(self) -> list[dict[str, Any]]:
        return list(self.fake.order_requests)

    def key_for(self, execution_id: str) -> str:
        dialect = dialect_for(self.venue.exchange)
        assert dialect is not None
        return derive_key(dialect, execution_id, "rfq")

    def book(self, market: Market, bids: list[tuple[str, str]] | None = None) -> None:
        self.fake.set_book(market.symbol, bids=market.bids if bids is None else bids, asks=market.asks)

    async def trade(self, market: Market, *, allow_partial: bool = False,
                    **overrides: Any) -> tuple[RfqState, list[Any], dict[str, Any]]:
        """One RFQ for ``market`` to this venue alone, through the engine; the final state, the
        store's fills and the decision record."""
        store = open_store("memory://")
        await store.open()
        dealers = CcxtDealers({self.dealer: self.venue.config(self.fake, self.tmp_path, **overrides)})
        snapshot = MarketSnapshot(spot={"BTC": D(60000)}, vol={"BTC": D("0.5")}, rate=D("0.05"),
                                  as_of=utc_now())
        mandate = mandate_config(dealers={self.dealer: {"credit_limit": "1000000000"}})
        engine = RfqEngine(store=store, adapters=[dealers],
                           mandates={"treasury": Mandate("treasury", mandate)},
                           reference=ModelReferenceProvider(snapshot, max_age=None),
                           config=EngineConfig(confirm_timeout_ms=4000))
        await engine.start()
        dealers.exchange(self.dealer).timeout_on_exit = 0
        try:
            rfq_id = await engine.submit(RfqSpec.from_dict({
                "legs": [{"instrument": market.instrument, "side": market.direction}],
                "direction": market.direction, "quantity": market.quantity, "quantity_unit": "BTC",
                "allow_partial": allow_partial, "dealers": [self.dealer], "requester": "alice",
                "mandate": "treasury", "window_ms": 400}))
            state = await engine.wait(rfq_id, 15)
            fills = await store.fills(rfq_id)
            record = build_decision_record(await store.events(EventFilter(rfq_id=rfq_id)))
            return state, fills, record
        finally:
            await engine.stop()
            await dealers.close()
            await store.close()


@pytest.fixture(params=list(VENUES))
async def run(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[Run]:
    venue = VENUES[request.param]
    for key, value in venue.env.items():
        monkeypatch.setenv(key, value)
    fake = venue.make()
    await fake.start()
    try:
        yield Run(venue, fake, tmp_path)
    finally:
        await fake.stop()


def executed_underlying(market: Market, order: dict[str, Any], price: D) -> D:
    return (D(order) * market.underlying_per_amount(price)).quantize(D("1e-12"), rounding=ROUND_FLOOR)


def assert_one_order_as_stored(run: Run, market: Market, fills: list[Any]) -> dict[str, Any]:
    """The venue received exactly one order, with our key in its field and the size the store
    recorded (converted back), and executed it once."""
    [order] = run.orders()
    [fill] = fills
    assert order[run.venue.symbol_field] == market.symbol
    assert order[market.key_field or run.venue.key_field] == run.key_for(fill.execution_id)
    assert order[run.venue.amount_field] == market.amount
    assert run.fake.executed == 1 == len(fills)
    price = D(next(iter(market.bids if market.direction == "sell" else market.asks))[0])
    assert fill.quantity == executed_underlying(market, market.amount, price) == D(market.quantity)
    return order


# --- mapping, quoting, one order per award, size as the venue received it ---------------------


@pytest.mark.parametrize(("venue", "market"), CASES, ids=[f"{v}:{m.label}" for v, m in CASES])
async def test_each_market_is_quoted_from_the_book_and_filled_by_one_order_of_the_stored_size(
        venue: str, market: Market, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = VENUES[venue]
    for key, value in spec.env.items():
        monkeypatch.setenv(key, value)
    fake = spec.make()
    await fake.start()
    try:
        run = Run(spec, fake, tmp_path)
        run.book(market)
        state, fills, record = await run.trade(market)
        assert state is RfqState.FILLED, record.get("state_reason")
        assert fills[0].price == market.price  # contract size, lot, fee (and conversion) applied
        assert_one_order_as_stored(run, market, fills)
    finally:
        await fake.stop()


# --- the failure cases, on each venue's linear perpetual ----------------------------------------


def perpetual(run: Run) -> Market:
    return MARKETS[run.venue.name][0]


async def test_a_timeout_after_the_venue_filled_is_found_by_our_key_one_execution(run: Run) -> None:
    market = perpetual(run)
    run.book(market)
    run.fake.order_mode = run.venue.mode("slow")
    run.fake.slow_s = 1.3  # past the 1 s client timeout: the venue filled, the reply is lost
    state, fills, _ = await run.trade(market)
    assert state is RfqState.FILLED
    assert_one_order_as_stored(run, market, fills)


async def test_a_rate_limit_is_a_rejection_the_decision_record_names(run: Run) -> None:
    market = perpetual(run)
    run.book(market)
    run.fake.order_mode = run.venue.mode("rate_limited")
    state, fills, record = await run.trade(market)
    assert state is not RfqState.FILLED and fills == []
    assert len(run.orders()) == 1 and run.fake.executed == 0  # never sent again
    text = str(record)
    assert "rate limit:" in text, text[:2000]


async def test_insufficient_funds_is_a_rejection_and_nothing_executes(run: Run) -> None:
    market = perpetual(run)
    run.book(market)
    run.fake.order_mode = run.venue.mode("insufficient")
    state, fills, record = await run.trade(market)
    assert state is not RfqState.FILLED and fills == []
    assert len(run.orders()) == 1 and run.fake.executed == 0
    assert "venue refused the order" in str(record)


async def test_a_partial_fill_is_stored_as_what_the_venue_executed(run: Run) -> None:
    market = perpetual(run)
    run.book(market)
    # the quote sees the whole size; when the order arrives another taker has left 40% of it
    left = D(market.amount) * D("0.4")
    run.fake.on_order = lambda: run.fake.set_book(market.symbol, bids=[(market.bids[0][0], str(left))],
                                                  asks=market.asks)
    state, fills, _ = await run.trade(market, allow_partial=True)
    assert state is RfqState.PARTIALLY_FILLED
    [order] = run.orders()
    [fill] = fills
    assert order[run.venue.key_field] == run.key_for(fill.execution_id)
    assert order[run.venue.amount_field] == market.amount  # the whole award was sent
    assert run.fake.executed == 1
    price = D(market.bids[0][0])
    assert fill.quantity == executed_underlying(market, str(left), price) < D(market.quantity)


async def test_a_restart_mid_order_finds_the_order_by_our_key_and_never_sends_it_again(
        run: Run, tmp_path: Path) -> None:
    market = perpetual(run)
    run.book(market)
    state, fills, _ = await run.trade(market)
    assert state is RfqState.FILLED
    [fill] = fills
    # a crash between the order call and its outcome: the journal holds the intent only
    cfg = run.venue.config(run.fake, tmp_path)
    lines = cfg.journal_path.read_text().splitlines()
    cfg.journal_path.write_text("\n".join(x for x in lines if '"kind":"outcome"' not in x) + "\n")
    assert Journal(cfg.journal_path).load()[(run.dealer, fill.execution_id)].unresolved
    restarted = CcxtDealers({run.dealer: cfg})
    inbox: list[Any] = []
    await restarted.start(inbox.append)
    restarted.exchange(run.dealer).timeout_on_exit = 0
    try:
        lookup = await restarted.query_execution(run.dealer, fill.execution_id)
        assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
        assert (lookup.confirm.quantity, lookup.confirm.price) == (fill.quantity, fill.price)
        await restarted.idle()
    finally:
        await restarted.close()
    assert len(run.orders()) == 1 and run.fake.executed == 1  # found, never placed again
