"""The unknown-outcome rule (engine/reconcile.py): a timeout is "unknown", never "no".

Every case drives the real engine through the scripted transport; what a dealer "knows"
is the lookup answer the test scripts, and the count of awards sent is the count of
executions the dealer side could have made.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from dealer_adapters.protocol import ExecutionLookup, ExecutionState, LookupPolicy
from rfq_engine.domain import Award, ExecutionConfirm, ExecutionId, RfqNew, RfqState, utc_now
from rfq_engine.domain.events import EventType
from rfq_engine.engine import EngineConfig
from rfq_engine.engine.errors import InvalidRequest, InvalidState, NotPermitted, UnknownExecution
from rfq_engine.engine.resolution import Resolution
from tests.engine.conftest import Harness, future_rfq

FAST = EngineConfig(confirm_timeout_ms=150, reconcile_timeout_ms=400, reconcile_backoff_ms=20,
                    reconcile_backoff_max_ms=40, reconcile_slow_interval_ms=100,
                    lookup_timeout_ms=500)
UNKNOWN = ExecutionLookup(ExecutionState.UNKNOWN, reason="still booking")
DOES_NOT_PROVE = LookupPolicy("execution_id", True, False, "a venue whose 'not found' proves nothing")


def confirmed(award: Award, trade: str = "T-1") -> ExecutionLookup:
    return ExecutionLookup(ExecutionState.CONFIRMED, ExecutionConfirm(
        award.execution_id, award.rfq_id, award.quote_id, award.dealer_id, award.price,
        award.quantity, trade, utc_now(), "lookup"))


async def award_to_d1(h: Harness, **overrides: object) -> tuple[str, Award]:
    """Two dealers quote; d1 is best and gets the award; d2 stays a valid fallback."""
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"], **overrides))
    for _ in range(2):
        await h.dealers.next(RfqNew)
    h.dealers.quote(rfq_id, "d1", bid="39950", valid_ms=20_000)
    h.dealers.quote(rfq_id, "d2", bid="39900", valid_ms=20_000)
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award) and award.dealer_id == "d1"
    return rfq_id, award


async def asked(h: Harness, times: int) -> None:
    for _ in range(times):
        await asyncio.wait_for(h.dealers.asked.get(), 5)


async def until_state(h: Harness, rfq_id: str, state: RfqState) -> None:
    run = h.engine.live(rfq_id)
    assert run is not None
    await asyncio.wait_for(run.waiting_unresolved.wait(), 5)
    assert run.state is state


def person(award: Award, *, executed: bool, actor: str = "carol", **kw: object) -> Resolution:
    return Resolution(award.execution_id, executed, kw.pop("evidence", "desk blotter, call 14:02"),  # type: ignore[arg-type]
                      actor, **kw)  # type: ignore[arg-type]


async def test_unknown_lookups_then_confirmed_fill_once_and_never_fall_back(make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.absent = UNKNOWN  # the dealer cannot say yet
    rfq_id, award = await award_to_d1(h)
    await asked(h, 3)  # asked again and again, with backoff, silence is not a "no"
    assert h.engine.live(rfq_id).state is RfqState.CONFIRMING  # type: ignore[union-attr]
    h.dealers.lookups[award.execution_id] = confirmed(award, "VENUE-9")
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]  # no second execution
    [unknown] = await h.payloads(rfq_id, EventType.EXECUTION_UNKNOWN)
    assert unknown["reason"] == "no confirm or reject by confirm_by"
    assert unknown["lookup"] == {"key": "execution_id", "can_query": True,
                                 "not_found_proves_absent": True}
    [conf] = await h.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)
    assert (conf["source"], conf["dealer_trade_id"]) == ("reconciled", "VENUE-9")
    assert conf["attempts"] >= 4
    [fill] = await h.payloads(rfq_id, EventType.FILL_RECORDED)
    assert fill["quantity"] == "10"


async def test_not_found_that_proves_absence_allows_the_fallback(make_harness) -> None:
    h = await make_harness(config=FAST)  # default scripted policy: not found proves absent
    rfq_id, award = await award_to_d1(h)
    second = (await h.dealers.next(Award)).message
    assert isinstance(second, Award) and second.dealer_id == "d2"
    assert len(h.dealers.queries) >= 1 and h.dealers.queries[0] == award.execution_id
    h.dealers.confirm(second)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    [rejected] = await h.payloads(rfq_id, EventType.EXECUTION_REJECTED)
    assert rejected["execution_id"] == award.execution_id
    assert rejected["reason"].startswith("reconciled: the dealer has no record of it")


async def test_not_found_that_proves_nothing_goes_unresolved_then_a_person_resolves(
        make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.policy = DOES_NOT_PROVE
    rfq_id, award = await award_to_d1(h)
    await until_state(h, rfq_id, RfqState.UNRESOLVED)
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]
    [unresolved] = await h.payloads(rfq_id, EventType.EXECUTION_UNRESOLVED)
    assert unresolved["last_lookup"] == "not_found" and unresolved["attempts"] >= 2
    # the exposure stays reserved: the dealer's in-flight notional is still counted
    assert h.engine.services.risk.exposure("d1", utc_now().date()) > 0
    row = next(a for a in await h.store.awards(rfq_id) if a.execution_id == award.execution_id)
    assert row.status == "unresolved"
    await asked(h, 1)  # still asked, slowly
    outcome = await h.engine.resolve_execution(rfq_id, person(
        award, executed=True, dealer_trade_id="D1-778", quantity=Decimal("10")))
    assert outcome.confirmed
    [resolved] = await h.payloads(rfq_id, EventType.EXECUTION_RESOLVED)  # durable before the return
    assert (resolved["executed"], resolved["resolved_by"], resolved["quantity"]) == (True, "carol", "10")
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    [fill] = await h.payloads(rfq_id, EventType.FILL_RECORDED)
    assert (fill["dealer_trade_id"], fill["quantity"]) == ("D1-778", "10")
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]
    with pytest.raises(InvalidState):  # settled: a second decision is refused
        await h.engine.resolve_execution(rfq_id, person(award, executed=False))


async def test_resolved_not_executed_ends_not_filled_without_another_award(make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.policy = DOES_NOT_PROVE
    rfq_id, award = await award_to_d1(h)
    await until_state(h, rfq_id, RfqState.UNRESOLVED)
    await h.engine.resolve_execution(rfq_id, person(award, executed=False))
    assert await h.engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]
    assert h.engine.services.risk.exposure("d1", utc_now().date()) == 0


async def test_late_confirm_settles_an_unresolved_award(make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.policy = DOES_NOT_PROVE
    rfq_id, award = await award_to_d1(h)
    await until_state(h, rfq_id, RfqState.UNRESOLVED)
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    [conf] = await h.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)
    assert conf["source"] == "dealer"


async def test_resolution_rules(make_harness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=5000))
    rfq_id, award = await award_to_d1(h)
    with pytest.raises(InvalidState, match="last look"):  # not unknown yet
        await h.engine.resolve_execution(rfq_id, person(award, executed=False))
    with pytest.raises(UnknownExecution):
        await h.engine.resolve_execution(rfq_id, Resolution(ExecutionId("nope"), False, "x", "carol"))
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED

    h2 = await make_harness(config=FAST)
    h2.dealers.policy = DOES_NOT_PROVE
    rfq_id, award = await award_to_d1(h2)
    await until_state(h2, rfq_id, RfqState.UNRESOLVED)
    with pytest.raises(NotPermitted):
        await h2.engine.resolve_execution(rfq_id, person(award, executed=False, actor="alice"))
    with pytest.raises(InvalidRequest, match="evidence"):
        await h2.engine.resolve_execution(rfq_id, person(award, executed=False, evidence=" "))
    with pytest.raises(InvalidRequest, match="price"):
        await h2.engine.resolve_execution(rfq_id, person(
            award, executed=True, dealer_trade_id="T", price=award.price + 1))
    with pytest.raises(InvalidRequest, match="quantity"):
        await h2.engine.resolve_execution(rfq_id, person(
            award, executed=True, dealer_trade_id="T", quantity=award.quantity + 1))
    # two people at once: exactly one decision is applied, the other is refused
    results = await asyncio.gather(
        h2.engine.resolve_execution(rfq_id, person(award, executed=False, actor="carol")),
        h2.engine.resolve_execution(rfq_id, person(award, executed=True, actor="dave",
                                                   dealer_trade_id="T-2")),
        return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["AwardOutcome", "InvalidState"]
    assert await h2.engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
    assert len(await h2.payloads(rfq_id, EventType.EXECUTION_RESOLVED)) == 1


async def test_a_dealer_that_cannot_be_asked_gets_no_fallback(make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.policy = LookupPolicy("none", False, False, "fire and forget")
    rfq_id, award = await award_to_d1(h)
    await until_state(h, rfq_id, RfqState.UNRESOLVED)
    assert h.dealers.queries == []  # not asked: it cannot say
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]
    [unresolved] = await h.payloads(rfq_id, EventType.EXECUTION_UNRESOLVED)
    assert unresolved["reason"].startswith("the dealer cannot be asked")
    h.dealers.reject(award)  # an explicit reject from the dealer still settles it
    assert await h.engine.wait(rfq_id, 5) is RfqState.NOT_FILLED


async def test_a_send_slower_than_the_timeout_is_never_cancelled(make_harness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=300, send_timeout_ms=20,
                                               reconcile_timeout_ms=2000, reconcile_backoff_ms=20))
    h.dealers.absent = UNKNOWN
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"]))
    for _ in range(2):
        await h.dealers.next(RfqNew)
    h.dealers.hang.add("d1")  # the award to d1 does not return for now
    h.dealers.quote(rfq_id, "d1", bid="39950", valid_ms=20_000)
    h.dealers.quote(rfq_id, "d2", bid="39900", valid_ms=20_000)
    await asked(h, 2)  # past confirm_by: unknown, being reconciled
    [sent] = await h.payloads(rfq_id, EventType.AWARD_SENT)
    assert "carries on" in sent["error"]
    assert h.dealers.cancelled_sends == 0 and h.dealers.sent(Award) == []
    h.dealers.release.set()  # the transport finally takes it
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    assert [s.dealer for s in h.dealers.sent(Award)] == ["d1"]
    [unknown] = await h.payloads(rfq_id, EventType.EXECUTION_UNKNOWN)
    assert "the send failed in flight" in unknown["reason"]


async def test_engine_stop_parks_an_unresolved_rfq_and_recovery_resumes_it(make_harness) -> None:
    h = await make_harness(config=FAST)
    h.dealers.policy = DOES_NOT_PROVE
    rfq_id, award = await award_to_d1(h)
    await until_state(h, rfq_id, RfqState.UNRESOLVED)
    await h.engine.stop()
    assert (await h.store.get_rfq(rfq_id)).state == "unresolved"  # type: ignore[union-attr]
    [parked] = await h.payloads(rfq_id, EventType.RFQ_PARKED)
    assert parked["execution_ids"] == [award.execution_id]

    from rfq_engine.engine import RfqEngine
    from tests.engine.scripted import ScriptedDealers
    dealers = ScriptedDealers(("d1", "d2"))
    dealers.lookups[award.execution_id] = confirmed(award, "AFTER-RESTART")
    engine = RfqEngine(store=h.store, adapters=[dealers], mandates=h.engine.services.mandates,
                       reference=h.engine.services.reference, config=FAST)
    assert await engine.start() == [rfq_id]
    assert await engine.wait(rfq_id, 5) is RfqState.FILLED
    fills = await h.payloads(rfq_id, EventType.FILL_RECORDED)
    assert [f["dealer_trade_id"] for f in fills] == ["AFTER-RESTART"]
    assert dealers.sent(Award) == []  # recovery never re-awards
    await engine.stop()


async def test_deadline_close_policy_keeps_the_window_open_for_a_better_replacement(
        make_harness) -> None:
    h = await make_harness()
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"], window_ms=400,
                                              close_policy="deadline"))
    new = (await h.dealers.next(RfqNew)).message
    assert isinstance(new, RfqNew) and new.close_policy == "deadline"
    await h.dealers.next(RfqNew)
    h.dealers.quote(rfq_id, "d1", bid="39900")
    h.dealers.quote(rfq_id, "d2", bid="39950")  # everyone answered: the window stays open
    h.dealers.quote(rfq_id, "d1", bid="39990")  # a better replacement, in time
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award) and (award.dealer_id, award.price) == ("d1", Decimal("39990"))
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    [closed] = await h.payloads(rfq_id, EventType.WINDOW_CLOSED)
    assert (closed["policy"], closed["reason"]) == ("deadline", "deadline reached")


async def test_all_answered_closes_early_and_says_when(make_harness) -> None:
    h = await make_harness()
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"], window_ms=5000))
    new = (await h.dealers.next(RfqNew)).message
    assert isinstance(new, RfqNew) and new.close_policy == "all_answered"
    await h.dealers.next(RfqNew)
    h.dealers.quote(rfq_id, "d1", bid="39900")
    h.dealers.quote(rfq_id, "d2", bid="39950")
    award = (await h.dealers.next(Award)).message
    h.dealers.confirm(award)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    [closed] = await h.payloads(rfq_id, EventType.WINDOW_CLOSED)
    assert (closed["policy"], closed["reason"]) == ("all_answered", "every dealer answered")
    assert closed["closed_at"] < closed["deadline"]


async def test_four_eyes_approve_and_refuse_at_once_only_one_wins(make_harness) -> None:
    h = await make_harness()
    requested = asyncio.Event()
    h.engine.add_listener(lambda e: requested.set() if e.type == EventType.APPROVAL_REQUESTED else None)
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1"], require_approval=True))
    await asyncio.wait_for(requested.wait(), 5)
    results = await asyncio.gather(
        h.engine.approve(rfq_id, approver="bob"),
        h.engine.refuse(rfq_id, approver="carol", reason="too big"),
        return_exceptions=True)
    assert results[0] is None and isinstance(results[1], InvalidState)
    assert len(await h.payloads(rfq_id, EventType.APPROVAL_GRANTED)) == 1  # durable when it returned
    assert await h.payloads(rfq_id, EventType.APPROVAL_REFUSED) == []
    await h.dealers.next(RfqNew)
    await h.engine.cancel(rfq_id, actor="alice")
    await h.engine.wait(rfq_id, 5)


async def test_a_one_shot_run_stops_at_unresolved_and_cancels_one_needing_approval(
        make_harness) -> None:
    from rfq_engine.engine.oneshot import run_to_end

    h = await make_harness(config=FAST)
    h.dealers.policy = DOES_NOT_PROVE
    rfq_id, _ = await award_to_d1(h)
    end = await asyncio.wait_for(run_to_end(h.engine, rfq_id, actor="alice", reason="x"), 10)
    assert (end.state, end.cancelled_for_approval) == (RfqState.UNRESOLVED, False)

    waiting = await h.engine.submit(future_rfq(dealers=["d2"], require_approval=True))
    end = await asyncio.wait_for(run_to_end(h.engine, waiting, actor="alice",
                                            reason="one-shot cannot wait"), 10)
    assert (end.state, end.cancelled_for_approval) == (RfqState.CANCELLED, True)
    [cancel] = await h.payloads(waiting, EventType.CANCEL_REQUESTED)
    assert cancel["reason"] == "one-shot cannot wait"
