"""The scheduler with a real engine and simulated desks over SQLite: exactly once per program
and period, across restarts, crashes and missed schedules; dry runs write nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.engine import EngineEvent, NotPermitted
from rfq_engine.hedging.positions import net_quantities
from rfq_engine.hedging.program import last_weekday
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.scheduler import coming_period, prepare_plan
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import EventFilter
from tests.hedging.conftest import Open, shut
from tests.hedging.kit import after, program, snapshot, this_months_slot

D = Decimal
SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)


def fixed(at: datetime) -> object:
    return lambda: at


async def test_run_due_twice_creates_one_rfq_and_records_the_decision(open_system: Open) -> None:
    system = await open_system({"p": program()}, fixed(after(SLOT)))
    first = await system.scheduler.run_due(after(SLOT))
    assert [(d.program, str(d.period), d.trigger, d.action) for d in first] == [
        ("p", str(PERIOD), "schedule", "hedge")]
    assert await system.settle(first[0].rfq_ids) == ["filled"]
    assert await system.scheduler.run_due(after(SLOT, 60)) == []
    assert await system.scheduler.run_due(after(SLOT, 86400 * 20)) == []
    rows = await system.program_rfqs()
    assert [(r.client_rfq_id, r.requester, r.state) for r in rows] == [
        (f"program:p:{PERIOD}:hedge", "program:p", "filled")]
    (decided,) = await system.decisions()
    assert decided["period"] == str(PERIOD) and decided["action"] == "hedge"
    assert decided["spot"] == "40000" and decided["position"] == {} and decided["held"] == "0"
    assert D(decided["forecast"]["quantity"]) == PERIOD.days * D("0.628642737865447998046875")
    assert decided["target"] == str((D("0.5") * D(decided["forecast"]["quantity"])).quantize(D("0.01"),
                                                                                         rounding="ROUND_FLOOR"))
    assert decided["rfqs"][0]["rfq_id"] == rows[0].rfq_id and decided["rfqs"][0]["existing"] is False
    fills = await system.store.fills(rows[0].rfq_id)
    assert sum(f.quantity for f in fills) == D(decided["target"])


async def test_next_month_rolls_the_hedge_into_the_next_contract(open_system: Open) -> None:
    system = await open_system({"p": program()}, fixed(after(SLOT)))
    (first,) = await system.scheduler.run_due(after(SLOT))
    await system.settle(first.rfq_ids)
    nxt = PERIOD  # the month of the next slot
    slot2 = datetime.combine(last_weekday(nxt.year, nxt.month, 4), datetime.min.time(), UTC).replace(hour=14)
    (second,) = await system.scheduler.run_due(after(slot2))
    assert second.period == PERIOD.plus(1) and second.action.startswith("roll")
    assert second.plan is not None
    roll = second.plan.rfqs[0]
    assert roll.kind.startswith("roll-")
    assert [leg.side.value for leg in roll.spec.legs] == ["buy", "sell"]
    assert await system.settle(second.rfq_ids) == ["filled"] * len(second.rfq_ids)
    holdings = net_quantities(await load_trades(system.store, "program:p"))
    assert len(holdings) == 1  # the near contract is closed; only the next is held
    (qty,) = holdings.values()
    assert second.plan is not None and -qty == second.plan.target


async def test_a_crash_after_submit_never_creates_a_second_rfq(open_system: Open) -> None:
    now = after(SLOT)
    first = await open_system({"p": program()}, fixed(now))
    # the scheduler's own steps up to the submission, then a crash before program.decided
    plan = await prepare_plan(name="p", program=program(), store=first.store, snapshot=snapshot(),
                              forecast_defaults=None, mandate_max_ratio=D("0.8"), period=PERIOD,
                              today=now.date())
    rfq_id = await first.engine.submit(plan.rfqs[0].spec)
    assert await first.settle([rfq_id]) == ["filled"]
    await shut(first)

    second = await open_system({"p": program()}, fixed(now + timedelta(minutes=2)))
    decisions = await second.scheduler.start()
    assert [(d.trigger, d.action) for d in decisions] == [("schedule", "nothing")]
    assert [r.rfq_id for r in await second.program_rfqs()] == [rfq_id]


async def test_a_crash_before_the_fill_resubmits_nothing(open_system: Open) -> None:
    now = after(SLOT)
    first = await open_system({"p": program()}, fixed(now))
    plan = await prepare_plan(name="p", program=program(), store=first.store, snapshot=snapshot(),
                              forecast_defaults=None, mandate_max_ratio=D("0.8"), period=PERIOD,
                              today=now.date())
    rfq_id = await first.engine.submit(plan.rfqs[0].spec)
    await shut(first)  # the RFQ never traded (stopped before any quote could be awarded)

    second = await open_system({"p": program()}, fixed(now))
    (decision,) = await second.scheduler.start()
    assert decision.action == "hedge"
    assert [(s.rfq_id, s.existing) for s in decision.submitted] == [(rfq_id, True)]
    assert [r.rfq_id for r in await second.program_rfqs()] == [rfq_id]
    # a deliberate retry is a new id, once
    retry = await second.scheduler.run_program("p", now=now, period=PERIOD, retry=1)
    again = await second.scheduler.run_program("p", now=now, period=PERIOD, retry=1)
    assert retry.submitted[0].existing is False and again.rfq_ids == retry.rfq_ids
    assert len(await second.program_rfqs()) == 2


async def test_a_missed_schedule_is_caught_up_once(open_system: Open) -> None:
    late = SLOT + timedelta(hours=6)  # the same day: the period (next month) has not begun
    system = await open_system({"p": program()}, fixed(late))
    decisions = await system.scheduler.start()
    assert [(d.trigger, str(d.period), d.scheduled_for) for d in decisions] == [
        ("catch_up", str(PERIOD), SLOT)]
    await system.settle(decisions[0].rfq_ids)
    await shut(system)
    again = await open_system({"p": program()}, fixed(late + timedelta(hours=1)))
    assert await again.scheduler.start() == []
    assert len(await again.program_rfqs()) == 1
    assert len(await again.decisions()) == 1


async def test_dry_run_writes_nothing(open_system: Open) -> None:
    system = await open_system({"p": program()}, fixed(after(SLOT)))
    await system.store.flush()
    before = len(await system.store.events())
    decision = await system.scheduler.run_program("p", now=after(SLOT), dry_run=True)
    assert decision.dry_run and decision.action == "hedge" and decision.plan is not None
    assert decision.submitted == () and len(decision.plan.rfqs) == 1
    await system.store.flush()
    assert len(await system.store.events()) == before
    assert await system.program_rfqs() == []
    # and a dry run does not count as the period's decision
    (scheduled,) = await system.scheduler.run_due(after(SLOT))
    assert scheduled.action == "hedge"


async def test_a_program_that_needs_approval_only_proposes(open_system: Open) -> None:
    system = await open_system({"p": program(approval=True)}, fixed(after(SLOT)))
    (proposed,) = await system.scheduler.run_due(after(SLOT))
    assert proposed.action == "proposed" and proposed.submitted == ()
    assert await system.program_rfqs() == []
    (decided,) = await system.decisions()
    assert decided["proposed"][0]["client_rfq_id"] == f"program:p:{PERIOD}:hedge"
    assert await system.scheduler.run_due(after(SLOT, 600)) == []  # proposed once
    approved = await system.scheduler.run_program("p", now=after(SLOT), approved_by="alice")
    assert approved.approved_by == "alice" and len(approved.rfq_ids) == 1
    assert await system.settle(approved.rfq_ids) == ["filled"]


async def test_hosted_by_serve_a_program_needing_approval_waits_for_an_approver(
        open_system: Open) -> None:
    system = await open_system({"p": program(approval=True)}, fixed(after(SLOT)),
                               submit_for_approval=True)
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert decision.action == "hedge" and len(decision.rfq_ids) == 1
    assert any("pending_approval" in r for r in decision.reasons)
    rfq_id = decision.rfq_ids[0]
    run = system.engine.live(rfq_id)
    assert run is not None and run.spec.require_approval
    from tests.engine.conftest import Harness, wait_state

    await wait_state(Harness(system.engine, None, system.store), rfq_id, "pending_approval")  # type: ignore[arg-type]
    with pytest.raises(NotPermitted):  # the program's own requester cannot approve it
        await system.engine.approve(rfq_id, approver=run.spec.requester)
    await system.engine.approve(rfq_id, approver="carol")
    assert await system.settle(decision.rfq_ids) == ["filled"]
    assert await system.scheduler.run_due(after(SLOT, 600)) == []  # once per period


async def test_a_failed_run_is_recorded_and_retried(open_system: Open) -> None:
    stale = ModelReferenceProvider(snapshot(datetime(2020, 1, 1, tzinfo=UTC)), max_age=timedelta(seconds=30))
    system = await open_system({"p": program()}, fixed(after(SLOT)), reference=stale)
    (failed,) = await system.scheduler.run_due(after(SLOT))
    assert failed.action == "error" and failed.error is not None and "stale" in failed.error
    stale.update(snapshot())
    (retried,) = await system.scheduler.run_due(after(SLOT, 300))
    assert retried.action == "hedge"
    assert [d["action"] for d in await system.decisions()] == ["error", "hedge"]


async def test_the_ratio_is_capped_by_the_mandate_through_the_engine(open_system: Open) -> None:
    system = await open_system({"p": program(hedge_ratio="1")}, fixed(after(SLOT)), max_hedge_ratio="0.6")
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert decision.plan is not None and decision.plan.hedge_ratio == D("0.6")
    assert await system.settle(decision.rfq_ids) == ["filled"]
    checked = await system.store.events(EventFilter(rfq_id=decision.rfq_ids[0], types=["mandate.checked"]))
    verdicts = {v["rule"]: v for v in checked[0].payload["verdicts"]}
    assert verdicts["hedge_ratio"]["passed"] is True


async def test_the_running_scheduler_wakes_at_the_scheduled_time(open_system: Open) -> None:
    start = SLOT - timedelta(seconds=1)
    t0 = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - t0)

    system = await open_system({"p": program()}, clock)
    # last month's slot ran on its day: it hedged this month (then still to come)
    previous = PERIOD.plus(-2)
    last_slot = datetime.combine(last_weekday(previous.year, previous.month, 4), datetime.min.time(),
                                 UTC).replace(hour=14)
    (earlier,) = await system.scheduler.run_due(after(last_slot))
    assert earlier.period == PERIOD.plus(-1) and earlier.trigger == "schedule"
    assert await system.settle(earlier.rfq_ids) == ["filled"]
    decided: asyncio.Queue[str] = asyncio.Queue()

    def listen(event: EngineEvent) -> None:
        if event.type == "program.decided":
            decided.put_nowait(event.payload["period"])

    system.engine.add_listener(listen)
    assert await system.scheduler.start() == []  # last month's slot is done: nothing to catch up
    assert await asyncio.wait_for(decided.get(), 10) == str(PERIOD)
    assert system.scheduler.running
    await system.scheduler.stop()
    assert not system.scheduler.running
    ids = {r.client_rfq_id for r in await system.program_rfqs()}
    # last month's hedge (filled within the second), then this slot rolls it into the next contract
    assert f"program:p:{PERIOD.plus(-1)}:hedge" in ids
    assert any(str(i).startswith(f"program:p:{PERIOD}:roll-") for i in ids)


async def test_a_restart_that_ends_the_periods_rfq_unfilled_re_sends_once(open_system: Open) -> None:
    """A crash with the program's window open: recovery ends the RFQ expired. The period is
    not taken as done: it is re-sent once (trigger restart_retry, a new client id, sized by
    the plan); a second restart of the same kind is an alert, never a third RFQ."""
    from rfq_engine.domain.events import EventType

    now = after(SLOT)
    prog = {"p": program(window_ms=2000)}  # inside the desks' 3 s quote validity
    first = await open_system(prog, fixed(now), close_policy="deadline")
    opened = asyncio.Event()
    first.engine.add_listener(lambda e: opened.set() if e.type == EventType.RFQ_SENT else None)
    (decided,) = await first.scheduler.run_due(now)
    await asyncio.wait_for(opened.wait(), 10)
    run = first.engine.live(decided.rfq_ids[0])
    assert run is not None
    run.parked = True  # the process dies: the RFQ is left open in the store, as by kill -9
    await shut(first)

    second = await open_system(prog, fixed(now), close_policy="deadline")
    assert await second.settle(decided.rfq_ids) == ["expired"]
    (resent,) = await second.scheduler.run_due(now)
    assert (resent.trigger, resent.action) == ("restart_retry", "hedge")
    assert resent.reasons[0].startswith("re-sent once for the period after a restart: RFQ ")
    assert [s.client_rfq_id for s in resent.submitted] == [f"program:p:{PERIOD}:hedge:r1"]
    assert await second.settle(resent.rfq_ids) == ["filled"]
    assert await second.scheduler.run_due(after(SLOT, 60)) == []  # hedged: done
    kinds = [(d["trigger"], d["action"]) for d in await second.decisions()]
    assert kinds == [("schedule", "hedge"), ("restart_retry", "hedge")]


async def test_a_second_restart_of_the_re_sent_rfq_is_an_alert_not_a_third_rfq(
        open_system: Open) -> None:
    import structlog

    from rfq_engine.domain.events import EventType

    now = after(SLOT)
    prog = {"p": program(window_ms=2000)}

    async def crash_in_window(system: Any, rfq_ids: list[str]) -> None:
        run = system.engine.live(rfq_ids[0])
        assert run is not None
        if run.state.value != "open":
            opened = asyncio.Event()
            system.engine.add_listener(
                lambda e: opened.set() if e.type == EventType.RFQ_SENT else None)
            await asyncio.wait_for(opened.wait(), 10)
        run.parked = True
        await shut(system)

    first = await open_system(prog, fixed(now), close_policy="deadline")
    (decided,) = await first.scheduler.run_due(now)
    await crash_in_window(first, decided.rfq_ids)
    second = await open_system(prog, fixed(now), close_policy="deadline")
    await second.settle(decided.rfq_ids)
    (resent,) = await second.scheduler.run_due(now)
    await crash_in_window(second, resent.rfq_ids)
    third = await open_system(prog, fixed(now), close_policy="deadline")
    assert await third.settle(resent.rfq_ids) == ["expired"]
    with structlog.testing.capture_logs() as logs:
        assert await third.scheduler.run_due(now) == []
    assert any(e["event"] == "hedge.period_unhedged_after_restart" for e in logs)
    assert len(await third.program_rfqs()) == 2
