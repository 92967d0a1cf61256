"""A book dealer against the fake OKX through a real ccxt ``okx``: mapping, quotes from
depth, award -> last look -> IOC -> confirm, reconciliation, partial fills, error mapping.

Book served by the fake (BTC-USDT-SWAP, 0.01 BTC per contract):
bids 5 @ 40000, 10 @ 39990; asks 5 @ 40010, 10 @ 40020; taker fee configured at 5 bps.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import structlog

from dealer_adapters.ccxt import CcxtDealers, Journal
from dealer_adapters.protocol import ExecutionState
from rfq_engine.domain import (
    DealerId,
    DealerStatus,
    Decline,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    QuoteSide,
    RfqClosed,
)
from tests.ccxt_dealers.conftest import (
    FUTURE_EXPIRY,
    Inbox,
    Make,
    award_for,
    config,
    leg,
    rfq,
    swap_leg,
)
from tests.ccxt_dealers.fake_okx import FakeOkx

DEALER = DealerId("okx-book")


async def quote_for(dealers: CcxtDealers, inbox: Inbox, message: object, count: int = 1) -> Quote:
    await dealers.send_rfq(DEALER, message)  # type: ignore[arg-type]
    quote: Quote = await inbox.next(Quote, count=count)
    return quote


# --- mapping ---------------------------------------------------------------------------------


async def test_unlisted_instruments_are_declined_with_the_reason(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    unlisted = leg({"kind": "future", "underlying": "BTC", "quote_ccy": "USDT",
                    "expiry": FUTURE_EXPIRY.replace(day=1 if FUTURE_EXPIRY.day != 1 else 2).isoformat()})
    await dealers.send_rfq(DEALER, rfq([unlisted]))
    decline: Decline = await inbox.next(Decline)
    assert decline.dealer_id == DEALER
    assert "is not listed" in decline.reason and "okx" in decline.reason
    assert okx.order_requests == []


async def test_a_listed_future_maps_by_expiry_date(okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    symbol = f"BTC-USDT-{FUTURE_EXPIRY.strftime('%y%m%d')}"
    okx.set_book(symbol, bids=[("41000", "10")], asks=[("41010", "10")])
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    future = leg({"kind": "future", "underlying": "BTC", "quote_ccy": "USDT",
                  "expiry": FUTURE_EXPIRY.isoformat()})
    quote = await quote_for(dealers, inbox, rfq([future]))
    # 0.1 BTC = 10 contracts @ 41000, less 5 bps: 41000 * 0.9995 = 40979.5
    assert quote.bid == D("40979.5") and quote.ask is None and quote.quantity == D("0.1")


async def test_an_inverse_swap_trades_in_contracts_of_100_usd(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    """OKX BTC-USD-SWAP: ``sz`` in contracts of ``ctVal`` 100 USD, settled and charged in BTC."""
    okx.set_book("BTC-USD-SWAP", bids=[("40000", "500")], asks=[("40010", "500")])
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    inverse = leg({"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"})
    quote = await quote_for(dealers, inbox, rfq([inverse], quantity="1"))
    assert quote.quantity == D(1) and quote.bid == D(40000) * D("0.9995")  # 400 contracts, 1 BTC
    await dealers.send_award(DEALER, award_for(quote))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [order] = okx.order_requests
    assert (order["instId"], order["sz"], order["px"]) == ("BTC-USD-SWAP", "400", "40000")
    assert confirm.quantity == D(1)  # 400 * 100 USD / 40000
    assert "fee=0.0005 BTC" in confirm.dealer_trade_id and "notional=40000 USD" in confirm.dealer_trade_id


# --- quoting from depth -------------------------------------------------------------------------


async def test_quote_is_the_fee_inclusive_vwap_for_the_size(okx: FakeOkx, tmp_path: Path,
                                                            make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq(quantity="0.1"))
    # sell 10 contracts: 5 @ 40000 + 5 @ 39990 = 39995, less 5 bps = 39975.0025
    assert (quote.bid, quote.ask, quote.quantity) == (D("39975.0025"), None, D("0.1"))
    validity = (quote.valid_until - quote.received_at).total_seconds()
    assert 1.5 < validity <= 2.0  # quote_validity_ms defaults to 2000


async def test_two_way_quotes_both_sides(okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq([swap_leg("buy")], direction="two_way"))
    # ask: 5 @ 40010 + 5 @ 40020 = 40015 * 1.0005 = 40035.0075; bid as above
    assert quote.ask == D("40035.0075") and quote.bid == D("39975.0025")


async def test_the_market_taker_fee_applies_when_none_is_configured(okx: FakeOkx, tmp_path: Path,
                                                                    make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path, taker_fee=None)})
    spot = leg({"kind": "spot", "underlying": "BTC", "quote_ccy": "USDT"}, side="buy")
    quote = await quote_for(dealers, inbox, rfq([spot], direction="buy", quantity="0.5"))
    # OKX lists spot at 15 bps taker: 40005 * 1.0015 = 40065.0075
    assert quote.ask == D("40065.0075")


async def test_thin_book_partial_quote_or_decline(okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    # the bids hold 15 contracts = 0.15 BTC
    quote = await quote_for(dealers, inbox, rfq(quantity="0.2", allow_partial=True))
    assert quote.quantity == D("0.15")
    # 5 @ 40000 + 10 @ 39990 = 599900 / 15 = 39993.333..., less 5 bps, rounded down to 0.0001
    assert quote.bid == D("39973.3366")
    await dealers.send_rfq(DEALER, rfq(quantity="0.2"))
    decline = await inbox.next(Decline)
    assert "hold 0.15 of 0.2 BTC" in decline.reason


async def test_multi_leg_packages_are_declined_never_legged(okx: FakeOkx, tmp_path: Path,
                                                           make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    spot = leg({"kind": "spot", "underlying": "BTC", "quote_ccy": "USDT"}, side="buy")
    await dealers.send_rfq(DEALER, rfq([swap_leg("sell"), spot]))
    decline = await inbox.next(Decline)
    assert "2-leg package is not executed leg by leg" in decline.reason


async def test_quotes_are_refreshed_until_the_deadline(okx: FakeOkx, tmp_path: Path,
                                                       make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path, quote_validity_ms=400,
                                                        requote_interval_ms=100)})
    message = rfq(window_s=0.6)
    first = await quote_for(dealers, inbox, message)
    okx.set_book("BTC-USDT-SWAP", bids=[("40100", "50")], asks=[("40110", "50")])
    second: Quote = await inbox.next(Quote, count=2)
    assert second.quote_id != first.quote_id and second.bid == D("40079.95")  # 40100 * 0.9995
    await dealers.idle()  # the loop ends by itself at the deadline
    assert len(inbox.of(Quote)) <= 7


# --- execution -----------------------------------------------------------------------------------


async def test_award_runs_last_look_then_one_ioc_order_and_confirms(okx: FakeOkx, tmp_path: Path,
                                                                    make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq())
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert (confirm.execution_id, confirm.price) == (award.execution_id, award.price)
    assert confirm.quantity == D("0.1")
    [order] = okx.order_requests
    assert order["ordType"] == "ioc" and order["side"] == "sell" and order["instId"] == "BTC-USDT-SWAP"
    assert (order["sz"], order["px"]) == ("10", "39990")  # the deepest level the quote walked
    assert order["clOrdId"].startswith("rfq") and len(order["clOrdId"]) == 32
    # the fill: avg 39995, fee 0.1 * 39995 * 0.0005 = 1.99975 USDT; all-in 39975.0025 = the quote
    assert confirm.dealer_trade_id.startswith("okx:")
    assert "avg=39995" in confirm.dealer_trade_id and "fee=1.99975 USDT" in confirm.dealer_trade_id
    entry = dealers.journal_entry(DEALER, award.execution_id)
    assert entry is not None and entry.intent is not None and entry.outcome is not None
    assert entry.intent["client_order_id"] == order["clOrdId"]
    assert entry.intent["client_order_field"] == "clOrdId"
    assert entry.outcome["details"]["improvement_bps"] == "0"
    # the same award again: the same answer, no second order
    await dealers.send_award(DEALER, award)
    again: ExecutionConfirm = await inbox.next(ExecutionConfirm, count=2)
    assert again.dealer_trade_id == confirm.dealer_trade_id and len(okx.order_requests) == 1


async def test_an_improved_book_fills_better_and_the_improvement_is_recorded(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq())
    okx.set_book("BTC-USDT-SWAP", bids=[("40010", "20")], asks=[("40020", "20")])
    await dealers.send_award(DEALER, award_for(quote))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.price == quote.bid  # the engine's rule: the awarded price, exactly
    assert "avg=40010" in confirm.dealer_trade_id
    # all-in 40010 * 0.9995 = 39989.995 vs the quoted 39975.0025: +3.75 bps for the requester
    assert "improvement_bps=3.75" in confirm.dealer_trade_id


async def test_last_look_rejects_a_move_beyond_the_tolerance(okx: FakeOkx, tmp_path: Path,
                                                            make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path, last_look_tolerance_bps="10")})
    quote = await quote_for(dealers, inbox, rfq())
    okx.set_book("BTC-USDT-SWAP", bids=[("39900", "20")], asks=[("39910", "20")])
    await dealers.send_award(DEALER, award_for(quote))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    # 39900 * 0.9995 = 39880.05 vs 39975.0025: 23.75 bps against the quote
    assert "moved 23.75 bps against the quote (tolerance 10 bps)" in reject.reason
    assert okx.order_requests == []


async def test_timeout_on_create_order_is_reconciled_by_client_order_id(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path, timeout_ms=300)})
    quote = await quote_for(dealers, inbox, rfq())
    okx.order_mode, okx.hide_lookups = "slow", 2  # booked at once, answered after 1.5 s
    award = award_for(quote)
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award)
        confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.quantity == D("0.1") and confirm.price == award.price
    assert len(okx.order_requests) == 1  # never a second order
    by_client_id = [q for q in okx.lookups if "clOrdId" in q]
    assert len(by_client_id) >= 3 and by_client_id[0]["clOrdId"] == okx.order_requests[0]["clOrdId"]
    assert any(e["event"] == "ccxt_order_call_failed" and "RequestTimeout" in e["error"] for e in logs)


async def test_a_partial_fill_confirms_the_filled_quantity(okx: FakeOkx, tmp_path: Path,
                                                          make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path, last_look_tolerance_bps="50")})
    quote = await quote_for(dealers, inbox, rfq(quantity="0.1", allow_partial=True))
    okx.set_book("BTC-USDT-SWAP", bids=[("40000", "4")], asks=[("40010", "4")])  # 0.04 BTC left
    await dealers.send_award(DEALER, award_for(quote))
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert confirm.quantity == D("0.04") and confirm.price == quote.bid
    assert okx.order_requests[0]["sz"] == "10"  # the IOC asked for all, the venue filled what it had
    assert "avg=40000" in confirm.dealer_trade_id and "fee=0.8 USDT" in confirm.dealer_trade_id


async def test_insufficient_funds_is_a_reject_with_the_venue_reason(okx: FakeOkx, tmp_path: Path,
                                                                   make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq())
    okx.order_mode = "insufficient"
    await dealers.send_award(DEALER, award_for(quote))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert "InsufficientFunds" in reject.reason and "Insufficient USDT margin" in reject.reason
    assert len(okx.order_requests) == 1 and okx.lookups == []


async def test_authentication_error_marks_the_dealer_down(okx: FakeOkx, tmp_path: Path,
                                                          make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    quote = await quote_for(dealers, inbox, rfq())
    okx.auth_ok = False
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award_for(quote))
        reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert "authentication failed" in reject.reason and "AuthenticationError" in reject.reason
    status = inbox.of(DealerStatus)[-1]
    assert status.online is False and not dealers.is_online(DEALER)
    alert = [e for e in logs if e["event"] == "ccxt_dealer_auth_failed"]
    assert alert and alert[0]["log_level"] == "error" and alert[0]["alert"] is True


async def test_unresolved_intent_is_reconciled_after_a_restart_never_resent(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    cfg = config(okx, tmp_path)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox, rfq())
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    await inbox.next(ExecutionConfirm)
    # simulate a crash between the order call and its outcome: drop the outcome line
    lines = cfg.journal_path.read_text().splitlines()
    cfg.journal_path.write_text("\n".join(line for line in lines if '"kind":"outcome"' not in line) + "\n")
    assert Journal(cfg.journal_path).load()[(DEALER, award.execution_id)].unresolved
    restarted, inbox2 = await make_dealers({DEALER: cfg})
    lookup = await restarted.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert lookup.confirm.quantity == D("0.1") and lookup.confirm.price == award.price
    await restarted.send_award(DEALER, award)  # a re-sent award after the restart
    await inbox2.next(ExecutionConfirm)
    assert len(okx.order_requests) == 1
    never = await restarted.query_execution(DEALER, ExecutionId("never-awarded"))
    assert never.state is ExecutionState.NOT_FOUND  # no intent in the journal: never placed


async def test_an_award_for_an_unknown_quote_is_rejected_and_closing_forgets_quotes(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: config(okx, tmp_path)})
    message = rfq()
    quote = await quote_for(dealers, inbox, message)
    await dealers.send_closed(DEALER, RfqClosed(message.rfq_id, "not_filled", False))
    await dealers.send_award(DEALER, award_for(quote, side=QuoteSide.BID))
    reject = await inbox.next(ExecutionReject)
    assert "no live quote" in reject.reason and okx.order_requests == []


async def test_a_rate_limited_order_backs_off_looks_up_and_is_rejected_saying_rate_limit(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    cfg = config(okx, tmp_path, rate_limit_backoff_ms=100, reconcile_timeout_ms=300)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox, rfq())
    okx.order_mode = "ratelimit"
    award = award_for(quote, confirm_s=0.8)
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award)
        reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert reject.reason.startswith("rate limit: okx refused the order call") and "clOrdId=" in reject.reason
    assert inbox.of(ExecutionConfirm) == []
    assert len(okx.order_requests) == 1  # backed off and looked it up; never sent again
    assert [q["clOrdId"] for q in okx.lookups] and all("clOrdId" in q for q in okx.lookups)
    assert "ccxt_order_rate_limited" in [e["event"] for e in logs]
    lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.REJECTED and "rate limit" in lookup.reason


async def test_a_rate_limited_order_whose_look_up_fails_stays_unknown(
        okx: FakeOkx, tmp_path: Path, make_dealers: Make) -> None:
    cfg = config(okx, tmp_path, rate_limit_backoff_ms=50, reconcile_timeout_ms=300)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox, rfq())
    okx.order_mode = "ratelimit"
    okx.lookups_fail = True
    award = award_for(quote, confirm_s=0.8)
    await dealers.send_award(DEALER, award)
    await dealers.idle()
    # the look-up could not say: "not found" was never established, so no reject is made up
    assert inbox.of(ExecutionReject) == [] and inbox.of(ExecutionConfirm) == []
    assert len(okx.order_requests) == 1
    lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN
    entry = dealers.journal_entry(DEALER, award.execution_id)
    assert entry is not None and entry.unresolved
