"""``RestDealers`` on its own against fake desks: the engine side is an ``Inbox`` sink.

Restart and exactly-once, two-way and package requests, sessions, and the refusals that
happen before anything is sent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.protocol import DealerUnavailable, ExecutionState
from dealer_adapters.rest import RestDealers
from dealer_adapters.rest.journal import Journal, OrderIntent
from rfq_engine.domain import (
    Decline,
    Direction,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Leg,
    Perpetual,
    Quote,
    QuoteId,
    QuoteSide,
    RfqClosed,
    Side,
    Spot,
    new_id,
    utc_now,
)
from tests.adapters.sim_helpers import DEC_FUT, Inbox, award_for, collar_legs, rfq
from tests.rest.conftest import MakeDesk, desk_config
from tests.rest.fake_desk import TOKEN, FakeDesk


async def started(make_adapter: Any, desk: FakeDesk, state: Path,
                  **overrides: Any) -> tuple[RestDealers, Inbox]:
    adapter = make_adapter({"desk": desk_config(desk, state, **overrides)})
    inbox = Inbox()
    await adapter.start(inbox.sink)
    return adapter, inbox


async def quoted(adapter: RestDealers, inbox: Inbox, **rfq_args: Any) -> Quote:
    await adapter.send_rfq("desk", rfq(**rfq_args))  # type: ignore[arg-type]
    return await inbox.get(Quote, within=5)


async def test_restart_reconciles_through_the_journal_without_a_second_order(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    first, inbox = await started(make_adapter, desk, tmp_path, connect_timeout_ms=1000, read_timeout_ms=500)
    quote = await quoted(first, inbox)
    award = award_for(quote, confirm_by=utc_now() + timedelta(seconds=30))
    coid = f"rfq-{award.execution_id}"

    desk.order_hang_s = 60  # the desk books the order and holds the answer until released
    await first.send_award("desk", award)  # type: ignore[arg-type]
    journal = (tmp_path / "desk.orders.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in journal] == ["intent"]  # durable before the call
    await asyncio.wait_for(desk.order_arrived.wait(), 5)
    await asyncio.wait_for(desk.order_looked_up.wait(), 5)  # timed out, then asked, never re-sent
    assert desk.orders[coid].status == "pending"
    await first.close()  # the process goes away with the outcome unknown

    desk.release()
    await asyncio.wait_for(desk.order_decided.wait(), 5)
    assert desk.orders[coid].status == "filled"

    second, inbox2 = await started(make_adapter, desk, tmp_path)
    lookup = await second.query_execution("desk", award.execution_id)  # type: ignore[arg-type]
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    confirm = lookup.confirm
    assert (confirm.execution_id, confirm.rfq_id, confirm.quote_id) == (
        award.execution_id, award.rfq_id, award.quote_id)
    assert (confirm.price, confirm.quantity) == (award.price, award.quantity)
    assert confirm.dealer_trade_id == desk.orders[coid].trade_id

    # even if the same award were sent again after the restart, it is asked for, not posted
    await second.send_award("desk", award)  # type: ignore[arg-type]
    again = await inbox2.get(ExecutionConfirm, within=5)
    assert again.price == award.price
    assert desk.order_posts[coid] == 1


async def test_an_intent_without_an_order_is_never_posted_later(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    """A crash between the journal write and the POST: the desk has no order, and none is made."""
    desk = await make_desk()
    eid = ExecutionId(new_id())
    Journal(tmp_path / "desk.orders.jsonl").append(OrderIntent(
        execution_id=eid, client_order_id=f"rfq-{eid}", rfq_id=new_id(),  # type: ignore[arg-type]
        quote_id=QuoteId("Q-x"), desk_quote_id="Q-x", side=Side.SELL, price=Decimal(39990),
        quantity=Decimal(10), sign=1, confirm_by=utc_now() + timedelta(milliseconds=300),
        recorded_at=utc_now()))
    adapter, _ = await started(make_adapter, desk, tmp_path, reconcile_grace_ms=0)
    lookup = await adapter.query_execution("desk", eid)  # type: ignore[arg-type]
    assert lookup.state is ExecutionState.UNKNOWN and "no order" in lookup.reason
    never = await adapter.query_execution("desk", ExecutionId(new_id()))  # type: ignore[arg-type]
    assert never.state is ExecutionState.NOT_FOUND and "no order intent" in never.reason

    await adapter.send_award("desk", award_for_intent(eid))  # type: ignore[arg-type]
    await asyncio.wait_for(desk.order_looked_up.wait(), 5)
    assert desk.order_posts == {}


def award_for_intent(eid: ExecutionId) -> Any:
    from rfq_engine.domain import Award, DealerId, RfqId

    return Award(RfqId(new_id()), QuoteId("Q-x"), DealerId("desk"), QuoteSide.BID, Decimal(39990),
                 Decimal(10), eid, utc_now() + timedelta(milliseconds=300))


async def test_a_duplicate_award_in_flight_is_one_order(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox)
    award = award_for(quote)
    await asyncio.gather(adapter.send_award("desk", award), adapter.send_award("desk", award))  # type: ignore[arg-type]
    confirm = await inbox.get(ExecutionConfirm, within=5)
    assert confirm.quote_id == quote.quote_id and confirm.price == quote.bid
    assert list(desk.order_posts.values()) == [1]


async def test_two_way_per_side_asks_both_sides_and_trades_the_awarded_one(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk(bid="39990", ask="40010")
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    two_way = rfq(legs=(Leg(DEC_FUT, Side.BUY),), direction=Direction.TWO_WAY)
    await adapter.send_rfq("desk", two_way)  # type: ignore[arg-type]
    quote = await inbox.get(Quote, within=5)
    assert (quote.bid, quote.ask) == (Decimal(39990), Decimal(40010))
    sides = sorted((r["side"], r["client_rfq_id"]) for r in desk.quote_requests)
    assert sides == [("buy", f"{two_way.rfq_id}.ask"), ("sell", f"{two_way.rfq_id}.bid")]
    by_side = {q.request["side"]: q.quote_id for q in desk.quotes.values()}
    assert quote.quote_id == f"{by_side['sell']}/{by_side['buy']}"

    await adapter.send_award("desk", award_for(quote, QuoteSide.BID))  # type: ignore[arg-type]
    confirm = await inbox.get(ExecutionConfirm, within=5)
    [order] = desk.orders.values()
    body = order.body
    assert (body["quote_id"], body["side"], body["price"]) == (by_side["sell"], "sell", "39990")
    assert (confirm.quote_id, confirm.price) == (quote.quote_id, Decimal(39990))


async def test_two_way_single_call(make_desk: MakeDesk, make_adapter: Any, tmp_path: Path) -> None:
    desk = await make_desk(bid="39990", ask="40010")
    adapter, inbox = await started(make_adapter, desk, tmp_path, two_way="single_call")
    quote = await quoted(adapter, inbox, legs=(Leg(DEC_FUT, Side.BUY),), direction=Direction.TWO_WAY)
    [request] = desk.quote_requests
    assert request["side"] == "two_way" and quote.quote_id in desk.quotes
    await adapter.send_award("desk", award_for(quote, QuoteSide.ASK))  # type: ignore[arg-type]
    confirm = await inbox.get(ExecutionConfirm, within=5)
    [order] = desk.orders.values()
    assert (order.body["side"], order.body["price"], confirm.price) == ("buy", "40010", Decimal(40010))


async def test_a_leg_written_against_the_package_side_negates_the_price(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    """Selling a one-leg package whose leg buys: the requester buys the instrument at the
    desk's ask, so the package's bid (what the requester receives) is minus that ask."""
    desk = await make_desk(ask="40010")
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox, legs=(Leg(DEC_FUT, Side.BUY),), direction=Direction.SELL)
    assert desk.quote_requests[0]["side"] == "buy"
    assert (quote.bid, quote.ask) == (Decimal(-40010), None)
    await adapter.send_award("desk", award_for(quote, QuoteSide.BID))  # type: ignore[arg-type]
    confirm = await inbox.get(ExecutionConfirm, within=5)
    [order] = desk.orders.values()
    assert (order.body["side"], order.body["price"], confirm.price) == ("buy", "40010", Decimal(-40010))


async def test_packages_are_declined_unless_the_desk_quotes_them(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    await adapter.send_rfq("desk", rfq(legs=collar_legs(), direction=Direction.BUY))  # type: ignore[arg-type]
    decline = await inbox.get(Decline, within=5)
    assert decline.reason.startswith("multi-leg package: this desk quotes single instruments only")
    assert desk.quote_requests == []

    packages = await make_desk(bid="-150")  # a collar's net premium may be negative
    adapter2, inbox2 = await started(make_adapter, packages, tmp_path, quotes_packages=True)
    quote = await quoted(adapter2, inbox2, legs=collar_legs(), direction=Direction.SELL)
    [request] = packages.quote_requests
    # selling the collar: the legs as the requester trades them when selling it
    assert request["side"] == "sell" and quote.bid == Decimal(-150)
    assert [(leg["instrument"], leg["side"]) for leg in request["legs"]] == [
        ("BTC-26FEB27-35000-P", "buy"), ("BTC-26FEB27-50000-C", "sell")]


async def test_instruments_without_a_name_are_declined_before_any_call(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    await adapter.send_rfq("desk", rfq(legs=(Leg(Spot("BTC", "USD"), Side.SELL),)))  # type: ignore[arg-type]
    assert (await inbox.get(Decline)).reason == "instrument not quoted by this desk: spot:BTC:USD"
    await adapter.send_rfq("desk", rfq(legs=(Leg(Perpetual("BTC", "USD"), Side.SELL, Decimal(2)),)))  # type: ignore[arg-type]
    assert (await inbox.get(Decline)).reason.startswith("leg ratio 2: ")
    assert desk.quote_requests == []


async def test_a_declining_desk_and_a_closed_rfq(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    desk.decline_reason = "no appetite"
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    await adapter.send_rfq("desk", rfq())  # type: ignore[arg-type]
    assert (await inbox.get(Decline)).reason == "declined by the desk (HTTP 422: declined: no appetite)"

    desk.decline_reason, desk.quote_hang = None, True
    pending = rfq()
    desk.quote_arrived.clear()
    await adapter.send_rfq("desk", pending)  # type: ignore[arg-type]
    await asyncio.wait_for(desk.quote_arrived.wait(), 5)
    await adapter.send_closed("desk", RfqClosed(pending.rfq_id, "cancelled", False))  # type: ignore[arg-type]
    desk.quote_hang = False
    desk.release()  # the held request is answered now, but the adapter has stopped listening
    later = await quoted(adapter, inbox)
    assert later.rfq_id != pending.rfq_id and inbox.empty()


async def test_one_session_per_desk_reused_and_closed(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    assert adapter.is_online("desk")  # type: ignore[arg-type]
    for _ in range(3):
        quote = await quoted(adapter, inbox)
    await adapter.send_award("desk", award_for(quote))  # type: ignore[arg-type]
    await inbox.get(ExecutionConfirm, within=5)
    assert len(desk.quote_requests) == 3 and len(desk.peers) == 1  # one keep-alive connection
    await adapter.close()
    await adapter.close()  # idempotent
    assert not adapter.is_online("desk")  # type: ignore[arg-type]
    with pytest.raises(DealerUnavailable, match="closed"):
        await adapter.send_rfq("desk", rfq())  # type: ignore[arg-type]


async def test_a_missing_secret_fails_start_naming_the_variable(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk(auth="hmac")
    adapter = make_adapter({"desk": desk_config(desk, tmp_path)}, environ={"DESK_KEY": "k"})
    with pytest.raises(ValueError, match="DESK_SECRET"):
        await adapter.start(Inbox().sink)


async def test_an_intent_that_cannot_be_recorded_sends_nothing(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    state = tmp_path / "state"
    adapter, inbox = await started(make_adapter, desk, state)
    quote = await quoted(adapter, inbox)
    shutil.rmtree(state, ignore_errors=True)
    state.write_text("not a directory")  # the journal cannot be written
    with pytest.raises(DealerUnavailable, match="could not record the order intent"):
        await adapter.send_award("desk", award_for(quote))  # type: ignore[arg-type]
    assert desk.order_posts == {}


async def test_an_order_refused_outright_is_a_reject_known_after_restart(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    """A 4xx to the order means no order exists: rejected with the desk's words, and the
    journal remembers it when the desk (rightly) has no such order."""
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox)
    award = award_for(quote)
    desk.token = "rotated-token"  # the desk revoked the adapter's token: the order is refused
    await adapter.send_award("desk", award)  # type: ignore[arg-type]
    reject = await inbox.get(ExecutionReject, within=5)
    assert desk.orders == {}
    assert reject.reason == "order refused: HTTP 401: unauthorized: bad or missing bearer token"
    await adapter.close()
    desk.token = TOKEN
    again, _ = await started(make_adapter, desk, tmp_path)
    lookup = await again.query_execution("desk", award.execution_id)  # type: ignore[arg-type]
    assert lookup.state is ExecutionState.REJECTED and "HTTP 401" in lookup.reason
