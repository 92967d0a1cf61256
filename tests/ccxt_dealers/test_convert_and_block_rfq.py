"""Venues with their own RFQ: OKX convert (firm quote with an expiry, accepted by id) and the
OKX block RFQ (one dealer whose quote is the best maker quote), against the fake OKX."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from rfq_engine.domain import (
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionReject,
    Quote,
    QuoteSide,
    RfqClosed,
)
from tests.ccxt_dealers.conftest import FUTURE_EXPIRY, Make, award_for, config, leg, rfq, swap_leg
from tests.ccxt_dealers.fake_okx import FakeOkx

CONVERT = DealerId("okx-convert")
BLOCK = DealerId("okx-block")
SPOT = {"kind": "spot", "underlying": "BTC", "quote_ccy": "USDT"}
FUTURE_ID = f"BTC-USDT-{FUTURE_EXPIRY.strftime('%y%m%d')}"


async def test_convert_quote_then_accept_by_id(okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({CONVERT: config(okx, tmp_path, mode="convert")})
    await dealers.send_rfq(CONVERT, rfq([leg(SPOT)], quantity="0.5"))
    quote: Quote = await inbox.next(Quote)
    assert quote.bid == D("40000.5") and quote.quantity == D("0.5")
    estimate = okx.convert_requests[0]
    assert (estimate["baseCcy"], estimate["quoteCcy"], estimate["side"]) == ("BTC", "USDT", "sell")
    assert (estimate["rfqSz"], estimate["rfqSzCcy"]) == ("0.5", "BTC")
    # the venue's ttlMs (10 s) less the 100 ms margin, not the 2 s book validity
    assert 9.0 < (quote.valid_until - quote.received_at).total_seconds() <= 9.9
    award = award_for(quote)
    await dealers.send_award(CONVERT, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.price == D("40000.5") and confirm.quantity == D("0.5")
    assert confirm.dealer_trade_id.startswith("okx:convert:trader")
    trade = okx.convert_requests[-1]
    assert trade["quoteId"].startswith("quoterBTC-USDT") and trade["side"] == "sell"
    assert trade["clTReqId"].startswith("rfq") and len(trade["clTReqId"]) == 32


async def test_convert_two_way_buys_an_exact_base_amount_on_okx(okx: FakeOkx, tmp_path: Path,
                                                                make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({CONVERT: config(okx, tmp_path, mode="convert")})
    await dealers.send_rfq(CONVERT, rfq([leg(SPOT, side="buy")], quantity="0.5", direction="two_way"))
    quote: Quote = await inbox.next(Quote)
    assert (quote.bid, quote.ask) == (D("40000.5"), D("40010.5"))
    buy = next(r for r in okx.convert_requests if r["side"] == "buy")
    assert (buy["baseCcy"], buy["rfqSzCcy"], buy["rfqSz"]) == ("BTC", "BTC", "0.5")
    # an award for a different size than the firm quote is refused, never re-quoted silently
    await dealers.send_award(CONVERT, award_for(quote, side=QuoteSide.ASK, quantity=D("0.2")))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert "firm for exactly 0.5" in reject.reason


async def test_convert_declines_what_is_not_a_spot_conversion(okx: FakeOkx, tmp_path: Path,
                                                               make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({CONVERT: config(okx, tmp_path, mode="convert")})
    await dealers.send_rfq(CONVERT, rfq())
    decline: Decline = await inbox.next(Decline)
    assert "only single-leg spot conversions" in decline.reason


async def test_okx_block_rfq_best_maker_quote_then_execute(okx: FakeOkx, tmp_path: Path,
                                                           make_dealers: Make) -> None:
    cfg = config(okx, tmp_path, mode="okx_rfq", rfq_counterparties=["MM0", "MM1", "MM2"],
                 rfq_poll_interval_ms=100)
    dealers, inbox = await make_dealers({BLOCK: cfg})
    # a calendar roll, sold: sell the perpetual, buy the dated future, 1 BTC each (100 contracts)
    future = leg({"kind": "future", "underlying": "BTC", "quote_ccy": "USDT",
                  "expiry": FUTURE_EXPIRY.isoformat()}, side="buy")
    okx.maker_quotes = [
        {"quoteSide": "buy", "px": {"BTC-USDT-SWAP": "40000", FUTURE_ID: "40500"}},  # bid -500
        {"quoteSide": "buy", "px": {"BTC-USDT-SWAP": "40010", FUTURE_ID: "40480"}},  # bid -470: best
        {"quoteSide": "sell", "px": {"BTC-USDT-SWAP": "39000", FUTURE_ID: "41000"}},  # the other side
    ]
    message = rfq([swap_leg("sell"), future], quantity="1", window_s=2)
    await dealers.send_rfq(BLOCK, message)
    quote: Quote = await inbox.next(Quote)
    assert quote.bid == D(-470) and quote.ask is None and quote.quantity == D(1)
    kind, created = okx.rfq_requests[0]
    assert kind == "create" and created["counterparties"] == ["MM0", "MM1", "MM2"]
    assert [(x["instId"], x["sz"], x["side"]) for x in created["legs"]] == [
        ("BTC-USDT-SWAP", "100", "sell"), (FUTURE_ID, "100", "buy")]
    award = award_for(quote)
    await dealers.send_award(BLOCK, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.price == D(-470) and confirm.quantity == D(1)
    assert confirm.dealer_trade_id.startswith("okx:block:") and "fees=-0.5 USDT" in confirm.dealer_trade_id
    executed = [body for k, body in okx.rfq_requests if k == "execute"]
    assert len(executed) == 1 and executed[0]["quoteId"].endswith("-q1")
    await dealers.send_closed(BLOCK, RfqClosed(message.rfq_id, "filled", True))
    await dealers.idle()
    assert not [k for k, _ in okx.rfq_requests if k == "cancel"]  # a traded RFQ is not cancelled


async def test_okx_block_rfq_is_cancelled_when_the_rfq_closes_without_a_trade(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    cfg = config(okx, tmp_path, mode="okx_rfq", rfq_counterparties=["MM0"], rfq_poll_interval_ms=100)
    dealers, inbox = await make_dealers({BLOCK: cfg})
    okx.maker_quotes = [{"quoteSide": "buy", "px": {"BTC-USDT-SWAP": "39950"}}]
    message = rfq(quantity="0.5")
    await dealers.send_rfq(BLOCK, message)
    quote: Quote = await inbox.next(Quote)
    assert quote.bid == D(39950)
    await dealers.send_closed(BLOCK, RfqClosed(message.rfq_id, "not_filled", False))
    await dealers.idle()
    cancels = [body for k, body in okx.rfq_requests if k == "cancel"]
    assert len(cancels) == 1 and okx.rfqs[cancels[0]["rfqId"]]["state"] == "canceled"


async def test_okx_block_rfq_declines_when_no_maker_quotes(okx: FakeOkx, tmp_path: Path,
                                                           make_dealers: Make) -> None:
    cfg = config(okx, tmp_path, mode="okx_rfq", rfq_counterparties=["MM0"], rfq_poll_interval_ms=100)
    dealers, inbox = await make_dealers({BLOCK: cfg})
    await dealers.send_rfq(BLOCK, rfq(window_s=0.5))
    decline: Decline = await inbox.next(Decline)
    assert "no quote before the deadline" in decline.reason
