"""The hedge-program scheduler: an asyncio component ``rfq serve`` hosts next to the engine.

    scheduler = HedgeScheduler.from_config(app.engine, app.store, app.config, app.reference)
    await scheduler.start()     # catches up once, then wakes at each scheduled time
    ...
    await scheduler.stop()      # before the engine stops

At each scheduled time a program plans the *coming period* (the month after the one the
scheduled time falls in, in the program's time zone): it compares the period's target
hedge with what it holds (from its fills in the store) and submits the RFQs that close
the gap (``planner``). Exactly once per program and period:

- **Deterministic ids:** every RFQ has ``client_rfq_id = program:<name>:<period>:<kind>``
  and requester ``program:<name>``; the engine's submit is idempotent on them (in memory
  and through the store), so re-running a period never creates a second RFQ, even after
  a crash between "RFQ created" and "fill".
- **Decisions:** every decision is a durable ``program.decided`` event with its inputs
  (forecast, spot, position, target) and outcome (action, RFQ ids, reasons). A period is
  *done* once a scheduled decision other than ``error`` or ``wait`` is recorded for it.
- **Catch-up:** ``run_due(now)`` looks at the most recent scheduled time at or before
  ``now`` only: a missed schedule (the process was down) runs once when it is back, and
  older missed periods are not replayed. A run that starts less than ``ON_TIME`` (five
  minutes) after its scheduled time is on time (trigger ``schedule``); a later one is a
  ``catch_up``. A catch-up that comes after its period has begun never hedges that month
  whole: it plans the coming period after ``now``, the month ``rfq hedge plan --dry-run``
  previews (``due_period``). A program added mid-month therefore hedges the coming month.
- **Retries:** a decision that failed (``error``: stale market, engine halted) or waited on
  an open RFQ is tried again ``retry_s`` later.

A program with ``approval = true`` needs a second person. Hosted by ``rfq serve``
(``submit_for_approval=True``), its RFQs are submitted flagged ``require_approval``: each
waits in ``pending_approval`` until an approver approves or refuses it in the blotter or
the API (the engine refuses self-approval; an RFQ waiting for a person survives a
restart). In one-shot commands (no approver can act) the program only *proposes*: the
decision records the RFQs it would send, and ``rfq hedge plan NAME --approver ME`` sends
them.

``dry_run=True`` plans without writing anything at all (no RFQ, no event).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from rfq_engine.domain.errors import RfqError
from rfq_engine.domain.eventcodec import decode_payload
from rfq_engine.domain.events import ProgramDecided
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.states import RfqState
from rfq_engine.domain.values import decimal_str, format_ts, utc_now
from rfq_engine.hedging.fleet import fleet_period
from rfq_engine.hedging.forecast import Period, forecast_period
from rfq_engine.hedging.planner import Plan, plan_hedge, requester_for
from rfq_engine.hedging.positions import net_quantities
from rfq_engine.hedging.program import ForecastConfig, ProgramConfig, resolve_fleet, resolve_forecast
from rfq_engine.hedging.records import load_trades, open_rfqs, program_decisions
from rfq_engine.hedging.riskwatch import collateral_gate
from rfq_engine.hedging.slots import ON_TIME, Due, coming_period, due, due_period
from rfq_engine.pricing.reference import ReferencePriceProvider
from rfq_engine.store.base import AuditStore, StoreError

if TYPE_CHECKING:
    from rfq_engine.engine import RfqEngine

__all__ = [
    "ON_TIME",
    "Due",
    "HedgeScheduler",
    "ProgramDecision",
    "SubmittedRfq",
    "coming_period",
    "decided_period",
    "due",
    "due_period",
    "period_done",
    "prepare_plan",
    "rung_done",
]

log = structlog.get_logger("rfq_engine.hedging")

SCHEDULED = frozenset({"schedule", "catch_up"})
NOT_DONE = frozenset({"error", "wait"})
LADDER = "ladder"
"""The trigger of a ladder's further months (+2, +3, ...) at a scheduled time."""
RESTART_RETRY = "restart_retry"
"""The trigger of the one re-send for a period whose RFQ a restart ended unfilled."""
RESTARTED = "engine restarted"
"""How recovery's reasons begin when a restart ended an RFQ (engine/recovery.py)."""


@dataclass(frozen=True, slots=True)
class Resend:
    """The one re-send of a period after a restart ended its RFQ unfilled."""

    retry: int
    why: str
    later: bool = False


def _retry_of(client_rfq_id: str) -> int:
    """The ``:r<n>`` a retry appended to a program's client RFQ id (0 for none)."""
    head, sep, tail = client_rfq_id.rpartition(":r")
    return int(tail) if sep and head and tail.isdigit() else 0


async def period_done(store: AuditStore, name: str, period: Period) -> bool:
    """Whether a scheduled decision (not ``error``/``wait``, not a dry run) is recorded for
    the period."""
    decisions = await program_decisions(store, name, str(period))
    return any(d.trigger in SCHEDULED and d.action not in NOT_DONE and not d.dry_run
               for d in decisions)


async def rung_done(store: AuditStore, name: str, period: Period, slot: datetime) -> bool:
    """Whether the ladder's decision for ``period`` at the scheduled time ``slot`` is recorded
    (not ``error``/``wait``, not a dry run)."""
    return any(d.trigger == LADDER and d.scheduled_for == slot and d.action not in NOT_DONE
               and not d.dry_run for d in await program_decisions(store, name, str(period)))


async def decided_period(store: AuditStore, name: str, program: ProgramConfig, slot_due: Due
                         ) -> Period | None:
    """The period of ``slot_due`` already decided, if any: the slot's own period (run on
    time earlier), else the one a late run plans. A slot is run at most once."""
    for period in dict.fromkeys((coming_period(program, slot_due.slot), slot_due.period)):
        if await period_done(store, name, period):
            return period
    return None


async def prepare_plan(
    *,
    name: str,
    program: ProgramConfig,
    store: AuditStore | None,
    snapshot: MarketSnapshot,
    forecast_defaults: ForecastConfig | None,
    mandate_max_ratio: Decimal | None,
    period: Period,
    today: date,
    retry: int = 0,
    only_rolls: bool = False,
    rung: int = 1,
) -> Plan:
    """Read the program's fills and open RFQs (``store=None``: an empty book) and plan.
    A ladder's further month (``rung`` > 1) waits only on open RFQs of its own period."""
    inputs = resolve_forecast(forecast_defaults, program.forecast, f"programs.{name}.forecast")
    forecast = forecast_period(inputs, period.start, period.end, as_of=today)
    oer = None
    fleet = resolve_fleet(forecast_defaults, program.forecast)
    if program.opex_hedge and fleet is not None and snapshot.hashprice is not None:
        oer = fleet_period(inputs, fleet, period.start, period.end,
                           hashprice_usd=snapshot.hashprice).oer
    requester = requester_for(name)
    holdings = {}
    pending: list[tuple[str, str | None]] = []
    if store is not None:
        holdings = net_quantities(await load_trades(store, requester))
        pending = [(row.rfq_id, row.client_rfq_id) for row in await open_rfqs(store, requester)
                   if rung == 1 or f":{period}:" in (row.client_rfq_id or "")]
    return plan_hedge(name=name, program=program, period=period, forecast=forecast, snapshot=snapshot,
                      holdings=holdings, today=today, mandate_max_ratio=mandate_max_ratio,
                      open_rfqs=pending, retry=retry, only_rolls=only_rolls, opex_ratio=oer, rung=rung)


@dataclass(frozen=True, slots=True)
class SubmittedRfq:
    kind: str
    client_rfq_id: str
    rfq_id: str | None
    existing: bool
    """True when the engine returned an RFQ created earlier under the same id."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "client_rfq_id": self.client_rfq_id, "rfq_id": self.rfq_id,
                "existing": self.existing, "error": self.error}


@dataclass(frozen=True, slots=True)
class ProgramDecision:
    """One decision of a program for a period (what ``program.decided`` records)."""

    program: str
    period: Period
    trigger: str
    action: str
    plan: Plan | None
    dry_run: bool = False
    submitted: tuple[SubmittedRfq, ...] = ()
    proposed: bool = False
    approved_by: str | None = None
    scheduled_for: datetime | None = None
    error: str | None = None
    reasons: tuple[str, ...] = field(default=())

    @property
    def rfq_ids(self) -> list[str]:
        return [s.rfq_id for s in self.submitted if s.rfq_id is not None]

    def to_dict(self) -> dict[str, Any]:
        """The ``program.decided`` payload (JSON-ready, decimals as strings)."""
        plan = self.plan
        return {
            "program": self.program,
            "period": str(self.period),
            "trigger": self.trigger,
            "scheduled_for": None if self.scheduled_for is None else format_ts(self.scheduled_for),
            "action": self.action,
            "dry_run": self.dry_run,
            "strategy": None if plan is None else plan.strategy.value,
            "forecast": None if plan is None else plan.to_dict()["forecast"],
            "spot": None if plan is None or plan.spot is None else decimal_str(plan.spot),
            "position": {} if plan is None else plan.to_dict()["position"],
            "held": None if plan is None else decimal_str(plan.held),
            "target": None if plan is None else decimal_str(plan.target),
            "hedge_ratio": None if plan is None else decimal_str(plan.hedge_ratio),
            "rfqs": [s.to_dict() for s in self.submitted],
            "proposed": [r.to_dict() for r in plan.rfqs] if plan is not None and (
                self.proposed or self.dry_run) else [],
            "approved_by": self.approved_by,
            "reasons": list(self.reasons),
            "error": self.error,
        }


class HedgeScheduler:
    """Runs hedge programs on their schedules through a running ``RfqEngine``.

    ``clock`` returns the current UTC time (tests pass their own); ``reference`` gives the
    market snapshot a plan is made with (spot for strikes, hashprice for NDFs).
    """

    def __init__(
        self,
        engine: RfqEngine,
        store: AuditStore,
        programs: Mapping[str, ProgramConfig],
        reference: ReferencePriceProvider,
        clock: Callable[[], datetime] = utc_now,
        *,
        forecast: ForecastConfig | None = None,
        retry_s: float = 300.0,
        max_sleep_s: float = 3600.0,
        submit_for_approval: bool = False,
    ) -> None:
        self._engine = engine
        self._store = store
        self._programs = dict(programs)
        self._reference = reference
        self._clock = clock
        self._forecast = forecast
        self._retry = timedelta(seconds=retry_s)
        self._max_sleep = max_sleep_s
        self._submit_for_approval = submit_for_approval
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry_pending = False

    @classmethod
    def from_config(cls, engine: RfqEngine, store: AuditStore, config: Any,
                    reference: ReferencePriceProvider, clock: Callable[[], datetime] = utc_now,
                    **options: Any) -> HedgeScheduler:
        """From an ``AppConfig`` (its ``programs`` and ``forecast`` sections)."""
        return cls(engine, store, getattr(config, "programs", {}) or {}, reference, clock,
                   forecast=getattr(config, "forecast", None), **options)

    @property
    def programs(self) -> Mapping[str, ProgramConfig]:
        return dict(self._programs)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[ProgramDecision]:
        """Catch up (``run_due(now)``), then wake at every scheduled time until ``stop``.

        Returns the catch-up decisions. Start it after the engine (whose recovery settles
        the RFQs a crash left open) and stop it before the engine.
        """
        if self.running:
            raise RuntimeError("the hedge scheduler is already running")
        self._stopping.clear()
        decisions = await self.run_due(self._clock())
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="hedge-scheduler")
        return decisions

    async def stop(self) -> None:
        """Stop waking; a run in progress finishes first (its RFQs are the engine's)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            delay = self._seconds_to_next(self._clock())
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            try:
                await self.run_due(self._clock())
            except Exception:  # the scheduler must outlive one bad run; the next wake retries
                log.exception("hedge.run_due_failed")

    def next_runs(self, now: datetime | None = None) -> dict[str, datetime | None]:
        """Each enabled program's next scheduled time after ``now`` (UTC)."""
        at = now or self._clock()
        return {name: p.cron.next_after(at) for name, p in self._programs.items() if p.enabled}

    def _seconds_to_next(self, now: datetime) -> float:
        times = [t for t in self.next_runs(now).values() if t is not None]
        if self._retry_pending:
            times.append(now + self._retry)
        if not times:
            return self._max_sleep
        seconds = (min(times) - now).total_seconds()
        return min(max(seconds, 0.0), self._max_sleep)

    # ------------------------------------------------------------------ runs

    async def is_done(self, name: str, period: Period) -> bool:
        """Whether a scheduled decision (not ``error``/``wait``) is recorded for the period."""
        return await period_done(self._store, name, period)

    async def restart_resend(self, name: str, period: Period) -> Resend | None:
        """A period whose scheduled RFQs have all ended, at least one of them ended by a
        restart or failover short of its size: the one re-send it gets (the plan sizes what
        is still missing), or None. A second time is an alert instead. ``Resend.later``:
        an RFQ of the period is still running (a restart's recovery may end it): ask again."""
        decisions = [d for d in await program_decisions(self._store, name, str(period))
                     if not d.dry_run and d.action not in NOT_DONE]
        if not any(d.trigger in SCHEDULED for d in decisions):
            return None
        rfq_ids = [str(r["rfq_id"]) for d in decisions for r in (d.rfqs or ())
                   if isinstance(r, dict) and r.get("rfq_id")]
        rows = [await self._store.get_rfq(rfq_id) for rfq_id in rfq_ids]
        if not rows:
            return None  # nothing was sent: not ours to re-send
        if any(r is None or not RfqState(r.state).is_terminal for r in rows):
            return Resend(0, "", later=True)
        cut = [r for r in rows if r is not None and r.reason.startswith(RESTARTED)
               and r.filled_quantity < r.quantity]
        if not cut:
            return None
        if any(d.trigger == RESTART_RETRY for d in decisions):
            log.error("hedge.period_unhedged_after_restart", program=name, period=str(period),
                      rfqs=[r.rfq_id for r in cut], alert=True,
                      detail="re-sent once already; a person decides (rfq hedge plan --retry N)")
            return None
        retry = 1 + max((_retry_of(str(r.get("client_rfq_id", ""))) for d in decisions
                         for r in (d.rfqs or ()) if isinstance(r, dict)), default=0)
        why = "; ".join(f"RFQ {r.rfq_id} ended {r.state} ({r.reason})" for r in cut)
        return Resend(retry, f"re-sent once for the period after a restart: {why}")

    async def run_due(self, now: datetime) -> list[ProgramDecision]:
        """Run every program whose most recent scheduled time at or before ``now`` has no
        decision for its period yet: once on time, once late (``catch_up``), never twice.
        A program with a ladder then fills its further months (trigger ``ladder``), once per
        scheduled time and month."""
        decisions: list[ProgramDecision] = []
        retry = False
        for name, program in self._programs.items():
            if not program.enabled:
                continue
            slot_due = due(program, now)
            if slot_due is None:
                continue
            async with self._lock:
                decision, later = await self._run_first(name, program, slot_due, now)
                found = [] if decision is None else [decision]
                if decision is None or decision.action != "wait":
                    found += await self._run_rungs(name, program, slot_due, now)
            decisions += found
            retry = retry or later or any(d.action in NOT_DONE for d in found)
        self._retry_pending = retry
        return decisions

    async def _run_first(self, name: str, program: ProgramConfig, slot_due: Due, now: datetime
                         ) -> tuple[ProgramDecision | None, bool]:
        """The slot's own period (month +1): run once, or re-sent once after a restart. The
        flag: ask again later (an RFQ of the period is still running)."""
        decided = await decided_period(self._store, name, program, slot_due)
        if decided is None:
            return await self._run_locked(name, now=now, period=slot_due.period, trigger=slot_due.trigger,
                                          scheduled_for=slot_due.slot, note=slot_due.note), False
        resend = await self.restart_resend(name, decided)
        if resend is None or resend.later:
            return None, resend is not None
        return await self._run_locked(name, now=now, period=decided, trigger=RESTART_RETRY,
                                      scheduled_for=slot_due.slot, retry=resend.retry,
                                      note=resend.why), False

    async def _run_rungs(self, name: str, program: ProgramConfig, slot_due: Due, now: datetime
                         ) -> list[ProgramDecision]:
        """Months +2.. of the ladder, each once per scheduled time (a failed one is retried)."""
        out = []
        for rung in range(2, len(program.rungs) + 1):
            period = slot_due.period.plus(rung - 1)
            if await rung_done(self._store, name, period, slot_due.slot):
                continue
            out.append(await self._run_locked(name, now=now, period=period, trigger=LADDER,
                                              scheduled_for=slot_due.slot, rung=rung))
        return out

    async def run_program(
        self,
        name: str,
        *,
        now: datetime | None = None,
        period: Period | None = None,
        dry_run: bool = False,
        only_rolls: bool = False,
        retry: int = 0,
        approved_by: str | None = None,
    ) -> ProgramDecision:
        """Run one program now, by hand (trigger ``manual``), for ``period`` (default: the
        coming period). ``dry_run`` writes nothing; ``approved_by`` names the person who
        approves a program that requires approval."""
        if name not in self._programs:
            known = ", ".join(sorted(self._programs)) or "none"
            raise KeyError(f"unknown program {name!r}; configured: {known}")
        at = now or self._clock()
        async with self._lock:
            return await self._run_locked(
                name, now=at, period=period or coming_period(self._programs[name], at),
                trigger="manual", dry_run=dry_run, only_rolls=only_rolls, retry=retry,
                approved_by=approved_by)

    def _max_ratio(self, program: ProgramConfig) -> Decimal | None:
        mandate = self._engine.services.mandates.get(program.mandate)
        return None if mandate is None else mandate.config.max_hedge_ratio

    async def _run_locked(self, name: str, *, now: datetime, period: Period, trigger: str,
                          scheduled_for: datetime | None = None, dry_run: bool = False,
                          only_rolls: bool = False, retry: int = 0,
                          approved_by: str | None = None, note: str | None = None, rung: int = 1
                          ) -> ProgramDecision:
        program = self._programs[name]
        base = ProgramDecision(program=name, period=period, trigger=trigger, action="", plan=None,
                               dry_run=dry_run, scheduled_for=scheduled_for, approved_by=approved_by)
        lead = () if note is None else (note,)
        try:
            snapshot = await self._reference.snapshot()
            plan = await prepare_plan(
                name=name, program=program, store=self._store, snapshot=snapshot,
                forecast_defaults=self._forecast, mandate_max_ratio=self._max_ratio(program),
                period=period, today=now.astimezone(UTC).date(), retry=retry, only_rolls=only_rolls,
                rung=rung)
        except StoreError:
            raise  # a failing store is not a plan that cannot be made: it stops the run
        except (RfqError, ValueError) as exc:
            decision = replace(base, action="error", plan=None, error=str(exc),
                                       reasons=(f"could not plan: {exc}",))
            return await self._record(decision)
        program, plan = await collateral_gate(self._engine, name, program, plan, snapshot, now, dry_run)
        if dry_run:
            return replace(base, action=plan.action, plan=plan, reasons=plan.reasons)
        needs_person = bool(plan.rfqs) and program.approval and approved_by is None
        if needs_person and not self._submit_for_approval:
            decision = replace(
                base, action="proposed", plan=plan, proposed=True,
                reasons=(*plan.reasons, "the program requires a person's approval: nothing sent; run "
                         f"`rfq hedge plan {name} --approver NAME` to send these RFQs"))
            return await self._record(decision)
        submitted: list[SubmittedRfq] = []
        error = None
        requester = requester_for(name)
        for planned in plan.rfqs:
            try:
                existing = await self._store.find_rfq(requester, planned.client_rfq_id)
                spec = planned.spec
                if needs_person:  # waits in pending_approval for a second person
                    spec = dataclasses.replace(spec, require_approval=True)
                rfq_id = await self._engine.submit(spec)
            except Exception as exc:  # recorded; the period is retried
                error = f"{planned.kind}: {type(exc).__name__}: {exc}"
                submitted.append(SubmittedRfq(planned.kind, planned.client_rfq_id, None, False, str(exc)))
                break
            submitted.append(SubmittedRfq(planned.kind, planned.client_rfq_id, rfq_id, existing is not None))
        reasons = (*lead, *plan.reasons)
        if needs_person:
            reasons = (*reasons, "the program requires a person's approval: submitted to wait "
                       "in pending_approval for an approver")
        if error is not None:
            reasons = (*reasons, f"submission failed: {error}")
        decision = replace(base, action="error" if error else plan.action, plan=plan,
                                   submitted=tuple(submitted), error=error, reasons=reasons)
        return await self._record(decision)

    async def _record(self, decision: ProgramDecision) -> ProgramDecision:
        event = decode_payload(ProgramDecided, decision.to_dict())  # the typed event of it
        actor = requester_for(decision.program)
        await self._engine.services.audit(None, event, actor=actor)
        log.info("hedge.program_decided", program=decision.program, period=str(decision.period),
                 action=decision.action, trigger=decision.trigger, rfqs=decision.rfq_ids)
        return decision
