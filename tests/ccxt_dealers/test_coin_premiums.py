"""Issue 16: option premiums quoted in BTC (Deribit BTC options, OKX coin-margined options),
through a real ccxt against the fake venues.

The adapter reports what the venue said (the premium in BTC from the book, the fee by the
venue's schedule, the index price with its time and source) and the domain converts it
(``rfq_engine.domain.premium``); the quote the engine ranks is in USD per BTC, and the
conversion travels with it into ``quote.received``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from dealer_adapters.ccxt import CcxtDealers
from rfq_engine.domain import (
    DealerId,
    ExecutionConfirm,
    InboundRejected,
    Leg,
    Quote,
    QuoteSide,
    RfqSpec,
    RfqState,
    utc_now,
)
from rfq_engine.domain.events import QuoteReceived, decode
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.hedging.positions import ContractTerms, SettlementKind, fill_terms
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.readmodels.decision import build_decision_record, render_decision_record
from rfq_engine.store import EventFilter, open_store
from tests.ccxt_dealers.conftest import OPTION_EXPIRY, Make, award_for, config, deribit_config, leg, rfq
from tests.ccxt_dealers.fake_deribit import FakeDeribit, expiry_name
from tests.ccxt_dealers.fake_okx import FakeOkx
from tests.engine.conftest import mandate_config

DERIBIT = DealerId("deribit-book")
OKX = DealerId("okx-book")
PUT = f"BTC-{expiry_name(OPTION_EXPIRY)}-50000-P"


def put(side: str = "buy", quote_ccy: str = "USD") -> Leg:
    return leg({"kind": "option", "underlying": "BTC", "quote_ccy": quote_ccy,
                "expiry": OPTION_EXPIRY.isoformat(), "strike": "50000", "option_type": "put"}, side=side)


@pytest.fixture
def deribit_options(deribit: FakeDeribit) -> FakeDeribit:
    deribit.option_expiry = OPTION_EXPIRY
    deribit.set_book(PUT, bids=[("0.0140", "5")], asks=[("0.0150", "2"), ("0.0160", "5")])
    return deribit


async def test_a_btc_premium_is_quoted_in_usd_at_the_index_with_deribits_fee(
        deribit_options: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DERIBIT: deribit_config(deribit_options, tmp_path)})
    await dealers.send_rfq(DERIBIT, rfq([put()], quantity="1", direction="buy"))
    quote: Quote = await inbox.next(Quote)
    conversion = quote.conversion
    assert conversion is not None
    # 0.0150 BTC, fee min(0.0003, 12.5% of 0.0150 = 0.001875) = 0.0003; at 60,000 USD
    assert conversion.premium.ask == D("0.015") and conversion.premium.fee_ask == D("0.0003")
    assert conversion.all_in_ask == D("0.0153") and quote.ask == D("918")
    assert conversion.premium.index.price == D(60000) and conversion.premium.index.currency == "USD"
    assert conversion.premium.index.source == f"deribit public/ticker {PUT} index_price"
    assert abs(utc_now() - conversion.premium.index.at) < timedelta(seconds=5)
    record = conversion.to_dict()
    assert record["version"] == 1 and record["ask"] == {
        "premium": "0.015", "fee": "0.0003", "all_in": "0.0153", "price": "918"}

    award = award_for(quote, side=QuoteSide.ASK)
    await dealers.send_award(DERIBIT, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit_options.order_requests
    assert (sent["instrument_name"], sent["amount"], sent["price"]) == (PUT, "1", "0.015")
    assert deribit_options.executed == 1
    assert (confirm.price, confirm.quantity) == (D(918), D(1))
    [order] = deribit_options.orders.values()
    entry = dealers.journal_entry(DERIBIT, award.execution_id)
    assert entry is not None and entry.outcome is not None
    details = entry.outcome["details"]
    assert details["premium_currency"] == "BTC" and details["settlement_currency"] == "BTC"
    assert (details["fee"], details["fee_currency"]) == ("0.0003", "BTC")
    assert D(details["fee"]) == D(str(order["commission"]))
    assert details["index_price"] == "60000" and details["average"] == "0.015"
    assert "avg=0.015 BTC fee=0.0003 BTC" in confirm.dealer_trade_id
    assert "settle=BTC" in confirm.dealer_trade_id


async def test_the_fee_is_capped_at_an_eighth_of_a_cheap_premium(
        deribit_options: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    deribit_options.set_book(PUT, bids=[("0.0008", "5")], asks=[("0.0010", "5")])
    dealers, inbox = await make_dealers({DERIBIT: deribit_config(deribit_options, tmp_path)})
    await dealers.send_rfq(DERIBIT, rfq([put()], quantity="1", direction="two_way"))
    quote: Quote = await inbox.next(Quote)
    assert quote.conversion is not None
    assert quote.conversion.premium.fee_ask == D("0.000125")  # 12.5% of 0.0010, below 0.0003
    assert quote.conversion.premium.fee_bid == D("0.0001")  # 12.5% of 0.0008
    assert quote.ask == D("0.001125") * 60000 and quote.bid == D("0.0007") * 60000


async def test_the_fee_is_the_schedule_exactly_at_any_premium(
        deribit_options: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    deribit_options.set_book(PUT, bids=[("0.0137", "5")], asks=[("0.0151", "1"), ("0.0153", "1")])
    dealers, inbox = await make_dealers({DERIBIT: deribit_config(deribit_options, tmp_path)})
    await dealers.send_rfq(DERIBIT, rfq([put()], quantity="2", direction="two_way"))
    quote: Quote = await inbox.next(Quote)
    assert quote.conversion is not None
    premium = quote.conversion.premium
    assert (premium.ask, premium.fee_ask) == (D("0.0152"), D("0.0003"))  # the walk's average
    assert (premium.bid, premium.fee_bid) == (D("0.0137"), D("0.0003"))
    assert (quote.ask, quote.bid) == (D("0.0155") * 60000, D("0.0134") * 60000)


async def test_a_stale_index_is_refused_at_the_door_never_converted(
        deribit_options: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    deribit_options.index_age_ms = 120_000
    dealers, inbox = await make_dealers({DERIBIT: deribit_config(deribit_options, tmp_path)})
    await dealers.send_rfq(DERIBIT, rfq([put()], quantity="1", direction="buy"))
    rejected: InboundRejected = await inbox.next(InboundRejected)
    assert "body.premium.index.at" in rejected.reason and "older than 30 s" in rejected.reason
    assert inbox.of(Quote) == []


async def test_an_okx_coin_margined_option_is_quoted_in_contracts_of_a_hundredth(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    call = f"BTC-USD-{OPTION_EXPIRY.strftime('%y%m%d')}-50000-C"
    okx.set_book(call, bids=[("0.1995", "50")], asks=[("0.2005", "50")])
    okx.index_price = "60000"
    dealers, inbox = await make_dealers({OKX: config(okx, tmp_path)})
    option = leg({"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                  "expiry": OPTION_EXPIRY.isoformat(), "strike": "50000", "option_type": "call"})
    await dealers.send_rfq(OKX, rfq([option], quantity="0.1"))  # the requester sells: the bids
    quote: Quote = await inbox.next(Quote)
    assert quote.conversion is not None
    premium = quote.conversion.premium
    assert premium.bid == D("0.1995") and premium.fee_bid == D("0.0003")  # 0.03% < 7% of 0.1995
    assert quote.bid == (D("0.1995") - D("0.0003")) * 60000
    assert premium.index.source == "okx GET /api/v5/market/index-tickers BTC-USD idxPx"
    await dealers.send_award(OKX, award_for(quote))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = okx.order_requests
    assert (sent["instId"], sent["sz"], sent["side"]) == (call, "10", "sell")  # 10 x 0.01 BTC
    assert confirm.quantity == D("0.1") and confirm.price == quote.bid
    assert "fee=0.00003 BTC improvement_bps=0" in confirm.dealer_trade_id  # 0.1 BTC x 0.03%


async def test_through_the_engine_the_conversion_is_stored_with_the_quote(
        deribit_options: FakeDeribit, tmp_path: Path) -> None:
    store = open_store("memory://")
    await store.open()
    dealers = CcxtDealers({DERIBIT: deribit_config(deribit_options, tmp_path)})
    market = MarketSnapshot(spot={"BTC": D(60000)}, vol={"BTC": D("0.5")}, rate=D("0.05"), as_of=utc_now())
    mandate = mandate_config(dealers={DERIBIT: {"credit_limit": "100000000"}})
    engine = RfqEngine(store=store, adapters=[dealers], mandates={"treasury": Mandate("treasury", mandate)},
                       reference=ModelReferenceProvider(market, max_age=None),
                       config=EngineConfig(confirm_timeout_ms=5000))
    await engine.start()
    dealers.exchange(DERIBIT).timeout_on_exit = 0
    try:
        rfq_id = await engine.submit(RfqSpec.from_dict({
            "legs": [{"instrument": {"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                                     "expiry": OPTION_EXPIRY.isoformat(), "strike": "50000",
                                     "option_type": "put"}, "side": "buy"}],
            "direction": "buy", "quantity": "1", "quantity_unit": "BTC",
            "dealers": [DERIBIT], "requester": "alice", "mandate": "treasury", "window_ms": 600}))
        assert await engine.wait(rfq_id, 10) is RfqState.FILLED
        [fill] = await store.fills(rfq_id)
        assert (fill.price, fill.quantity) == (D(918), D(1))
        # what positions read: a coin premium converted at 60,000, settled in BTC (a coin)
        terms = fill_terms(fill.dealer_trade_id)
        assert terms == ContractTerms("BTC", premium_currency="BTC", index_price=D(60000))
        assert terms.kind is SettlementKind.COIN
        events = [e for e in await store.events() if e.type == "quote.received"]
        [received] = [decode(e.type, e.payload) for e in events]
        assert isinstance(received, QuoteReceived) and received.ask == D(918)
        assert received.conversion["ask"] == {"premium": "0.015", "fee": "0.0003", "all_in": "0.0153",
                                              "price": "918"}
        assert received.conversion["index"]["price"] == "60000"
        # the decision record (rfq audit show) carries the conversion with the quote, and shows it
        record = build_decision_record(await store.events(EventFilter(rfq_id=rfq_id)))
        [quote] = record["quotes"]
        assert quote["ask"] == "918" and quote["conversion"] == received.conversion
        shown = render_decision_record(record)
        assert (f"converted at 60000 USD (deribit public/ticker {PUT} index_price, "
                f"{received.conversion['index']['at']}): ask 0.015 + fee 0.0003 = 0.0153 BTC -> 918") in shown
        assert deribit_options.executed == 1 and deribit_options.order_requests[0]["amount"] == "1"
    finally:
        await engine.stop()
        await store.close()
