"""Issue 12 on the adapter's side: a Deribit book dealer against the fake Deribit, through a
real ccxt ``deribit``.

The bug: ccxt does not map ``clientOrderId`` to Deribit's ``label``, so the order carried no
key, every look-up "did not find" it, and a filled order whose reply was lost looked
unplaced. Here the key travels in ``label``, a lost reply is found by
``private/get_order_state_by_label``, and ``query_execution`` answers NOT_FOUND only for an
execution id the journal proves was never placed.

Book served (BTC_USDC spot, amounts in BTC): bids 0.05 @ 40000, 0.1 @ 39990; asks
0.05 @ 40010, 0.1 @ 40020; taker fee configured at 5 bps.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import structlog

from dealer_adapters.ccxt import CcxtDealers, Journal
from dealer_adapters.ccxt.dialects import derive_key, dialect_for
from dealer_adapters.protocol import ExecutionState
from rfq_engine.domain import (
    DealerId,
    DealerStatus,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    new_id,
)
from tests.ccxt_dealers.conftest import Inbox, Make, award_for, deribit_config, leg, rfq
from tests.ccxt_dealers.fake_deribit import API_KEY, SECRET, FakeDeribit

DEALER = DealerId("deribit-book")
DERIBIT = dialect_for("deribit")
assert DERIBIT is not None


def spot_sell() -> object:
    return rfq([leg({"kind": "spot", "underlying": "BTC", "quote_ccy": "USDC"}, side="sell")], quantity="0.1")


async def quote_for(dealers: CcxtDealers, inbox: Inbox, count: int = 1) -> Quote:
    await dealers.send_rfq(DEALER, spot_sell())  # type: ignore[arg-type]
    quote: Quote = await inbox.next(Quote, count=count)
    return quote


def key_of(execution_id: str) -> str:
    assert DERIBIT is not None
    return derive_key(DERIBIT, execution_id, "rfq")


# --- the bug, as ccxt has it -------------------------------------------------------------------


async def test_ccxt_does_not_map_client_order_id_to_the_deribit_label(deribit: FakeDeribit) -> None:
    """Why the adapter sends ``label`` itself: ccxt's unified param never becomes one."""
    import ccxt.async_support as ccxt_async

    exchange = ccxt_async.deribit({"apiKey": API_KEY, "secret": SECRET, "enableRateLimit": False})
    exchange.urls["api"] = {**exchange.urls["api"], "rest": deribit.url}
    exchange.timeout_on_exit = 0
    try:
        await exchange.load_markets()
        try:
            await exchange.create_order("BTC/USDC", "limit", "sell", "0.01", "40000",
                                        {"clientOrderId": "rfqabc", "timeInForce": "IOC"})
        except Exception as exc:  # the fake refuses an order without a label
            assert "bad_request" in str(exc)
    finally:
        await exchange.close()
    [sent] = deribit.order_requests
    assert "label" not in sent and sent["clientOrderId"] == "rfqabc"  # a stray param Deribit ignores
    assert deribit.problems and deribit.executed == 0


# --- (a) and (b): the key in label; a lost reply found by label ----------------------------------


async def test_placement_sends_the_derived_key_as_label(deribit: FakeDeribit, tmp_path: Path,
                                                        make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path)})
    quote = await quote_for(dealers, inbox)
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    [sent] = deribit.order_requests
    assert sent["label"] == key_of(award.execution_id) and "clientOrderId" not in sent
    assert sent["time_in_force"] == "immediate_or_cancel" and sent["instrument_name"] == "BTC_USDC"
    assert (sent["amount"], sent["price"]) == ("0.1", "39990")
    assert deribit.problems == [] and deribit.executed == 1
    assert confirm.quantity == D("0.1") and confirm.price == award.price
    assert confirm.dealer_trade_id.startswith("deribit:BTC-") and "avg=39995" in confirm.dealer_trade_id
    entry = dealers.journal_entry(DEALER, award.execution_id)
    assert entry is not None and entry.intent is not None
    assert entry.intent["client_order_field"] == "label"
    assert entry.intent["venue_lookup"] == {"symbol": "BTC/USDC", "currencies": ["BTC", "USDC"]}
    policy = dealers.lookup_policy(DEALER)
    assert (policy.key, policy.can_query, policy.not_found_proves_absent) == ("Deribit label", True, True)


async def test_a_lost_reply_after_the_fill_is_found_by_label_and_never_sent_twice(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path, timeout_ms=300)})
    quote = await quote_for(dealers, inbox)
    deribit.order_mode, deribit.hide_lookups = "slow", 2  # filled at once, answered after 1.5 s
    award = award_for(quote)
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award)
        in_flight = await dealers.query_execution(DEALER, award.execution_id)
        await dealers.send_award(DEALER, award)  # the engine re-sends while the call is out
        confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
    assert in_flight.state is ExecutionState.UNKNOWN  # never NOT_FOUND while an award runs
    assert any(e["event"] == "ccxt_order_call_failed" and "RequestTimeout" in e["error"] for e in logs)
    key = key_of(award.execution_id)
    assert len(deribit.order_requests) == 1 and deribit.executed == 1
    assert len(deribit.label_lookups) >= 3 and {q["label"] for q in deribit.label_lookups} == {key}
    assert confirm.quantity == D("0.1") and confirm.price == award.price
    lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert lookup.confirm.dealer_trade_id == confirm.dealer_trade_id
    await dealers.send_award(DEALER, award)  # a duplicate award after the outcome
    again: ExecutionConfirm = await inbox.next(ExecutionConfirm, count=2)
    assert again.dealer_trade_id == confirm.dealer_trade_id
    assert len(deribit.order_requests) == 1 and deribit.executed == 1 and deribit.problems == []


async def test_after_a_crash_query_execution_finds_the_fill_by_label(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(deribit, tmp_path)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox)
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    await inbox.next(ExecutionConfirm)
    await dealers.close()
    # a crash between the order call and its outcome: the journal holds the intent only
    lines = cfg.journal_path.read_text().splitlines()
    cfg.journal_path.write_text("\n".join(line for line in lines if '"kind":"outcome"' not in line) + "\n")
    assert Journal(cfg.journal_path).load()[(DEALER, award.execution_id)].unresolved
    restarted, inbox2 = await make_dealers({DEALER: cfg})
    lookup = await restarted.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert lookup.confirm.quantity == D("0.1") and lookup.confirm.price == award.price
    assert {q["label"] for q in deribit.label_lookups} == {key_of(award.execution_id)}
    await restarted.send_award(DEALER, award)  # the engine's recovery re-sends the award
    await inbox2.next(ExecutionConfirm)
    assert len(deribit.order_requests) == 1 and deribit.executed == 1


# --- (c): never placed -> NOT_FOUND, and the id is fenced --------------------------------------


async def test_an_execution_never_placed_is_not_found_and_fenced(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(deribit, tmp_path)
    dealers, inbox = await make_dealers({DEALER: cfg})
    never = ExecutionId(new_id())
    lookup = await dealers.query_execution(DEALER, never)
    assert lookup.state is ExecutionState.NOT_FOUND and "no order was ever placed" in lookup.reason
    assert deribit.label_lookups == []  # proven by the journal, not by asking the venue
    fences = [json.loads(line) for line in cfg.journal_path.read_text().splitlines()]
    assert [(f["kind"], f["execution_id"]) for f in fences] == [("fence", never)]
    # an award with the fenced id is refused, never placed: "not found" stays true
    quote = await quote_for(dealers, inbox)
    await dealers.send_award(DEALER, award_for(quote, execution_id=never))
    reject: ExecutionReject = await inbox.next(ExecutionReject)
    assert "fenced" in reject.reason and deribit.order_requests == []
    await dealers.close()
    restarted, _inbox2 = await make_dealers({DEALER: cfg})
    again = await restarted.query_execution(DEALER, never)
    assert again.state is ExecutionState.NOT_FOUND
    assert len(cfg.journal_path.read_text().splitlines()) == 1  # fenced once


# --- (d): placement began, the venue has no such label -> UNKNOWN ------------------------------


async def test_an_order_sent_but_unknown_to_the_venue_stays_unknown(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(deribit, tmp_path, timeout_ms=300, reconcile_timeout_ms=400)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox)
    deribit.order_mode = "lost"  # the request arrives, nothing is booked, the reply is too late
    award = award_for(quote, confirm_s=1.0)
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award)
        await dealers.idle()  # the confirm window, then the background reconciliation
    assert inbox.of(ExecutionConfirm) == [] and inbox.of(ExecutionReject) == []  # nothing made up
    assert len(deribit.order_requests) == 1 and deribit.executed == 0
    key = key_of(award.execution_id)
    assert deribit.label_lookups and {q["label"] for q in deribit.label_lookups} == {key}
    assert {q["currency"] for q in deribit.label_lookups} == {"BTC", "USDC"}  # every currency asked
    manual = [e for e in logs if e["event"] == "ccxt_execution_needs_manual_reconciliation"]
    assert manual and manual[0]["alert"] is True and manual[0]["field"] == "label"
    lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and key in lookup.reason
    await dealers.close()
    restarted, _inbox2 = await make_dealers({DEALER: cfg})
    after_restart = await restarted.query_execution(DEALER, award.execution_id)
    assert after_restart.state is ExecutionState.UNKNOWN  # an intent is never "not found"
    assert len(deribit.order_requests) == 1


async def test_an_unreachable_venue_is_unknown_not_not_found(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(deribit, tmp_path, timeout_ms=300, reconcile_timeout_ms=300)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox)
    deribit.order_mode = "lost"
    award = award_for(quote, confirm_s=0.8)
    await dealers.send_award(DEALER, award)
    await dealers.idle()
    await deribit.stop()  # the venue goes away: the look-up itself fails
    lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN
    assert dealers.journal_entry(DEALER, award.execution_id) is not None


async def test_a_journaled_fill_whose_confirm_does_not_validate_is_unknown_not_rejected(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    cfg = deribit_config(deribit, tmp_path)
    dealers, inbox = await make_dealers({DEALER: cfg})
    quote = await quote_for(dealers, inbox)
    award = award_for(quote)
    await dealers.send_award(DEALER, award)
    await inbox.next(ExecutionConfirm)
    await dealers.close()
    records = [json.loads(line) for line in cfg.journal_path.read_text().splitlines()]
    for record in records:
        if record["kind"] == "outcome":
            record["quantity"] = "-1"  # a damaged line: not a valid confirm
    cfg.journal_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    restarted, _inbox2 = await make_dealers({DEALER: cfg})
    lookup = await restarted.query_execution(DEALER, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and "does not validate" in lookup.reason


async def test_credentials_lost_after_the_order_left_is_unknown_never_a_reject(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    """The order filled, its reply was lost, and the API key was revoked before the adapter
    could read it back: the venue holds a trade the adapter cannot see. That is an unknown
    outcome (the engine must not award the next quote), never a reject."""
    dealers, inbox = await make_dealers({DEALER: deribit_config(deribit, tmp_path, timeout_ms=300)})
    quote = await quote_for(dealers, inbox)
    deribit.order_mode, deribit.revoke_after_order = "slow", True
    award = award_for(quote)
    with structlog.testing.capture_logs() as logs:
        await dealers.send_award(DEALER, award)
        down: DealerStatus = await inbox.next(DealerStatus, count=2)  # after the first "online"
        lookup = await dealers.query_execution(DEALER, award.execution_id)
    assert not down.online
    assert deribit.executed == 1
    assert inbox.of(ExecutionReject) == [] and inbox.of(ExecutionConfirm) == []  # never a "no"
    assert lookup.state is ExecutionState.UNKNOWN
    assert any(e["event"] == "ccxt_execution_needs_manual_reconciliation" for e in logs)
