"""Which period a program's scheduled run plans, and whether the run is on time (pure).

- A run at its scheduled time ``slot`` plans the *coming period*: the month after the
  slot's month in the program's zone (``coming_period``).
- A run that starts less than ``ON_TIME`` (five minutes) after its slot is on time (trigger
  ``schedule``); a later one is a ``catch_up``.
- A late run that starts after the slot's period has begun (in the program's zone) plans
  the coming period after the run's own time instead (``due_period``): a month in progress is
  never hedged whole. A first start mid-month therefore hedges the coming month, the one
  ``rfq hedge plan --dry-run`` previews.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rfq_engine.domain.values import format_ts
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.program import ProgramConfig

__all__ = ["ON_TIME", "Due", "coming_period", "due", "due_period", "next_runs"]

ON_TIME = timedelta(minutes=5)
"""A scheduled run that starts less than this after its time is recorded as on time."""


def coming_period(program: ProgramConfig, at: datetime) -> Period:
    """The period a run at ``at`` plans: the month after ``at``'s month in the program's zone."""
    return Period.of(program.cron.local(at).date()).plus(1)


def due_period(program: ProgramConfig, slot: datetime, now: datetime) -> Period:
    """The period the run at ``now`` of the scheduled time ``slot`` plans: the slot's coming
    period, unless the run is late (``ON_TIME`` or more) and that period has already begun in
    the program's zone; then the coming period after ``now``. A month in progress is never
    hedged whole, and a first start mid-month plans what ``rfq hedge plan --dry-run`` shows."""
    period = coming_period(program, slot)
    if now - slot >= ON_TIME and program.cron.local(now).date() >= period.start:
        return coming_period(program, now)
    return period


@dataclass(frozen=True, slots=True)
class Due:
    """What ``run_due(now)`` would run for a program: its latest scheduled time, the period,
    the trigger, and why the period is not the slot's own (a late run after it began)."""

    slot: datetime
    period: Period
    trigger: str
    note: str | None = None


def due(program: ProgramConfig, now: datetime) -> Due | None:
    """The program's latest scheduled time at or before ``now`` and what it plans (pure)."""
    slot = program.cron.latest_at_or_before(now)
    if slot is None:
        return None
    period = due_period(program, slot, now)
    trigger = "catch_up" if now - slot >= ON_TIME else "schedule"
    note = None
    if period != coming_period(program, slot):
        note = (f"the scheduled time {format_ts(slot)} planned {coming_period(program, slot)}, "
                f"which had begun when this late run started ({format_ts(now)}); a month in "
                f"progress is not hedged whole: this run plans {period}")
    return Due(slot, period, trigger, note)


def next_runs(program: ProgramConfig, after: datetime, count: int = 3) -> list[datetime]:
    """The program's next ``count`` scheduled times strictly after ``after`` (UTC)."""
    out: list[datetime] = []
    at = after
    while len(out) < count:
        nxt = program.cron.next_after(at)
        if nxt is None:
            break
        out.append(nxt)
        at = nxt
    return out
