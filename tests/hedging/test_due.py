"""Which period a scheduled run plans, and whether it is on time: the five-minute rule, the
late run after its period began (it plans the coming month, as ``rfq hedge plan --dry-run``
previews), and a first start of the scheduler on a fresh store in the middle of a month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.scheduler import ON_TIME, coming_period, due, due_period
from tests.hedging.conftest import Open
from tests.hedging.kit import program, this_months_slot

SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)
MICRO = timedelta(microseconds=1)


def test_a_run_less_than_five_minutes_late_is_on_time() -> None:
    p = program()
    assert timedelta(minutes=5) == ON_TIME
    on_time = due(p, SLOT + ON_TIME - MICRO)
    late = due(p, SLOT + ON_TIME)
    assert on_time is not None and late is not None
    assert (on_time.slot, on_time.trigger, on_time.period) == (SLOT, "schedule", PERIOD)
    assert (late.slot, late.trigger, late.period) == (SLOT, "catch_up", PERIOD)
    assert on_time.note is None and late.note is None  # the period has not begun: the slot's own
    exact = due(p, SLOT)
    assert exact is not None and exact.trigger == "schedule"
    before = due(p, SLOT - MICRO)
    assert before is not None and before.slot < SLOT  # the month before's slot


def test_a_late_run_after_its_period_began_plans_the_coming_month() -> None:
    p = program(schedule="58 23 L * *")  # the last day of the month, 23:58 UTC
    slot = datetime(2026, 11, 30, 23, 58, tzinfo=UTC)
    # four minutes late, two minutes into December: on time, December as scheduled
    assert due_period(p, slot, slot + timedelta(minutes=4)) == Period(2026, 12)
    within = due(p, slot + timedelta(minutes=4))
    assert within is not None and (within.trigger, within.period, within.note) == (
        "schedule", Period(2026, 12), None)
    # five minutes late: December has begun, so the run plans January, and says why
    late = due(p, slot + ON_TIME)
    assert late is not None and (late.slot, late.trigger, late.period) == (slot, "catch_up",
                                                                             Period(2027, 1))
    assert late.note is not None and "planned 2026-12, which had begun" in late.note
    assert late.period == coming_period(p, slot + ON_TIME)


def test_the_zone_decides_when_a_period_has_begun() -> None:
    p = program(schedule="0 20 30 11 *", timezone="America/New_York")
    slot = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 30 November 20:00 in New York
    assert coming_period(p, slot) == Period(2026, 12)
    # 1 December 04:59 UTC is still 30 November in New York: December has not begun there
    assert due_period(p, slot, datetime(2026, 12, 1, 4, 59, tzinfo=UTC)) == Period(2026, 12)
    assert due_period(p, slot, datetime(2026, 12, 1, 5, 0, tzinfo=UTC)) == Period(2027, 1)


async def test_a_first_start_mid_month_hedges_the_coming_month_like_the_dry_run(
        open_system: Open) -> None:
    month = Period.of(SLOT.date())
    mid_month = datetime(month.year, month.month, 10, 9, 30, tzinfo=UTC)
    system = await open_system({"p": program()}, lambda: mid_month)
    preview = await system.scheduler.run_program("p", now=mid_month, dry_run=True)
    (decision,) = await system.scheduler.start()
    await system.scheduler.stop()
    assert preview.period == decision.period == PERIOD == month.plus(1)
    assert decision.trigger == "catch_up" and decision.action == "hedge"
    assert decision.scheduled_for is not None and decision.scheduled_for < datetime(
        month.year, month.month, 1, tzinfo=UTC)  # last month's slot
    assert decision.reasons[0].startswith("the scheduled time ")
    assert f"planned {month}, which had begun" in decision.reasons[0]
    assert decision.plan is not None and preview.plan is not None
    assert decision.plan.target == preview.plan.target
    assert decision.plan.forecast.days == PERIOD.days  # the coming month, not the rest of this one
    assert await system.settle(decision.rfq_ids) == ["filled"]
    # this month's own slot finds the period done: one decision, one RFQ
    assert await system.scheduler.run_due(SLOT + timedelta(seconds=5)) == []
    (decided,) = await system.decisions()
    assert decided["period"] == str(PERIOD) and decided["trigger"] == "catch_up"
    assert [r.client_rfq_id for r in await system.program_rfqs()] == [f"program:p:{PERIOD}:hedge"]
