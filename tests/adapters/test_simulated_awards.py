"""Awards: confirm, last look, the desk's checks, idempotency, the ledger across restarts."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dealer_adapters.protocol import DealerUnavailable, ExecutionState
from dealer_adapters.simulated import (
    REJECT_LAST_LOOK,
    REJECT_LATE,
    LedgerError,
    SimulatedDealers,
)
from rfq_engine.domain import (
    DealerId,
    Direction,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    QuoteSide,
    RfqClosed,
    utc_now,
)
from tests.adapters.sim_helpers import award_for, fast, rfq, snapshot, start_dealers

A, B = DealerId("desk-a"), DealerId("desk-b")


async def quote_from(sim, inbox, dealer=A, direction=Direction.SELL, **kw) -> Quote:
    await sim.send_rfq(dealer, rfq(direction=direction, **kw))
    return await inbox.get(Quote)


async def test_award_is_confirmed_repeating_price_and_quantity(make_dealers):
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox)
    award = award_for(quote, QuoteSide.BID)
    await sim.send_award(A, award)
    confirm = await inbox.get(ExecutionConfirm)
    assert (confirm.execution_id, confirm.rfq_id, confirm.quote_id) == (
        award.execution_id,
        award.rfq_id,
        award.quote_id,
    )
    assert confirm.price == award.price and confirm.quantity == award.quantity
    assert confirm.dealer_trade_id.startswith("desk-a-")
    [trade] = sim.trades(A)
    assert trade.execution_id == award.execution_id and trade.price == award.price
    lookup = await sim.query_execution(A, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
    assert lookup.confirm.dealer_trade_id == confirm.dealer_trade_id


async def test_partial_award_within_the_quote_is_confirmed(make_dealers):
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox, direction=Direction.TWO_WAY)
    award = award_for(quote, QuoteSide.ASK, quantity=Decimal(4))
    await sim.send_award(A, award)
    confirm = await inbox.get(ExecutionConfirm)
    assert confirm.quantity == Decimal(4) and confirm.price == quote.ask


async def test_last_look_reject(make_dealers):
    sim, inbox = await make_dealers({A: fast(last_look_reject_rate=1.0)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    await sim.send_award(A, award)
    reject = await inbox.get(ExecutionReject)
    assert reject.execution_id == award.execution_id and reject.reason == REJECT_LAST_LOOK
    assert sim.trades(A) == ()
    lookup = await sim.query_execution(A, award.execution_id)
    assert lookup.state is ExecutionState.REJECTED and lookup.reason == REJECT_LAST_LOOK


async def test_award_after_confirm_by_is_rejected(make_dealers):
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox)
    await sim.send_award(A, award_for(quote, confirm_by=utc_now() - timedelta(milliseconds=1)))
    assert (await inbox.get(ExecutionReject)).reason == REJECT_LATE
    assert sim.trades(A) == ()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": Decimal("1")}, "price does not match the quote"),
        ({"quantity": Decimal("11")}, "quantity exceeds the quote"),
        ({"side": QuoteSide.ASK, "price": Decimal("1")}, "no ask was quoted"),
    ],
)
async def test_desk_stands_only_by_what_it_quoted(make_dealers, change, reason):
    sim, inbox = await make_dealers({A: fast()})
    quote = await quote_from(sim, inbox, direction=Direction.SELL)  # 10 lots, bid only
    await sim.send_award(A, award_for(quote, **change))
    assert (await inbox.get(ExecutionReject)).reason == reason


async def test_award_for_an_unknown_or_expired_quote_is_rejected(make_dealers):
    sim, inbox = await make_dealers({A: fast(quote_validity_ms=1)})
    quote = await quote_from(sim, inbox)
    await asyncio.sleep(0.005)  # nothing to await: let the 1 ms quote go stale
    await sim.send_award(A, award_for(quote))
    assert (await inbox.get(ExecutionReject)).reason == "quote expired"
    await sim.send_award(A, replace(award_for(quote), quote_id="nope"))
    assert (await inbox.get(ExecutionReject)).reason == "unknown quote"


@pytest.mark.parametrize("reject_rate", [0.0, 1.0])
async def test_same_execution_id_is_idempotent(make_dealers, reject_rate):
    sim, inbox = await make_dealers({A: fast(last_look_reject_rate=reject_rate)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    await sim.send_award(A, award)
    first = await inbox.get(ExecutionConfirm | ExecutionReject)  # type: ignore[arg-type]
    for _ in range(5):
        await sim.send_award(A, award)
        again = await inbox.get(type(first))
        assert again.execution_id == award.execution_id and again.msg_id != first.msg_id
        if isinstance(first, ExecutionConfirm):
            assert again.dealer_trade_id == first.dealer_trade_id
    assert isinstance(first, ExecutionReject if reject_rate else ExecutionConfirm)
    assert len(sim.trades(A)) == (0 if reject_rate else 1)
    assert sum(1 for m in sim.received(A) if m == award) == 6


async def test_concurrent_duplicate_awards_book_one_trade(make_dealers, tmp_path):
    sim, inbox = await make_dealers({A: fast(ledger_path=tmp_path / "a.jsonl")})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    await asyncio.gather(*(sim.send_award(A, award) for _ in range(4)))
    confirms = [await inbox.get(ExecutionConfirm) for _ in range(4)]
    assert len({c.dealer_trade_id for c in confirms}) == 1
    assert len(sim.trades(A)) == 1
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1


async def test_ledger_survives_a_restart(tmp_path: Path):
    ledger = tmp_path / "books" / "desks.jsonl"
    config = {A: fast(ledger_path=ledger), B: fast(ledger_path=ledger, last_look_reject_rate=1.0)}

    sim, inbox = await start_dealers(config)
    quote_a = await quote_from(sim, inbox, A)
    quote_b = await quote_from(sim, inbox, B)
    award_a, award_b = award_for(quote_a), award_for(quote_b)
    await sim.send_award(A, award_a)
    confirm = await inbox.get(ExecutionConfirm)
    await sim.send_award(B, award_b)
    await inbox.get(ExecutionReject)
    await sim.close()

    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(r["dealer_id"], r["outcome"]) for r in lines] == [
        ("desk-a", "confirmed"),
        ("desk-b", "rejected"),
    ]

    # a new process: same books, no memory of the quotes
    sim2, inbox2 = await start_dealers(config)
    try:
        lookup = await sim2.query_execution(A, award_a.execution_id)
        assert lookup.state is ExecutionState.CONFIRMED and lookup.confirm is not None
        assert lookup.confirm.dealer_trade_id == confirm.dealer_trade_id
        assert lookup.confirm.price == award_a.price
        assert lookup.confirm.quantity == award_a.quantity
        rejected = await sim2.query_execution(B, award_b.execution_id)
        assert rejected.state is ExecutionState.REJECTED
        assert rejected.reason == REJECT_LAST_LOOK
        unknown = await sim2.query_execution(A, ExecutionId("never-awarded"))
        assert unknown.state is ExecutionState.NOT_FOUND
        # a desk only knows its own trades
        assert (await sim2.query_execution(B, award_a.execution_id)).state is ExecutionState.NOT_FOUND

        await sim2.send_award(A, award_a)  # the engine re-sends after its own restart
        again = await inbox2.get(ExecutionConfirm)
        assert again.dealer_trade_id == confirm.dealer_trade_id
        assert len(sim2.trades(A)) == 1 and sim2.trades(B) == ()
    finally:
        await sim2.close()
    assert len(ledger.read_text().splitlines()) == 2  # no second trade booked


async def test_torn_last_ledger_line_is_dropped_and_repaired(tmp_path: Path):
    ledger = tmp_path / "a.jsonl"
    sim, inbox = await start_dealers({A: fast(ledger_path=ledger)})
    quote = await quote_from(sim, inbox)
    award = award_for(quote)
    await sim.send_award(A, award)
    await inbox.get(ExecutionConfirm)
    await sim.close()
    with ledger.open("a") as handle:
        handle.write('{"v":1,"dealer_id":"desk-a","exec')  # a crash mid-write

    sim2, inbox2 = await start_dealers({A: fast(ledger_path=ledger)})
    try:
        assert len(sim2.trades(A)) == 1
        quote2 = await quote_from(sim2, inbox2)
        await sim2.send_award(A, award_for(quote2))
        await inbox2.get(ExecutionConfirm)
    finally:
        await sim2.close()
    assert len([json.loads(x) for x in ledger.read_text().splitlines()]) == 2


async def test_corrupt_ledger_line_is_an_error_naming_the_line(tmp_path: Path):
    ledger = tmp_path / "a.jsonl"
    ledger.write_text("not json\n")
    with pytest.raises(LedgerError, match=r"a\.jsonl:1"):
        await start_dealers({A: fast(ledger_path=ledger)})


async def test_offline_dealer_raises_dealer_unavailable(make_dealers):
    sim, inbox = await make_dealers({A: fast(online=False), B: fast()})
    assert not sim.is_online(A) and sim.is_online(B)
    with pytest.raises(DealerUnavailable) as info:
        await sim.send_rfq(A, rfq())
    assert info.value.dealer_id == A and "offline" in info.value.reason

    quote = await quote_from(sim, inbox, B)
    sim.set_online(B, False)
    for send in (
        sim.send_rfq(B, rfq()),
        sim.send_award(B, award_for(quote)),
        sim.send_closed(B, RfqClosed(quote.rfq_id, "cancelled", you_won=False)),
    ):
        with pytest.raises(DealerUnavailable):
            await send
    lookup = await sim.query_execution(B, ExecutionId("x"))
    assert lookup.state is ExecutionState.UNKNOWN
    sim.set_online(B, True)
    await quote_from(sim, inbox, B)


async def test_unknown_dealer_and_unstarted_adapter_are_unavailable(make_dealers):
    sim, _ = await make_dealers({A: fast()})
    with pytest.raises(DealerUnavailable, match="not served"):
        await sim.send_rfq(DealerId("ghost"), rfq())
    idle = SimulatedDealers({A: fast()}, snapshot)
    with pytest.raises(DealerUnavailable, match="not started"):
        await idle.send_rfq(A, rfq())
    await idle.close()
    with pytest.raises(DealerUnavailable, match="closed"):
        await idle.send_rfq(A, rfq())


async def test_answer_due_while_offline_is_lost(make_dealers):
    sim, inbox = await make_dealers({A: fast(latency_ms=5.0), B: fast(latency_ms=40.0)})
    await sim.send_rfq(A, rfq())
    sim.set_online(A, False)
    await sim.send_rfq(B, rfq())
    assert (await inbox.get(Quote)).dealer_id == B
    assert inbox.empty() and sim.quotes(A) == ()
