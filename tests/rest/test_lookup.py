"""``RestDealers.query_execution``: which answer is which ``ExecutionState``, and the desk's
half of the contract the answers rest on (units, late orders refused, fencing).

The cases, as ``docs/dealers-rest.md`` ("What a lookup answers") has them:

- no intent in the journal, none being recorded -> NOT_FOUND (never posted), then fenced;
- an intent being recorded -> UNKNOWN;
- the desk answers ``filled`` / ``rejected`` -> CONFIRMED / REJECTED;
- the journal's recorded outcome, when the desk cannot say;
- ``404 not_found`` past ``expires_at + clock_skew_ms`` -> NOT_FOUND;
- ``404`` earlier or without ``not_found``, ``pending``, 5xx, timeout, unreachable,
  unreadable -> UNKNOWN.

Orders the journal holds but the desk never received (a crash between the journal write
and the POST) are written straight into the journal, with ``expires_at`` in the past or
the future, so no test waits for the clock.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.protocol import ExecutionState
from dealer_adapters.rest import RestDealers
from dealer_adapters.rest.adapter import REJECT_FENCED, REST_LOOKUP
from dealer_adapters.rest.journal import Journal, OrderIntent
from rfq_engine.domain import (
    Decline,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    QuoteId,
    RfqId,
    Side,
    new_id,
    utc_now,
)
from tests.adapters.sim_helpers import Inbox, award_for, rfq
from tests.rest.conftest import MakeDesk, desk_config
from tests.rest.fake_desk import FakeDesk

DESK: Any = "desk"


async def started(make_adapter: Any, desk: FakeDesk, state: Path,
                  **overrides: Any) -> tuple[RestDealers, Inbox]:
    adapter = make_adapter({"desk": desk_config(desk, state, **overrides)})
    inbox = Inbox()
    await adapter.start(inbox.sink)
    return adapter, inbox


async def quoted(adapter: RestDealers, inbox: Inbox, **rfq_args: Any) -> Quote:
    await adapter.send_rfq(DESK, rfq(**rfq_args))
    return await inbox.get(Quote, within=5)


def journal_intent(state: Path, *, expires_in_s: float) -> ExecutionId:
    """An intent on disk for an order the desk never received (the POST never left)."""
    eid = ExecutionId(new_id())
    Journal(state / "desk.orders.jsonl").append(OrderIntent(
        execution_id=eid, client_order_id=f"rfq-{eid}", rfq_id=RfqId(new_id()),
        quote_id=QuoteId("Q-x"), desk_quote_id="Q-x", side=Side.SELL, price=Decimal(39990),
        quantity=Decimal(10), sign=1, confirm_by=utc_now() + timedelta(seconds=expires_in_s),
        recorded_at=utc_now(), quantity_unit="BTC"))
    return eid


def test_the_lookup_policy_says_not_found_is_proof() -> None:
    assert REST_LOOKUP.can_query and REST_LOOKUP.not_found_proves_absent
    assert "expires_at + clock_skew_ms" in REST_LOOKUP.note


# --- no intent ---------------------------------------------------------------------------


async def test_no_intent_is_not_found_and_fences_the_id(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox)
    award = award_for(quote)
    lookup = await adapter.query_execution(DESK, award.execution_id)  # before the award arrives
    assert lookup.state is ExecutionState.NOT_FOUND and "no order intent" in lookup.reason
    assert desk.order_gets == {}  # nothing to ask: the journal is the proof

    await adapter.send_award(DESK, award)  # arrives later: refused, never posted
    reject = await inbox.get(ExecutionReject, within=5)
    assert (reject.execution_id, reject.reason) == (award.execution_id, REJECT_FENCED)
    assert desk.order_posts == {} and desk.executed_count == 0
    assert (await adapter.query_execution(DESK, award.execution_id)).state is ExecutionState.NOT_FOUND

    other = award_for(quote)  # other ids trade as usual
    await adapter.send_award(DESK, other)
    await inbox.get(ExecutionConfirm, within=5)
    assert desk.executed_count == 1


async def test_an_intent_being_recorded_is_unknown_and_not_fenced(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, may_finish = threading.Event(), threading.Event()
    original = Journal.append

    def slow_append(self: Journal, record: Any) -> None:
        writing.set()
        assert may_finish.wait(10)
        original(self, record)

    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox)
    award = award_for(quote)
    monkeypatch.setattr(Journal, "append", slow_append)
    send = asyncio.ensure_future(adapter.send_award(DESK, award))
    assert await asyncio.to_thread(writing.wait, 5)
    during = await adapter.query_execution(DESK, award.execution_id)
    assert during.state is ExecutionState.UNKNOWN and during.reason == "the order intent is being recorded"
    may_finish.set()
    await send
    confirm = await inbox.get(ExecutionConfirm, within=5)
    after = await adapter.query_execution(DESK, award.execution_id)
    assert after.state is ExecutionState.CONFIRMED and after.confirm is not None
    assert after.confirm.dealer_trade_id == confirm.dealer_trade_id
    assert desk.executed_count == 1 and list(desk.order_posts.values()) == [1]


# --- 404 -----------------------------------------------------------------------------------


async def test_a_404_proves_absence_only_past_expires_at_plus_the_skew(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    expired = journal_intent(tmp_path, expires_in_s=-2)
    live = journal_intent(tmp_path, expires_in_s=60)
    adapter, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=1000)

    gone = await adapter.query_execution(DESK, expired)
    assert gone.state is ExecutionState.NOT_FOUND
    assert "past expires_at + clock_skew_ms" in gone.reason
    early = await adapter.query_execution(DESK, live)
    assert early.state is ExecutionState.UNKNOWN and "it may still arrive" in early.reason
    assert desk.order_gets == {f"rfq-{expired}": 1, f"rfq-{live}": 1}
    await adapter.close()

    # the same 404 within a wider skew allowance proves nothing yet
    wide, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=5000)
    assert (await wide.query_execution(DESK, expired)).state is ExecutionState.UNKNOWN


async def test_a_404_that_is_not_the_desks_not_found_proves_nothing(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    """A proxy's or a wrong path's 404 (no ``"error": "not_found"``) is not the desk's answer."""
    desk = await make_desk()
    expired = journal_intent(tmp_path, expires_in_s=-60)
    adapter, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=0,
                               base_url=desk.base_url + "/wrong")
    lookup = await adapter.query_execution(DESK, expired)
    assert lookup.state is ExecutionState.UNKNOWN and "without error 'not_found'" in lookup.reason


async def test_a_late_order_is_refused_by_the_desk_and_then_provably_absent(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path, clock_skew_ms=0)
    quote = await quoted(adapter, inbox)
    award = award_for(quote, confirm_by=utc_now() - timedelta(milliseconds=1))
    await adapter.send_award(DESK, award)
    reject = await inbox.get(ExecutionReject, within=5)
    assert reject.reason.startswith("order refused: HTTP 422: order_expired: ")
    assert desk.orders == {} and desk.refused_orders == [(f"rfq-{award.execution_id}", "order_expired")]
    recorded = await adapter.query_execution(DESK, award.execution_id)
    assert recorded.state is ExecutionState.REJECTED and "order_expired" in recorded.reason
    await adapter.close()

    # a crash after the POST, before its answer was journaled: only the intent survives
    journal = tmp_path / "desk.orders.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("".join(f"{x}\n" for x in lines if json.loads(x)["type"] == "intent"))
    again, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=0)
    lookup = await again.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.NOT_FOUND and desk.executed_count == 0


# --- the desk cannot say -------------------------------------------------------------------


async def test_executed_reply_lost_and_lookups_failing_is_unknown_then_confirmed(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path, clock_skew_ms=0,
                                   reconcile_grace_ms=60_000)
    quote = await quoted(adapter, inbox)
    award = award_for(quote, confirm_by=utc_now() + timedelta(seconds=30))
    coid = f"rfq-{award.execution_id}"
    desk.lose_order_reply = True  # the desk executes, the reply never arrives
    desk.fail_gets_for(60)  # ... and its order lookups answer 503
    await adapter.send_award(DESK, award)
    await asyncio.wait_for(desk.order_decided.wait(), 5)
    desk.order_looked_up.clear()
    await asyncio.wait_for(desk.order_looked_up.wait(), 5)  # the adapter asks, never re-posts
    assert desk.executed_count == 1 and desk.order_posts[coid] == 1

    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason.startswith("desk error HTTP 503")
    assert inbox.empty()

    desk.fail_gets_for(0)  # the lookups work again
    confirm = await inbox.get(ExecutionConfirm, within=5)  # the adapter's own reconciliation
    assert confirm.dealer_trade_id == desk.orders[coid].trade_id
    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert desk.order_posts[coid] == 1 and desk.executed_count == 1


async def test_a_5xx_past_expires_at_is_still_unknown(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    expired = journal_intent(tmp_path, expires_in_s=-60)
    desk.fail_gets_for(60)
    adapter, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=0)
    lookup = await adapter.query_execution(DESK, expired)
    assert lookup.state is ExecutionState.UNKNOWN and "HTTP 503" in lookup.reason


async def test_pending_is_unknown_until_the_desk_decides(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path, read_timeout_ms=300,
                                   reconcile_grace_ms=60_000)
    quote = await quoted(adapter, inbox)
    award = award_for(quote, confirm_by=utc_now() + timedelta(seconds=30))
    desk.order_hang_s = 60  # booked as pending, decided when released
    await adapter.send_award(DESK, award)
    await asyncio.wait_for(desk.order_looked_up.wait(), 5)  # the POST timed out; it is asked for
    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason == "order pending at the desk"
    desk.release()
    await inbox.get(ExecutionConfirm, within=5)
    assert (await adapter.query_execution(DESK, award.execution_id)).state is ExecutionState.CONFIRMED


@pytest.mark.parametrize("case", ["hanging", "garbled", "gone"])
async def test_the_desk_cannot_say_is_unknown(
    case: str, make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    expired = journal_intent(tmp_path, expires_in_s=-60)
    if case == "hanging":
        desk.get_hang = True
    elif case == "garbled":
        desk.get_raw = "{not json"
    adapter, _ = await started(make_adapter, desk, tmp_path, clock_skew_ms=0, read_timeout_ms=300)
    if case == "gone":
        await desk.stop()
    lookup = await adapter.query_execution(DESK, expired)
    assert lookup.state is ExecutionState.UNKNOWN
    expected = {"hanging": "desk unreachable: ", "garbled": "unreadable answer from the desk: ",
                "gone": "desk unreachable: "}[case]
    assert lookup.reason.startswith(expected), lookup.reason
    desk.release()


async def test_unserved_and_unstarted_cannot_say(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    expired = journal_intent(tmp_path, expires_in_s=-60)
    adapter = make_adapter({"desk": desk_config(desk, tmp_path, clock_skew_ms=0)})
    lookup = await adapter.query_execution(DESK, expired)  # built, not started: no HTTP yet
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason == "adapter not started"
    never = await adapter.query_execution(DESK, ExecutionId(new_id()))  # the journal still proves
    assert never.state is ExecutionState.NOT_FOUND
    ghost = await adapter.query_execution("ghost", expired)
    assert ghost.state is ExecutionState.UNKNOWN


# --- units and close policy ------------------------------------------------------------------


async def test_quote_requests_and_orders_carry_the_unit(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk()
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    quote = await quoted(adapter, inbox, close_policy="deadline")
    [request] = desk.quote_requests
    assert (request["quantity_unit"], request["close_policy"]) == ("BTC", "deadline")
    await adapter.send_award(DESK, award_for(quote, quantity_unit=""))  # none named: the RFQ's unit
    await inbox.get(ExecutionConfirm, within=5)
    [order] = desk.orders.values()
    assert order.body["quantity_unit"] == "BTC"
    journal = [json.loads(x) for x in (tmp_path / "desk.orders.jsonl").read_text().splitlines()]
    assert journal[0]["quantity_unit"] == "BTC"


async def test_a_unit_the_desk_does_not_trade_is_a_decline_or_a_reject(
    make_desk: MakeDesk, make_adapter: Any, tmp_path: Path
) -> None:
    desk = await make_desk(units=("BTC",))
    adapter, inbox = await started(make_adapter, desk, tmp_path)
    await adapter.send_rfq(DESK, rfq(quantity_unit="contracts"))
    decline = await inbox.get(Decline, within=5)
    assert decline.reason == ("unit contracts not traded by the desk "
                              "(HTTP 422: unsupported_unit: unit contracts not traded)")

    quote = await quoted(adapter, inbox)
    award = award_for(quote, quantity_unit="ETH")
    await adapter.send_award(DESK, award)
    reject = await inbox.get(ExecutionReject, within=5)
    assert reject.reason == ("order refused: unit ETH not traded by the desk "
                             "(HTTP 422: unsupported_unit: unit ETH not traded)")
    assert desk.orders == {} and desk.executed_count == 0
    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.REJECTED and "unit ETH not traded" in lookup.reason
