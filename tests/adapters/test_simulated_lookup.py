"""What a simulated desk answers ``query_execution``, and why that answer can be trusted.

- A booking the engine's send timeout cancels is never lost: the desk books it, answers it,
  and a lookup says CONFIRMED (issue 12: a cancelled ``to_thread`` ledger write used to
  leave the trade in the ledger and "no record" in the desk's answer).
- UNKNOWN while a booking is in progress or the desk is offline; NOT_FOUND only when it has
  no record and nothing in progress, and from then on the id is fenced: an award for it is
  rejected, never booked (``SIMULATED_LOOKUP.not_found_proves_absent``).
- A confirm lost after the trade (``lose_confirm_rate``), the desk's quantity units, and
  ``executed_count``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.protocol import ExecutionState
from dealer_adapters.simulated import REJECT_FENCED, SIMULATED_LOOKUP, Ledger, SimulatedDealers
from rfq_engine.domain import (
    DealerId,
    Decline,
    Direction,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    HashpriceNdf,
    Leg,
    Quote,
    Side,
    new_id,
)
from tests.adapters.sim_helpers import Inbox, award_for, fast, rfq, start_dealers

A, B = DealerId("desk-a"), DealerId("desk-b")


async def quote_from(sim: SimulatedDealers, inbox: Inbox, dealer: DealerId = A, **kw: Any) -> Quote:
    await sim.send_rfq(dealer, rfq(**kw))
    return await inbox.get(Quote)


def ledger_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_lookup_policy_says_not_found_is_proof() -> None:
    assert SIMULATED_LOOKUP.can_query and SIMULATED_LOOKUP.not_found_proves_absent
    assert SIMULATED_LOOKUP.key == "execution_id"


async def test_a_booking_slower_than_the_send_timeout_survives_and_is_confirmed(
    make_dealers: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "a.jsonl"
    sim, inbox = await make_dealers({A: fast(book_latency_ms=300.0, ledger_path=ledger)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    with pytest.raises(TimeoutError):  # the engine's send_timeout_ms gives up on the call
        await asyncio.wait_for(sim.send_award(A, award), 0.05)

    during = await sim.query_execution(A, award.execution_id)
    assert during.state is ExecutionState.UNKNOWN and during.reason == "booking in progress"
    assert sim.executed_count(A) == 0

    confirm = await inbox.get(ExecutionConfirm, within=5)  # the booking went on; its answer came
    assert confirm.execution_id == award.execution_id
    after = await sim.query_execution(A, award.execution_id)
    assert after.state is ExecutionState.CONFIRMED and after.confirm is not None
    assert after.confirm.dealer_trade_id == confirm.dealer_trade_id
    assert [(r["execution_id"], r["outcome"]) for r in ledger_lines(ledger)] == [
        (award.execution_id, "confirmed")]
    assert sim.executed_count(A) == 1 and len(sim.trades(A)) == 1


async def test_a_send_cancelled_during_the_ledger_write_never_loses_the_booking(
    make_dealers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact failure of issue 12: the caller is cancelled while the worker thread writes."""
    ledger = tmp_path / "a.jsonl"
    writing, may_finish = threading.Event(), threading.Event()
    original = Ledger.append

    def slow_append(self: Ledger, record: Any) -> None:
        writing.set()
        assert may_finish.wait(10)
        original(self, record)

    monkeypatch.setattr(Ledger, "append", slow_append)
    sim, inbox = await make_dealers({A: fast(ledger_path=ledger)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    send = asyncio.ensure_future(sim.send_award(A, award))
    assert await asyncio.to_thread(writing.wait, 5)  # the thread is mid-write
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert (await sim.query_execution(A, award.execution_id)).state is ExecutionState.UNKNOWN
    may_finish.set()

    confirm = await inbox.get(ExecutionConfirm, within=5)
    lookup = await sim.query_execution(A, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert lookup.confirm.dealer_trade_id == confirm.dealer_trade_id
    assert len(ledger_lines(ledger)) == 1 and sim.executed_count(A) == 1


async def test_a_duplicate_award_during_a_slow_booking_is_one_trade(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast(book_latency_ms=100.0)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sim.send_award(A, award), 0.01)
    await sim.send_award(A, award)  # the engine's reconciliation re-sends: it waits for the booking
    first = await inbox.get(ExecutionConfirm)
    second = await inbox.get(ExecutionConfirm)
    assert first.dealer_trade_id == second.dealer_trade_id and sim.executed_count(A) == 1


async def test_not_found_fences_the_execution_id(make_dealers: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "a.jsonl"
    sim, inbox = await make_dealers({A: fast(ledger_path=ledger)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    lookup = await sim.query_execution(A, award.execution_id)  # asked before the award arrives
    assert lookup.state is ExecutionState.NOT_FOUND

    await sim.send_award(A, award)  # arrives later: refused, never booked
    reject = await inbox.get(ExecutionReject)
    assert (reject.execution_id, reject.reason) == (award.execution_id, REJECT_FENCED)
    assert sim.trades(A) == () and sim.executed_count(A) == 0 and ledger_lines(ledger) == []
    assert (await sim.query_execution(A, award.execution_id)).state is ExecutionState.NOT_FOUND

    other = award_for(quote)  # the desk goes on trading other ids
    await sim.send_award(A, other)
    await inbox.get(ExecutionConfirm)
    assert sim.executed_count(A) == 1


async def test_an_offline_desk_cannot_say_and_does_not_fence(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    sim.set_online(A, False)
    lookup = await sim.query_execution(A, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason == "dealer offline"
    unserved = await sim.query_execution(DealerId("ghost"), award.execution_id)
    assert unserved.state is ExecutionState.UNKNOWN
    sim.set_online(A, True)
    await sim.send_award(A, award)  # no "not found" was said, so nothing was fenced
    await inbox.get(ExecutionConfirm)
    assert (await sim.query_execution(A, award.execution_id)).state is ExecutionState.CONFIRMED


async def test_a_lost_confirm_is_still_a_trade_the_lookup_reports(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast(lose_confirm_rate=1.0), B: fast(latency_ms=20.0)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    await sim.send_award(A, award)  # booked when this returns
    # B's quote is due after A's confirm would have been: it arriving first proves none came
    await sim.send_rfq(B, rfq())
    assert (await inbox.get(Quote)).dealer_id == B
    assert inbox.empty()
    lookup = await sim.query_execution(A, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert sim.executed_count(A) == 1 and sim.executed_count() == 1


async def test_rejects_are_not_lost_by_lose_confirm_rate(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast(lose_confirm_rate=1.0, last_look_reject_rate=1.0)})
    quote = await quote_from(sim, inbox)
    await sim.send_award(A, award_for(quote))
    await inbox.get(ExecutionReject)
    assert sim.executed_count(A) == 0


async def test_a_unit_the_desk_does_not_trade_is_declined(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast(), B: fast(units=["contracts"])})
    await sim.send_rfq(A, rfq(quantity_unit="contracts"))
    assert (await inbox.get(Decline)).reason == "unit contracts not traded"
    await sim.send_rfq(B, rfq(quantity_unit="BTC"))
    assert (await inbox.get(Decline)).reason == "unit BTC not traded"
    await sim.send_rfq(B, rfq(quantity_unit="Contracts"))  # units compare without case
    assert (await inbox.get(Quote)).dealer_id == B


async def test_the_default_units_are_what_the_model_prices(make_dealers: Any) -> None:
    from datetime import date

    sim, inbox = await make_dealers({A: fast()})
    ndf = (Leg(HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30), Side.SELL),)
    await sim.send_rfq(A, rfq(legs=ndf, quantity_unit="PH/s/day"))
    assert (await inbox.get(Quote)).dealer_id == A
    await sim.send_rfq(A, rfq(quantity_unit="BTC"))
    assert (await inbox.get(Quote)).dealer_id == A


async def test_an_award_in_a_unit_the_desk_does_not_trade_is_rejected(make_dealers: Any) -> None:
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox, direction=Direction.SELL)
    await sim.send_award(A, award_for(quote, quantity_unit="ETH"))
    assert (await inbox.get(ExecutionReject)).reason == "unit ETH not traded"
    await sim.send_award(A, award_for(quote, quantity_unit="PH/s/day"))  # traded, not this quote's
    assert (await inbox.get(ExecutionReject)).reason == (
        "unit PH/s/day does not match the quote's unit BTC")
    await sim.send_award(A, award_for(quote, quantity_unit=""))  # none named: the quote's unit
    await inbox.get(ExecutionConfirm)
    assert sim.executed_count(A) == 1


async def test_executed_count_counts_the_books_across_a_restart(tmp_path: Path) -> None:
    ledger = tmp_path / "books.jsonl"
    config = {A: fast(ledger_path=ledger), B: fast(ledger_path=ledger, last_look_reject_rate=1.0)}
    sim, inbox = await start_dealers(config)
    for _ in range(2):
        await sim.send_award(A, award_for(await quote_from(sim, inbox, A)))
        await inbox.get(ExecutionConfirm)
    await sim.send_award(B, award_for(await quote_from(sim, inbox, B)))
    await inbox.get(ExecutionReject)
    assert (sim.executed_count(A), sim.executed_count(B), sim.executed_count()) == (2, 0, 2)
    await sim.close()
    again, _ = await start_dealers(config)
    try:
        assert (again.executed_count(A), again.executed_count()) == (2, 2)
        fresh = await again.query_execution(A, ExecutionId(new_id()))
        assert fresh.state is ExecutionState.NOT_FOUND
    finally:
        await again.close()


async def test_close_finishes_a_booking_in_progress(tmp_path: Path) -> None:
    ledger = tmp_path / "a.jsonl"
    sim, inbox = await start_dealers({A: fast(book_latency_ms=100.0, ledger_path=ledger)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sim.send_award(A, award), 0.01)
    await sim.close()  # the desk never half-books: the trade is in its ledger
    assert [r["execution_id"] for r in ledger_lines(ledger)] == [award.execution_id]
    assert sim.executed_count(A) == 1
