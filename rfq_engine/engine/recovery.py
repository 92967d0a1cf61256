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
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Protocol

import structlog

from rfq_engine.domain import (
    RfqId,
    RfqState,
    utc_now,
)
from rfq_engine.domain.events import (
    AnyEvent,
    EngineRecovered,
    EventType,
    RfqStateChanged,
    UnknownEvent,
    decode,
)
from rfq_engine.engine.book import RfqBook
from rfq_engine.engine.context import Services
from rfq_engine.engine.run import RfqRun
from rfq_engine.store.base import EventFilter
from rfq_engine.store.events import AuditEvent


class Host(Protocol):
    """What recovery needs from the engine (it never imports the engine)."""

    @property
    def services(self) -> Services: ...

    def launch(self, run: RfqRun, coro: Coroutine[Any, Any, None] | None = None) -> None: ...

__all__ = ["OUTCOME_LOOKBACK", "decoded", "recover_open_rfqs", "replay",
           "resend_missing_outcomes"]

log = structlog.get_logger("rfq_engine.recovery")

OUTCOME_LOOKBACK = timedelta(days=7)
OUTCOME_RESENT = "engine restarted after the RFQ ended and before its outcome was sent"
_TERMINAL_VALUES = frozenset(state.value for state in RfqState if state.is_terminal)
NON_TERMINAL = [s.value for s in RfqState if not s.is_terminal]


def decoded(events: list[AuditEvent]) -> list[AnyEvent | UnknownEvent]:
    """The typed events of stored rows, in order."""
    return [decode(e.type, e.payload) for e in events]


def replay(events: list[AuditEvent]) -> RfqBook:
    """The book of one RFQ from its stored events (pure): the same ``RfqBook.apply`` the
    live run used as it wrote them."""
    if not events or events[0].rfq_id is None:
        raise ValueError("no rfq.submitted event")
    return RfqBook.from_events(events[0].rfq_id, decoded(events))


async def recover_open_rfqs(engine: Host, *, resume_pending_approval: bool = True
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
        book = replay(events)
        mandate = s.mandates.get(book.spec.mandate)
        if mandate is None:
            log.error("recovery.mandate_missing", rfq_id=book.rfq_id, mandate=book.spec.mandate)
            s.audit(book.rfq_id, RfqStateChanged(
                book.state.value, RfqState.FAILED.value,
                f"recovery: mandate {book.spec.mandate!r} is no longer configured"))
            recovered.append(book.rfq_id)
            continue
        book.sent_to = tuple(d for d in book.sent_to if d in s.adapters)
        run = RfqRun(s, book.rfq_id, book.spec, mandate, notional=book.notional,
                     reference=None, book=book)
        run.ready.clear()  # until its awards are rebuilt (a person's resolve waits for it)
        if book.cancel_reason is not None:
            run.request_cancel(book.cancel_reason)
        run.desk.resolved.update(book.filled)
        if book.notional is not None and book.state is not RfqState.CREATED:
            s.risk.reserve_rfq(book.rfq_id, book.spec.mandate, utc_now(), book.notional)
        engine.launch(run, _resume(run))
        recovered.append(book.rfq_id)
    if recovered or resent:
        await s.audit(None, EngineRecovered(tuple(recovered), tuple(resent)))
        log.info("recovery.done", rfqs=len(recovered), outcomes_sent=len(resent))
    return recovered


async def resend_missing_outcomes(
    engine: Host, *, lookback: timedelta = OUTCOME_LOOKBACK
) -> list[RfqId]:
    """Tell the dealers the outcome of every RFQ that ended within ``lookback`` without
    ``rfq.outcome_sent``; returns their ids. Only for RFQs no run is handling."""
    s = engine.services
    ended: set[str] = set()
    told: set[str] = set()
    window = EventFilter(types=[EventType.RFQ_STATE_CHANGED, EventType.OUTCOME_SENT],
                         since=utc_now() - lookback)
    for event in await s.store.events(window):
        if event.rfq_id is None:
            continue
        if event.type == EventType.OUTCOME_SENT:
            told.add(event.rfq_id)
        elif event.payload.get("to") in _TERMINAL_VALUES:
            ended.add(event.rfq_id)
    resent: list[RfqId] = []
    for rfq_id in sorted(ended - told):
        book = replay(await s.store.events(EventFilter(rfq_id=rfq_id)))
        if not book.state.is_terminal or not book.sent_to:
            continue  # reopened is impossible; no dealer asked: nothing to tell
        mandate = s.mandates.get(book.spec.mandate)
        if mandate is None:
            log.error("recovery.outcome_not_sent", rfq_id=rfq_id, mandate=book.spec.mandate)
            continue
        run = RfqRun(s, book.rfq_id, book.spec, mandate, notional=book.notional,
                     reference=None, book=book)
        await run.send_outcome(book.state, reason=OUTCOME_RESENT)
        resent.append(book.rfq_id)
    return resent


async def _resume(run: RfqRun) -> None:
    with structlog.contextvars.bound_contextvars(rfq_id=run.rfq_id):
        try:
            await _resume_inner(run)
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


async def _resume_inner(run: RfqRun) -> None:
    book = run.book
    if run.state in (RfqState.CREATED, RfqState.PENDING_APPROVAL, RfqState.OPEN):
        run.ready.set()  # no award to rebuild
    if run.state is RfqState.CREATED:
        # Nothing reached a dealer: price it again and run it from the pre-trade check.
        try:
            run.reference = await run.services.reference.package_reference(run.spec)
        except Exception:
            run.reference = None
        await run.run()
        return
    if run.state is RfqState.PENDING_APPROVAL:
        if book.approved_by is not None:
            run.grant(book.approved_by)
        await run.run()
        return
    if run.state is RfqState.OPEN:
        await run._finish(RfqState.EXPIRED,
                          "engine restarted during the response window; quotes were not acted on")
        return
    # awarding / confirming / unresolved: settle every award that was decided, never make
    # a new one.
    unsettled = book.unsettled
    if unsettled and run.state is RfqState.AWARDING:
        run._transition(RfqState.CONFIRMING, "recovery: award(s) decided before the restart")
    pendings = []
    for eid in unsettled:
        award, rank = book.awards[eid]
        if eid in book.confirmed:  # confirmed (or resolved executed) before the crash, no fill
            await run.desk.record_fill(award, book.confirmed[eid])
            run.desk.resolved[eid] = book.confirmed[eid]
            continue
        log.info("recovery.reconciling", execution_id=eid, unresolved=eid in book.unresolved)
        pendings.append(run.desk.adopt(award, rank, unknown=eid in book.unknown,
                                       unresolved=eid in book.unresolved))
    run.ready.set()
    await asyncio.gather(*(p.decided() for p in pendings))
    for pending in pendings:
        if pending.outcome.done():
            await run.desk.settle(pending)
    why = "engine restarted; no new award is made after a restart"
    if run.unsettled:
        why = await run.await_unresolved()
    await run.finish_with_fills(why, "filled (awards settled after a restart)")
