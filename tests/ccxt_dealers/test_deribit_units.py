"""Issue 16 on the adapter's side: Deribit's units, through a real ccxt ``deribit`` against the
fake Deribit.

Deribit sizes linear instruments in the base coin (``BTC_USDC-PERPETUAL``: ``amount`` in BTC,
``contract_size`` 0.001 BTC, which ccxt reports as ``contractSize``) and inverse futures in
USD (``BTC-PERPETUAL`` and the dated ``BTC-DDMMMYY``: ``amount`` in USD, contracts of 10 USD).
The adapter sized the linear perpetual as ccxt's contracts of 0.001: 1,000x too big.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from dealer_adapters.ccxt import CcxtDealers
from rfq_engine.domain import (
    DealerId,
    Decline,
    ExecutionConfirm,
    Leg,
    Quote,
    QuoteSide,
    RfqNew,
    RfqSpec,
    RfqState,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.hedging.positions import ContractTerms, fill_terms
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import open_store
from tests.ccxt_dealers.conftest import FUTURE_EXPIRY, Inbox, Make, award_for, deribit_config, leg, rfq
from tests.ccxt_dealers.fake_deribit import FakeDeribit, expiry_name
from tests.engine.conftest import mandate_config

DEALER = DealerId("deribit-book")
LINEAR = "BTC_USDC-PERPETUAL"


def linear_perp(side: str = "sell") -> Leg:
    return leg({"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDC"}, side=side)


async def first(dealers: CcxtDealers, inbox: Inbox, message: RfqNew) -> Quote | Decline:
    """The dealer's first answer to ``message``."""
    await dealers.send_rfq(DEALER, message)
    async with asyncio.timeout(10):
        while True:
            answers = [m for m in inbox.messages
                       if isinstance(m, Quote | Decline) and m.rfq_id == message.rfq_id]
            if answers:
                return answers[0]
            await asyncio.sleep(0.01)


# --- defect 1: the linear perpetual sized in BTC, not in ccxt's 0.001 contracts ------------------


async def test_a_linear_perpetual_order_is_sent_in_btc_not_in_thousandths(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    # bids 0.003 BTC @ 40000 and 7.5 BTC @ 39990 (amounts in BTC, as Deribit serves them)
    deribit.set_book(LINEAR, bids=[("40000", "0.003"), ("39990", "7.5")], asks=[("40010", "7.5")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    quote = await first(dealers, inbox, rfq([linear_perp()], quantity="0.005"))
    assert isinstance(quote, Quote), quote
    # the walk for 0.005 BTC: 0.003 @ 40000 + 0.002 @ 39990 = 39996, less 5 bps
    assert quote.quantity == D("0.005") and quote.bid == D("39996") * D("0.9995")
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit.order_requests
    assert sent["instrument_name"] == LINEAR and sent["amount"] == "0.005"  # not 5 (5 BTC)
    assert (sent["price"], sent["time_in_force"]) == ("39990", "immediate_or_cancel")
    assert confirm.quantity == D("0.005") and confirm.price == award.price
    [order] = deribit.orders.values()
    assert D(str(order["filled_amount"])) == confirm.quantity  # what the venue executed = the fill
    entry = dealers.journal_entry(DEALER, award.execution_id)
    assert entry is not None and entry.intent is not None and entry.intent["amount"] == "0.005"
    assert entry.intent["amount_unit"] == "base"


async def test_a_one_btc_rfq_is_quoted_against_a_book_holding_7_5_btc(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    deribit.set_book(LINEAR, bids=[("40000", "7.5")], asks=[("40010", "7.5")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    answer = await first(dealers, inbox, rfq([linear_perp()], quantity="1"))
    # before: declined "the BTC/USDC:USDC bids hold 0.0075 of 1 BTC"
    assert isinstance(answer, Quote), answer
    assert answer.quantity == D(1) and answer.bid == D("40000") * D("0.9995")
    two_way = await first(dealers, inbox, rfq([linear_perp("buy")], quantity="7.5", direction="two_way"))
    assert isinstance(two_way, Quote) and two_way.quantity == D("7.5")
    too_big = await first(dealers, inbox, rfq([linear_perp()], quantity="8"))
    assert isinstance(too_big, Decline) and "hold 7.5 of 8 BTC" in too_big.reason


# --- defect 2: the linear perpetual's USDC fee, found by label, recorded as charged --------------


async def test_a_linear_fee_is_recorded_in_usdc_as_charged_also_when_found_by_label(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    """ccxt's ``parse_order`` labels Deribit's ``commission`` with the base coin: a look-up of
    a USDC-settled order said "10 BTC", and the outcome multiplied it by the price."""
    deribit.set_book(LINEAR, bids=[("40000", "7.5")], asks=[("40010", "7.5")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path, timeout_ms=300)})
    for n, mode in enumerate(("normal", "slow"), start=1):  # the order's own reply; a lost reply
        quote = await first(dealers, inbox, rfq([linear_perp()], quantity="0.5"))
        assert isinstance(quote, Quote)
        deribit.order_mode = mode
        award = award_for(quote)
        await dealers.send_award(DEALER, award)
        confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm, count=n)
        order = list(deribit.orders.values())[-1]
        assert D(str(order["commission"])) == D(10)  # 0.5 BTC * 40000 * 5 bps, in USDC
        entry = dealers.journal_entry(DEALER, award.execution_id)
        assert entry is not None and entry.outcome is not None
        details = entry.outcome["details"]
        assert (details["fee"], details["fee_currency"], details["fee_in_quote"]) == ("10", "USDC", "10")
        assert details["all_in"] == "39980" and details["settlement_currency"] == "USDC"
        assert "fee=10 USDC" in confirm.dealer_trade_id and "settle=USDC" in confirm.dealer_trade_id
        assert confirm.quantity == D("0.5")
    assert len(deribit.label_lookups) >= 1  # the second one was found by label


# --- inverse futures: the RFQ in BTC, the venue's amount in whole USD contracts -----------------

INVERSE = "BTC-PERPETUAL"


def inverse_perp(side: str = "sell") -> Leg:
    return leg({"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"}, side=side)


async def test_an_inverse_perpetual_is_quoted_and_executed_in_usd_contracts(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    # amounts in USD: 20000 USD @ 40000 (0.5 BTC) and 100000 USD @ 39000
    deribit.set_book(INVERSE, bids=[("40000", "20000"), ("39000", "100000")], asks=[("40010", "100000")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    quote = await first(dealers, inbox, rfq([inverse_perp()], quantity="1"))
    assert isinstance(quote, Quote), quote
    # 0.5 BTC = 20000 USD @ 40000, 0.5 BTC = 19500 USD @ 39000: 3950 contracts of 10 USD, exactly
    # 1 BTC; the price per BTC is 39500 USD / 1 BTC, less 5 bps
    assert quote.quantity == D(1) and quote.bid == D(39500) * D("0.9995")
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit.order_requests
    assert (sent["instrument_name"], sent["amount"], sent["price"]) == (INVERSE, "39500", "39000")
    [order] = deribit.orders.values()
    assert order["filled_amount"] == 39500
    # the fill is what the venue executed, converted back at the quote's conversion price
    assert confirm.quantity == D(39500) / D(39500) == D(1) and confirm.price == award.price
    entry = dealers.journal_entry(DEALER, award.execution_id)
    assert entry is not None and entry.intent is not None and entry.outcome is not None
    assert (entry.intent["amount_unit"], entry.intent["conversion_price"]) == ("quote", "39500")
    details = entry.outcome["details"]
    assert (details["notional"], details["notional_currency"], details["settlement_currency"]) == (
        "39500", "USD", "BTC")
    assert details["fee_currency"] == "BTC" and D(details["fee"]) == D(str(order["commission"]))
    assert "notional=39500 USD" in confirm.dealer_trade_id and "settle=BTC" in confirm.dealer_trade_id


async def test_the_rounding_residual_is_declined_or_quoted_as_a_partial(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    deribit.set_book(INVERSE, bids=[("40001", "100000")], asks=[("40010", "100000")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    # 1 BTC @ 40001 is 40001 USD: 4000 whole contracts (40000 USD) are 0.999975000624... BTC
    declined = await first(dealers, inbox, rfq([inverse_perp()], quantity="1"))
    assert isinstance(declined, Decline), declined
    assert ("1 BTC is not a whole number of BTC/USD:BTC contracts of 10 USD at 40001: 4000 contracts "
            "(rounded down) are 0.999975000624 BTC, a residual of 0.000024999375 BTC") in declined.reason
    quote = await first(dealers, inbox, rfq([inverse_perp()], quantity="1", allow_partial=True))
    assert isinstance(quote, Quote) and quote.quantity == D("0.999975000624")
    await dealers.send_award(DEALER, award_for(quote))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit.order_requests
    assert sent["amount"] == "40000"  # the quote's own contracts, not one fewer
    assert confirm.quantity == D("0.999975000624")
    too_small = await first(dealers, inbox, rfq([inverse_perp()], quantity="0.0002"))
    assert isinstance(too_small, Decline)
    assert "less than one BTC/USD:BTC contract of 10 USD" in too_small.reason


async def test_a_dated_inverse_future_is_bought_in_usd_contracts(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    name = f"BTC-{expiry_name(FUTURE_EXPIRY)}"
    deribit.set_book(name, bids=[("40990", "100000")], asks=[("41000", "100000")])
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    future = leg({"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                  "expiry": FUTURE_EXPIRY.isoformat()}, side="buy")
    quote = await first(dealers, inbox, rfq([future], quantity="0.5", direction="buy"))
    assert isinstance(quote, Quote), quote
    assert quote.quantity == D("0.5") and quote.ask == D(41000) * D("1.0005")
    await dealers.send_award(DEALER, award_for(quote, side=QuoteSide.ASK))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit.order_requests
    assert (sent["instrument_name"], sent["amount"]) == (name, "20500")  # 0.5 BTC * 41000 USD
    assert confirm.quantity == D("0.5")
    assert {q["currency"] for q in deribit.label_lookups} <= {"BTC", "USD"}


async def test_through_the_engine_the_stored_fill_is_what_the_venue_executed_converted_back(
        deribit: FakeDeribit, tmp_path: Path) -> None:
    deribit.set_book(INVERSE, bids=[("40001", "100000")], asks=[("40010", "100000")])
    store = open_store("memory://")
    await store.open()
    dealers = CcxtDealers({DEALER: deribit_config(deribit, tmp_path)})
    market = MarketSnapshot(spot={"BTC": D(40000)}, vol={"BTC": D("0.5")}, rate=D("0.05"), as_of=utc_now())
    mandate = mandate_config(dealers={DEALER: {"credit_limit": "100000000"}})
    engine = RfqEngine(store=store, adapters=[dealers], mandates={"treasury": Mandate("treasury", mandate)},
                       reference=ModelReferenceProvider(market, max_age=None),
                       config=EngineConfig(confirm_timeout_ms=5000))
    await engine.start()
    dealers.exchange(DEALER).timeout_on_exit = 0
    try:
        rfq_id = await engine.submit(RfqSpec.from_dict({
            "legs": [{"instrument": {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"},
                      "side": "sell"}],
            "direction": "sell", "quantity": "1", "quantity_unit": "BTC", "allow_partial": True,
            "dealers": [DEALER], "requester": "alice", "mandate": "treasury", "window_ms": 600}))
        assert await engine.wait(rfq_id, 10) is RfqState.PARTIALLY_FILLED
        [fill] = await store.fills(rfq_id)
        [order] = deribit.orders.values()
        assert order["amount"] == order["filled_amount"] == 40000  # USD, as the venue received it
        executed_btc = D(str(order["filled_amount"])) / D(40001)  # converted back at the quote's price
        assert fill.quantity == executed_btc.quantize(D("1e-12"), rounding="ROUND_FLOOR")
        assert "notional=40000 USD" in fill.dealer_trade_id and "settle=BTC" in fill.dealer_trade_id
        # what positions read from it: an inverse fill of 40000 USD, settled in BTC
        assert fill_terms(fill.dealer_trade_id) == ContractTerms("BTC", inverse=True, notional=D(40000))
    finally:
        await engine.stop()
        await store.close()
