"""Recovery: rebuild every non-terminal RFQ from the audit store alone, then finish it.

What happens to an RFQ found open after a crash, by the state it was left in:

- ``created``: nothing reached a dealer; it is run again from the pre-trade check.
- ``pending_approval``: it waits again for approval until its original approval deadline
  (if the approval had been granted already, it opens now).
- ``open``: the response window was interrupted and the quotes are not acted on: it ends
  ``expired``, and every dealer asked is told so.
- ``awarding`` / ``confirming`` / ``unresolved``: each award that was decided but not
  settled is reconciled, never re-awarded: a confirm (or a person's resolution) already
  audited becomes its fill if the fill is missing; every other award's outcome is
  *unknown* and goes through the unknown-outcome rule (``engine.reconcile``): the dealer is
  asked at once and then with backoff; silence is never a reject. An award that cannot be
  settled leaves the RFQ ``unresolved`` (waiting for the dealer or a person). Then the RFQ
  ends with what it filled. No new award is made after a restart.

Fills are keyed by execution id, so a fill is never recorded twice for one award.

An RFQ that had ended (its terminal state durable) when the engine died, but whose
``rfq.closed`` had not gone out (no ``rfq.outcome_sent`` after it), is told to its dealers
now, once, with an ``rfq.outcome_sent`` that gives the reason. Only RFQs that ended within
``OUTCOME_LOOKBACK`` are looked at: a restart is expected within days, and the query stays
bounded by that window's traffic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    QuoteId,
    QuoteSide,
    RfqId,
    RfqSpec,
    RfqState,
    parse_decimal,
    parse_ts,
    utc_now,
)
from rfq_engine.engine.awards import AwardOutcome, PendingAward
from rfq_engine.engine.run import RfqRun
from rfq_engine.store.base import EventFilter
from rfq_engine.store.events import AuditEvent
from rfq_engine.store.events import EventType as E

if TYPE_CHECKING:
    from rfq_engine.engine.engine import RfqEngine

__all__ = ["OUTCOME_LOOKBACK", "RecoveredRfq", "recover_open_rfqs", "replay",
           "resend_missing_outcomes"]

log = structlog.get_logger("rfq_engine.recovery")

OUTCOME_LOOKBACK = timedelta(days=7)
OUTCOME_RESENT = "engine restarted after the RFQ ended and before its outcome was sent"
_TERMINAL_VALUES = frozenset(state.value for state in RfqState if state.is_terminal)
NON_TERMINAL = [s.value for s in RfqState if not s.is_terminal]


@dataclass
class RecoveredRfq:
    rfq_id: RfqId
    spec: RfqSpec
    state: RfqState
    notional: Decimal | None
    sent_to: tuple[DealerId, ...] = ()
    approval_expires: datetime | None = None
    approved_by: str | None = None
    cancel_reason: str | None = None
    awards: dict[ExecutionId, tuple[Award, int]] = field(default_factory=dict)
    confirmed: dict[ExecutionId, AwardOutcome] = field(default_factory=dict)
    rejected: set[ExecutionId] = field(default_factory=set)
    unknown: set[ExecutionId] = field(default_factory=set)
    unresolved: set[ExecutionId] = field(default_factory=set)
    filled: dict[ExecutionId, tuple[Decimal, Decimal, str]] = field(default_factory=dict)


def replay(events: list[AuditEvent]) -> RecoveredRfq:
    """The state of one RFQ from its events (pure)."""
    rec: RecoveredRfq | None = None
    for event in events:
        p: dict[str, Any] = event.payload
        if event.type == E.RFQ_SUBMITTED:
            notional = p.get("notional")
            rec = RecoveredRfq(RfqId(str(event.rfq_id)), RfqSpec.from_dict(p["spec"]),
                               RfqState.CREATED, None if notional is None else Decimal(notional))
            continue
        if rec is None:
            continue
        if event.type == E.RFQ_STATE_CHANGED:
            rec.state = RfqState(p["to"])
        elif event.type == E.APPROVAL_REQUESTED:
            rec.approval_expires = parse_ts(p["expires_at"], "expires_at")
        elif event.type == E.APPROVAL_GRANTED:
            rec.approved_by = str(p["approver"])
        elif event.type == E.CANCEL_REQUESTED:
            rec.cancel_reason = str(p["reason"])
        elif event.type == E.RFQ_SENT:
            rec.sent_to = tuple(DealerId(d) for d in p["sent"]) + tuple(
                DealerId(d) for d in p.get("failed", {}))
        elif event.type == E.AWARD_DECIDED:
            award = Award(rec.rfq_id, QuoteId(p["quote_id"]), DealerId(p["dealer_id"]),
                          QuoteSide(p["side"]), parse_decimal(p["price"], "price"),
                          parse_decimal(p["quantity"], "quantity"), ExecutionId(p["execution_id"]),
                          parse_ts(p["confirm_by"], "confirm_by"), rec.spec.quantity_unit)
            rec.awards[award.execution_id] = (award, int(p["rank"]))
        elif event.type == E.EXECUTION_CONFIRMED:
            rec.confirmed[ExecutionId(p["execution_id"])] = AwardOutcome(
                True, Decimal(p["quantity"]), Decimal(p["price"]), "confirmed",
                str(p.get("dealer_trade_id", "")))
        elif event.type == E.EXECUTION_REJECTED:
            rec.rejected.add(ExecutionId(p["execution_id"]))
        elif event.type == E.EXECUTION_UNKNOWN:
            rec.unknown.add(ExecutionId(p["execution_id"]))
        elif event.type == E.EXECUTION_UNRESOLVED:
            rec.unresolved.add(ExecutionId(p["execution_id"]))
        elif event.type == E.EXECUTION_RESOLVED:
            eid = ExecutionId(p["execution_id"])
            if p.get("executed"):
                rec.confirmed[eid] = AwardOutcome(
                    True, Decimal(p["quantity"]), Decimal(p["price"]),
                    f"resolved by {p.get('resolved_by')}: executed",
                    str(p.get("dealer_trade_id", "")))
            else:
                rec.rejected.add(eid)
        elif event.type == E.FILL_RECORDED:
            rec.filled[ExecutionId(p["execution_id"])] = (
                Decimal(p["quantity"]), Decimal(p["price"]), str(p.get("dealer_trade_id", "")))
    if rec is None:
        raise ValueError("no rfq.submitted event")
    return rec


async def recover_open_rfqs(engine: RfqEngine, *, resume_pending_approval: bool = True
                            ) -> list[RfqId]:
    """Resume or close every non-terminal RFQ; returns the ids it took over.

    ``resume_pending_approval=False`` (one-shot commands, where no approver can act) leaves
    RFQs waiting for approval untouched in the store for a long-running engine to resume.
    """
    s = engine.services
    resent = await resend_missing_outcomes(engine)  # first: none of these is running now
    rows = await s.store.rfqs(states=NON_TERMINAL)
    recovered: list[RfqId] = []
    for row in rows:
        if row.state == RfqState.PENDING_APPROVAL.value and not resume_pending_approval:
            continue
        events = await s.store.events(EventFilter(rfq_id=row.rfq_id))
        rec = replay(events)
        mandate = s.mandates.get(rec.spec.mandate)
        if mandate is None:
            log.error("recovery.mandate_missing", rfq_id=rec.rfq_id, mandate=rec.spec.mandate)
            s.audit(rec.rfq_id, E.RFQ_STATE_CHANGED, {
                "from": rec.state.value, "to": RfqState.FAILED.value,
                "reason": f"recovery: mandate {rec.spec.mandate!r} is no longer configured"})
            recovered.append(rec.rfq_id)
            continue
        run = RfqRun(s, rec.rfq_id, rec.spec, mandate, notional=rec.notional, reference=None,
                     state=rec.state)
        run.ready.clear()  # until its awards are rebuilt (a person's resolve waits for it)
        run.sent_to = tuple(d for d in rec.sent_to if d in s.adapters)
        run.approval_expires = rec.approval_expires
        if rec.cancel_reason is not None:
            run.request_cancel(rec.cancel_reason)
        for eid, (qty, price, trade_id) in rec.filled.items():
            award, _ = rec.awards[eid]
            run.resolved[eid] = AwardOutcome(True, qty, price, "confirmed", trade_id)
            run.filled_quantity += qty
            run.filled_value += qty * price
            if run.unit_notional is not None:
                run.filled_notional += qty * run.unit_notional
            run.winners.add(award.dealer_id)
        if rec.notional is not None and rec.state is not RfqState.CREATED:
            s.risk.reserve_rfq(rec.rfq_id, rec.spec.mandate, utc_now(), rec.notional)
        engine.launch(run, _resume(run, rec))
        recovered.append(rec.rfq_id)
    if recovered or resent:
        await s.audit(None, E.ENGINE_RECOVERED, {"rfqs": recovered, "outcomes_sent": resent})
        log.info("recovery.done", rfqs=len(recovered), outcomes_sent=len(resent))
    return recovered


async def resend_missing_outcomes(
    engine: RfqEngine, *, lookback: timedelta = OUTCOME_LOOKBACK
) -> list[RfqId]:
    """Tell the dealers the outcome of every RFQ that ended within ``lookback`` without
    ``rfq.outcome_sent``; returns their ids. Only for RFQs no run is handling."""
    s = engine.services
    ended: set[str] = set()
    told: set[str] = set()
    window = EventFilter(types=[E.RFQ_STATE_CHANGED, E.OUTCOME_SENT], since=utc_now() - lookback)
    for event in await s.store.events(window):
        if event.rfq_id is None:
            continue
        if event.type == E.OUTCOME_SENT:
            told.add(event.rfq_id)
        elif event.payload.get("to") in _TERMINAL_VALUES:
            ended.add(event.rfq_id)
    resent: list[RfqId] = []
    for rfq_id in sorted(ended - told):
        rec = replay(await s.store.events(EventFilter(rfq_id=rfq_id)))
        if not rec.state.is_terminal or not rec.sent_to:
            continue  # reopened is impossible; no dealer asked: nothing to tell
        mandate = s.mandates.get(rec.spec.mandate)
        if mandate is None:
            log.error("recovery.outcome_not_sent", rfq_id=rfq_id, mandate=rec.spec.mandate)
            continue
        run = RfqRun(s, rec.rfq_id, rec.spec, mandate, notional=rec.notional, reference=None,
                     state=rec.state)
        run.sent_to = rec.sent_to
        run.winners.update(rec.awards[eid][0].dealer_id for eid in rec.filled if eid in rec.awards)
        await run.send_outcome(rec.state, reason=OUTCOME_RESENT)
        resent.append(rec.rfq_id)
    return resent


async def _resume(run: RfqRun, rec: RecoveredRfq) -> None:
    with structlog.contextvars.bound_contextvars(rfq_id=run.rfq_id):
        try:
            await _resume_inner(run, rec)
        except asyncio.CancelledError:
            if run.unsettled and not run.state.is_terminal:
                await asyncio.shield(run.park_unsettled("engine stopped during recovery"))
            raise
        except Exception as exc:
            log.exception("recovery.failed")
            if run.unsettled and not run.state.is_terminal:
                await run.park_unsettled(f"recovery failed: {type(exc).__name__}: {exc}")
            elif not run.state.is_terminal:
                await run._finish(RfqState.FAILED, f"recovery failed: {type(exc).__name__}: {exc}")
        finally:
            run.stop_side_tasks()
            run.ready.set()
            run.done.set()


async def _resume_inner(run: RfqRun, rec: RecoveredRfq) -> None:
    if run.state in (RfqState.CREATED, RfqState.PENDING_APPROVAL, RfqState.OPEN):
        run.ready.set()  # no award to rebuild
    if run.state is RfqState.CREATED:
        # Nothing reached a dealer: price it again and run it from the pre-trade check.
        try:
            run.reference = await run.s.reference.package_reference(run.spec)
        except Exception:
            run.reference = None
        await run.run()
        return
    if run.state is RfqState.PENDING_APPROVAL:
        if rec.approved_by is not None:
            run.grant(rec.approved_by)
        await run.run()
        return
    if run.state is RfqState.OPEN:
        await run._finish(RfqState.EXPIRED,
                          "engine restarted during the response window; quotes were not acted on")
        return
    # awarding / confirming / unresolved: settle every award that was decided, never make
    # a new one.
    unsettled = [eid for eid in rec.awards if eid not in rec.rejected and eid not in rec.filled]
    if unsettled and run.state is RfqState.AWARDING:
        run._transition(RfqState.CONFIRMING, "recovery: award(s) decided before the restart")
    pendings = [p for p in [await _settle_after_restart(run, rec, eid) for eid in unsettled]
                if p is not None]
    run.ready.set()
    await asyncio.gather(*(p.decided() for p in pendings))
    for pending in pendings:
        if pending.outcome.done():
            await run._settle(pending)
    why = "engine restarted; no new award is made after a restart"
    if run.unsettled:
        why = await run.await_unresolved()
    await run.finish_with_fills(why, "filled (awards settled after a restart)")


async def _settle_after_restart(run: RfqRun, rec: RecoveredRfq, eid: ExecutionId
                                ) -> PendingAward | None:
    """A confirmed award's fill now; any other award as unknown, under reconciliation."""
    award, rank = rec.awards[eid]
    s = run.s
    if eid in rec.confirmed:  # confirmed (or resolved executed) before the crash, no fill yet
        await run.record_fill(award, rec.confirmed[eid])
        run.resolved[eid] = rec.confirmed[eid]
        return None
    left = (award.confirm_by - utc_now()).total_seconds()
    pending = PendingAward(award, Decimal(0), rank, run.loop.time() + left)
    if run.unit_notional is not None:
        pending.notional = award.quantity * run.unit_notional
    pending.unknown = eid in rec.unknown
    pending.unresolved = eid in rec.unresolved
    run.pending[eid] = pending
    s.risk.reserve_award(eid, award.dealer_id, pending.notional)
    log.info("recovery.reconciling", execution_id=eid, unresolved=pending.unresolved,
             confirm_by_in=round(left, 3))
    run.start_reconcile(pending, "the engine restarted before the award's outcome was known")
    return pending
