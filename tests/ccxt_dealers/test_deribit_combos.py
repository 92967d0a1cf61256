"""A Deribit ``book`` dealer trades a multi-leg package as one combo order (``combos.py``),
against the fake Deribit's combo books (``fake_deribit_combo.py``, from Deribit's docs), through
a real ccxt ``deribit`` and its signed raw request; and issue 16's done-when test.

The package: a miner's collar, long the 50,000 put and short the 70,000 call at half the size
(ratios 1 and 0.5) on Deribit's BTC options (premium in BTC). 10 BTC of it is a combo amount of
5 with multipliers +2 (puts) and -1 (calls). Every test compares what the fake executed with
what the adapter (or the store) recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt import CcxtDealers, Journal
from dealer_adapters.ccxt.combos import multipliers
from dealer_adapters.protocol import ExecutionState
from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import (
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionReject,
    Quote,
    QuoteSide,
    RfqSpec,
    RfqState,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store import EventFilter, open_store
from tests.ccxt_dealers.conftest import (
    DERIBIT_ENV,
    FUTURE_EXPIRY,
    OPTION_EXPIRY,
    Make,
    award_for,
    config,
    deribit_config,
    leg,
    rfq,
)
from tests.ccxt_dealers.fake_deribit_block import MakerQuote, inverse_option, linear_option
from tests.ccxt_dealers.fake_deribit_combo import FakeDeribitCombos
from tests.ccxt_dealers.fake_okx import FakeOkx
from tests.engine.conftest import mandate_config

BOOK = DealerId("deribit-book")
PUT, CALL = inverse_option(OPTION_EXPIRY, 50000, "P"), inverse_option(OPTION_EXPIRY, 70000, "C")


def option(strike: int, kind: str) -> dict[str, Any]:
    return {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": OPTION_EXPIRY.isoformat(),
            "strike": str(strike), "option_type": kind}


def collar(quantity: str = "10", direction: str = "buy") -> Any:
    return rfq([leg(option(50000, "put"), side="buy"), leg(option(70000, "call"), side="sell", ratio="0.5")],
               quantity=quantity, direction=direction, window_s=1.5)


@pytest.fixture
async def venue(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDeribitCombos]:
    for key, value in DERIBIT_ENV.items():
        monkeypatch.setenv(key, value)
    server = FakeDeribitCombos(option_expiry=OPTION_EXPIRY, future_expiry=FUTURE_EXPIRY, grace_s=0.3)
    server.leg_marks[PUT] = D("0.0060")
    await server.start()
    yield server
    await server.stop()


async def quoted_collar(venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make,
                        **config: Any) -> tuple[Any, Any, Quote]:
    """The collar's combo listed, asking 0.0010 BTC for the whole amount 5; a Deribit book dealer
    (``config`` its overrides) started and its quote for the collar."""
    venue.set_book(venue.list_combo({PUT: 2, CALL: -1}), bids=[], asks=[("0.0010", "5")])
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path, **config)})
    await dealers.send_rfq(BOOK, collar())
    return dealers, inbox, await inbox.next(Quote)


def test_multipliers_are_the_smallest_integers_in_the_ratios_proportion() -> None:
    assert multipliers([D(1), D("0.5")]) == ([2, 1], D(2))
    assert multipliers([D(1), D(1)]) == ([1, 1], D(1))
    assert multipliers([D("0.3"), D("0.2")]) == ([3, 2], D(10))
    with pytest.raises(ValueError, match="positive"):
        multipliers([D(1), D(0)])


async def test_a_collar_is_one_order_on_its_combo_and_the_legs_fills_are_recorded(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    combo = venue.list_combo({PUT: 2, CALL: -1})
    # combo asks: 3 at 0.0010, 5 at 0.0012 (BTC per combo unit: 2 puts less 1 call)
    venue.set_book(combo, bids=[("0.0004", "10")], asks=[("0.0010", "3"), ("0.0012", "5")])
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path)})
    await dealers.send_rfq(BOOK, collar())
    quote: Quote = await inbox.next(Quote)
    # amount 5: 3 at 0.0010 and 2 at 0.0012, VWAP 0.00108 per combo unit = 0.00054 BTC per BTC of
    # the package; fee 0.0003 x (1 + 0.5) = 0.00045; (0.00054 + 0.00045) x 60,000 = 59.4 USD
    assert quote.conversion is not None
    assert quote.conversion.to_dict()["ask"] == {"premium": "0.00054", "fee": "0.00045",
                                                 "all_in": "0.00099", "price": "59.4"}
    assert quote.ask == D("59.4") and quote.quantity == D(10)
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert (confirm.price, confirm.quantity) == (D("59.4"), D(10))
    [sent] = venue.order_requests
    entry = dealers.journal_entry(BOOK, confirm.execution_id)
    assert entry is not None and entry.intent is not None and entry.outcome is not None
    assert sent["instrument_name"] == combo and sent["amount"] == "5" and sent["price"] == "0.0012"
    assert sent["label"] == entry.intent["client_order_id"] and sent["time_in_force"] == "immediate_or_cancel"
    assert venue.executed == 1 and venue.combo_requests == []  # listed: found, not created
    legs = entry.outcome["details"]["legs"]
    assert [(x["instrument_name"], x["direction"], x["amount"]) for x in legs] == [
        (PUT, "buy", "10"), (CALL, "sell", "5")]  # the RFQ's sizes, from the venue's trades
    [order] = venue.orders.values()
    trades = venue.trades_by_order[order["order_id"]]
    traded: dict[tuple[str, str], D] = {}
    for t in trades:  # two combo levels: each makes one trade per leg
        key = (t["instrument_name"], t["direction"])
        traded[key] = traded.get(key, D(0)) + D(str(t["amount"]))
    assert traded == {(PUT, "buy"): D(10), (CALL, "sell"): D(5)} and len(trades) == 4
    assert f"combo={combo}" in confirm.dealer_trade_id and "settle=BTC" in confirm.dealer_trade_id


async def test_a_combo_listed_with_the_opposite_signs_is_sold_and_the_price_keeps_its_meaning(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    combo = venue.list_combo({PUT: -2, CALL: 1})
    venue.set_book(combo, bids=[("-0.0010", "5")], asks=[("-0.0004", "5")])  # a net credit to its buyer
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path)})
    await dealers.send_rfq(BOOK, collar())
    quote: Quote = await inbox.next(Quote)
    assert quote.conversion is not None  # buying our collar = selling theirs at -0.0010: pay 0.0005
    assert quote.conversion.to_dict()["ask"]["premium"] == "0.0005"
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    await inbox.next(ExecutionConfirm)
    [order] = venue.orders.values()
    assert (order["instrument_name"], order["direction"], order["filled_amount"]) == (combo, "sell", 5)


async def test_a_usdc_collar_is_quoted_in_usdc_with_the_fee_at_the_index_and_no_conversion(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    lput, lcall = linear_option(OPTION_EXPIRY, 50000, "P"), linear_option(OPTION_EXPIRY, 70000, "C")
    combo = venue.list_combo({lput: 2, lcall: -1})
    venue.leg_marks[lput] = D(400)
    venue.set_book(combo, bids=[], asks=[("20", "5")])  # USDC per combo unit
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path)})
    usdc = rfq([leg({**option(50000, "put"), "quote_ccy": "USDC"}, side="buy"),
                leg({**option(70000, "call"), "quote_ccy": "USDC"}, side="sell", ratio="0.5")],
               quantity="10", direction="buy", window_s=1.5)
    await dealers.send_rfq(BOOK, usdc)
    quote: Quote = await inbox.next(Quote)
    # 20 / 2 = 10 USDC per BTC of the package, plus 0.0003 x 1.5 x 60,000 = 27 USDC of fees: 37
    assert quote.conversion is None and quote.ask == D(37)
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    entry = dealers.journal_entry(BOOK, confirm.execution_id)
    assert entry is not None and entry.outcome is not None
    legs = entry.outcome["details"]["legs"]
    # the put leg at its mark 400: min(0.0003 x 10 x 60,000 = 180, 12.5% x 400 x 10 = 500) = 180 USDC;
    # the call leg the rest, 2 x 400 - 20 = 780: min(90, 487.5) = 90 USDC
    assert [(x["instrument_name"], x["amount"], x["average"], x["fee"], x["fee_currency"]) for x in legs] == [
        (lput, "10", "400", "180", "USDC"), (lcall, "5", "780", "90", "USDC")]
    assert "settle=USDC" in confirm.dealer_trade_id and "premium=" not in confirm.dealer_trade_id


async def test_no_combo_listed_creates_it_and_an_empty_combo_book_is_a_decline_never_legged(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    venue.set_book(PUT, bids=[], asks=[("0.0060", "50")])
    venue.set_book(CALL, bids=[("0.0117", "50")], asks=[])
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path)})
    await dealers.send_rfq(BOOK, collar())
    decline: Decline = await inbox.next(Decline)
    assert "combo book's asks hold 0 of amount 5" in decline.reason and "never legged" in decline.reason
    assert venue.combo_requests == [[{"instrument_name": PUT, "amount": "2", "direction": "buy"},
                                     {"instrument_name": CALL, "amount": "1", "direction": "sell"}]]
    assert list(venue.combos) == ["BTC-CMB-1"] and venue.order_requests == []


async def test_two_way_both_sides_come_from_the_combo_book_and_the_bid_sells_the_combo(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    combo = venue.list_combo({PUT: 2, CALL: -1})
    venue.set_book(combo, bids=[("0.0006", "5")], asks=[("0.0010", "5")])
    dealers, inbox = await make_dealers({BOOK: deribit_config(venue, tmp_path)})
    await dealers.send_rfq(BOOK, collar(direction="two_way"))
    quote: Quote = await inbox.next(Quote)
    assert quote.conversion is not None
    sides = quote.conversion.to_dict()
    # bid: 0.0006 / 2 - 0.00045 = -0.00015 BTC (the requester selling the collar pays a little)
    bid, ask = sides["bid"], sides["ask"]
    assert (bid["premium"], bid["all_in"], bid["price"]) == ("0.0003", "-0.00015", "-9")
    assert (ask["premium"], ask["all_in"], ask["price"]) == ("0.0005", "0.00095", "57")
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.BID))
    await inbox.next(ExecutionConfirm)
    [order] = venue.orders.values()
    assert (order["instrument_name"], order["direction"], order["filled_amount"]) == (combo, "sell", 5)
    traded = sorted((t["instrument_name"], t["direction"]) for t in venue.trades_by_order[order["order_id"]])
    assert traded == sorted([(PUT, "sell"), (CALL, "buy")])  # the collar sold: puts sold, calls bought


async def test_a_combo_book_that_moved_against_the_quote_is_a_last_look_reject_nothing_sent(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox, quote = await quoted_collar(venue, tmp_path, make_dealers)
    venue.set_book(next(iter(venue.combos)), bids=[], asks=[("0.0040", "5")])
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    # 0.0030 more per combo unit is 0.0015 BTC per BTC of the package: 15 bps of the underlying
    assert "last look: the BTC-CMB-1 book moved 15 bps of the underlying" in reject.reason
    assert venue.order_requests == [] and venue.executed == 0


async def test_a_lost_combo_order_reply_is_looked_up_by_label_and_fills_once(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox, quote = await quoted_collar(venue, tmp_path, make_dealers, timeout_ms=300)
    venue.order_mode, venue.slow_s = "slow", 0.6
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.quantity == D(10) and len(venue.order_requests) == 1 and venue.executed == 1
    entry = dealers.journal_entry(BOOK, confirm.execution_id)
    assert entry is not None and entry.outcome is not None
    assert [x["amount"] for x in entry.outcome["details"]["legs"]] == ["10", "5"]


async def test_after_a_crash_the_combo_fill_is_found_by_label_and_never_sent_again(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(venue, tmp_path)
    dealers, inbox, quote = await quoted_collar(venue, tmp_path, make_dealers)
    award = award_for(quote, side=QuoteSide.ASK)
    await dealers.send_award(BOOK, award)
    await inbox.next(ExecutionConfirm)
    await dealers.close()
    # a crash between the order call and its outcome: the journal holds the intent only
    lines = cfg.journal_path.read_text().splitlines()
    cfg.journal_path.write_text("\n".join(line for line in lines if '"kind":"outcome"' not in line) + "\n")
    assert Journal(cfg.journal_path).load()[(BOOK, award.execution_id)].unresolved
    restarted, inbox2 = await make_dealers({BOOK: cfg})
    lookup = await restarted.query_execution(BOOK, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert (lookup.confirm.quantity, lookup.confirm.price) == (D(10), award.price)
    await restarted.send_award(BOOK, award)  # the engine's recovery re-sends the award
    await inbox2.next(ExecutionConfirm)
    assert len(venue.order_requests) == 1 and venue.executed == 1
    entry = restarted.journal_entry(BOOK, award.execution_id)
    assert entry is not None and entry.outcome is not None  # the legs, read back by order id
    assert [x["amount"] for x in entry.outcome["details"]["legs"]] == ["10", "5"]


async def test_a_rate_limited_combo_order_is_a_reject_that_says_so_after_one_look_up(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox, quote = await quoted_collar(venue, tmp_path, make_dealers, rate_limit_backoff_ms=50)
    venue.order_mode = "rate_limited"  # 10028 too_many_requests, nothing booked
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert reject.reason.startswith("rate limit: deribit refused the combo order")
    assert venue.executed == 0 and len(venue.order_requests) == 1 and len(venue.label_lookups) == 1


async def test_insufficient_funds_is_a_reject_with_nothing_traded(
        venue: FakeDeribitCombos, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox, quote = await quoted_collar(venue, tmp_path, make_dealers)
    venue.order_mode = "insufficient"
    await dealers.send_award(BOOK, award_for(quote, side=QuoteSide.ASK))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert "combo order" in reject.reason and venue.executed == 0


# --- issue 16's done-when: one collar RFQ to every kind of counterparty -------------------------


async def test_a_collar_to_deribit_book_and_block_an_otc_desk_and_okx_ranked_in_usd_and_filled(
        venue: FakeDeribitCombos, okx: FakeOkx, tmp_path: Path) -> None:
    """Deribit's book quotes the collar from its combo book, the Deribit Block RFQ from its
    makers (both in BTC, converted at the index), the OTC desk in USD; OKX's book declines a
    package (no combos there, never legged). The engine ranks all in USD, awards the best
    (Deribit's combo), and the fill is the venue's: one combo order, the legs at the RFQ's size."""
    from tests.ccxt_dealers.test_deribit_block_rfq import block_config

    combo = venue.list_combo({PUT: 2, CALL: -1})
    venue.set_book(combo, bids=[], asks=[("0.0002", "5")])  # 0.0001 BTC per BTC + 0.00045 fee: 33 USD
    # the makers: 2 x 0.0060 - 0.0117 = 0.0003 per amount 5: 0.00015 + 0.00045 = 0.0006 BTC: 36 USD
    venue.maker_quotes = [MakerQuote("MAKER1", "ask", {PUT: "0.0060", CALL: "0.0117"})]
    block, desk, okx_book = DealerId("deribit-block"), DealerId("otc-desk"), DealerId("okx-book")
    market = MarketSnapshot(spot={"BTC": D(60000)}, vol={"BTC": D("0.5")}, rate=D("0.05"), as_of=utc_now())
    exchanges = CcxtDealers({
        BOOK: deribit_config(venue, tmp_path, journal_path=str(tmp_path / "book.journal")),
        block: block_config(venue, tmp_path),
        okx_book: config(okx, tmp_path),
    })
    otc = SimulatedDealers({desk: SimulatedDealerConfig.model_validate(
        {"seed": 7, "latency_ms": 20.0, "latency_jitter_ms": 0.0})}, lambda: market)
    limits = {d: {"credit_limit": "100000000"} for d in (BOOK, block, desk, okx_book)}
    store = open_store("memory://")
    await store.open()
    engine = RfqEngine(store=store, adapters=[exchanges, otc],
                       mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits))},
                       reference=ModelReferenceProvider(market, max_age=None),
                       config=EngineConfig(confirm_timeout_ms=5000))
    await engine.start()
    for dealer in (BOOK, block, okx_book):
        exchanges.exchange(dealer).timeout_on_exit = 0
    try:
        rfq_id = await engine.submit(RfqSpec.from_dict({
            "legs": [{"instrument": option(50000, "put"), "side": "buy"},
                     {"instrument": option(70000, "call"), "side": "sell", "ratio": "0.5"}],
            "direction": "buy", "quantity": "10", "quantity_unit": "BTC",
            "dealers": [BOOK, block, desk, okx_book], "requester": "miner", "mandate": "treasury",
            "window_ms": 1500}))
        assert await engine.wait(rfq_id, 15) is RfqState.FILLED
        [fill] = await store.fills(rfq_id)
        assert (fill.dealer_id, fill.price, fill.quantity) == (BOOK, D(33), D(10))
        [order] = venue.orders.values()  # one order, on the combo, for the whole package
        assert (order["instrument_name"], order["direction"], order["filled_amount"]) == (combo, "buy", 5)
        assert f"deribit:{order['order_id']}" in fill.dealer_trade_id
        traded = sorted((t["instrument_name"], t["direction"], t["amount"])
                        for t in venue.trades_by_order[order["order_id"]])
        assert traded == sorted([(PUT, "buy", 10), (CALL, "sell", 5)])
        assert venue.accepts == [] and okx.order_requests == []  # the block was not taken
        record = build_decision_record(await store.events(EventFilter(rfq_id=rfq_id)))
        quotes = {q["dealer_id"]: q for q in record["quotes"]}
        assert set(quotes) == {BOOK, block, desk}
        assert quotes[BOOK]["conversion"]["ask"] == {"premium": "0.0001", "fee": "0.00045",
                                                     "all_in": "0.00055", "price": "33"}
        assert quotes[block]["conversion"]["ask"]["price"] == "36"
        assert quotes[BOOK]["conversion"]["index"]["price"] == "60000"
        assert quotes[desk].get("conversion") is None and D(quotes[desk]["ask"]) > D(36)
        declined = {d["dealer_id"]: d["reason"] for d in record["declines"]}
        assert set(declined) == {okx_book} and "not executed leg by leg" in declined[okx_book]
        assert [r["dealer_id"] for r in record["ranking"]][:3] == [BOOK, block, desk]
    finally:
        await engine.stop()
        await store.close()
