"""The unknown-outcome rule: an award whose outcome is not known is asked about, never
assumed.

After an award is sent its outcome is one of: *confirmed* (the dealer's confirm, checked
by ``check_confirm``), *rejected* (an explicit reject from the dealer, or a send the
transport provably never took: ``DealerUnavailable``), or *unknown*: no answer by
``confirm_by``, a send that timed out or failed in flight, a restart in last look.

An unknown outcome is reconciled here, through the dealer's own record
(``query_execution`` by the award's execution id), with exponential backoff:

- ``CONFIRMED`` with a confirm that passes ``check_confirm`` -> the fill
  (``execution.confirmed``, ``source: "reconciled"``);
- ``REJECTED`` -> ``execution.rejected`` (``source: "reconciled"``);
- ``NOT_FOUND`` -> a reject **only** when the dealer's ``LookupPolicy`` says its "not
  found" proves the execution never happened (``not_found_proves_absent``); otherwise it
  proves nothing and the outcome stays unknown;
- ``UNKNOWN``, a timeout or an error of the lookup -> still unknown: ask again.

A dealer that cannot be asked (``can_query`` false) is not asked; only a late confirm or
reject from it, or a person, settles its award.

While an award's outcome is unknown its quantity stays in flight: the RFQ makes no
further award (``RfqRun.remaining`` counts it, and the award round waits for it). When
``reconcile_by`` (``confirm_by`` + ``EngineConfig.reconcile_timeout_ms``) passes unsettled,
the award is escalated: ``execution.unresolved``, the RFQ waits in state ``unresolved``
with the exposure reserved, and the engine keeps asking every
``reconcile_slow_interval_ms`` until the dealer answers or a person resolves it
(``RfqEngine.resolve_execution``: ``execution.resolved``). A dealer's late confirm or
reject is applied as it arrives (``RfqRun.on_confirm`` / ``on_reject``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from dealer_adapters.protocol import DealerAdapter, ExecutionLookup, ExecutionState, LookupPolicy
from rfq_engine.domain import format_ts, utc_now
from rfq_engine.domain.events import (
    AnyEvent,
    ExecutionConfirmed,
    ExecutionRejected,
    ExecutionUnknown,
    ExecutionUnresolved,
)
from rfq_engine.engine.awards import AwardOutcome, PendingAward, check_confirm
from rfq_engine.engine.context import Services

__all__ = ["UNQUERYABLE", "LookupAnswer", "ask_once", "declare_unknown", "reconcile"]

log = structlog.get_logger("rfq_engine.reconcile")
ZERO = Decimal(0)
Record = Callable[[AnyEvent], Any]
"""Audit an event (and apply it to the RFQ's book): ``AwardDesk.record``."""
UNQUERYABLE = LookupPolicy("none", False, False, "the dealer is no longer configured")


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """One question to the dealer: its answer, or why there was none."""

    state: ExecutionState | None
    lookup: ExecutionLookup | None
    error: str | None


def policy_of(s: Services, pending: PendingAward) -> LookupPolicy:
    adapter = s.adapters.get(pending.award.dealer_id)
    if adapter is None:
        return UNQUERYABLE
    return adapter.lookup_policy(pending.award.dealer_id)


def declare_unknown(s: Services, record: Record, pending: PendingAward, reason: str) -> None:
    """Audit ``execution.unknown`` once for ``pending`` (no-op when already declared)."""
    if pending.unknown or pending.outcome.done():
        return
    pending.unknown = True
    award = pending.award
    lookup = {k: v for k, v in policy_of(s, pending).to_dict().items() if k != "note"}
    record(ExecutionUnknown(award.execution_id, award.dealer_id, reason, lookup,
                            award.confirm_by + s.config.reconcile_timeout))
    log.warning("execution.unknown", execution_id=award.execution_id,
                dealer_id=award.dealer_id, reason=reason)


async def ask_once(s: Services, pending: PendingAward) -> LookupAnswer:
    """Ask the dealer once, bounded by ``lookup_timeout_ms``; never raises."""
    award = pending.award
    adapter: DealerAdapter | None = s.adapters.get(award.dealer_id)
    if adapter is None:
        return LookupAnswer(None, None, "dealer no longer configured")
    pending.attempts += 1
    try:
        async with asyncio.timeout(s.config.lookup_timeout_ms / 1000):
            lookup = await adapter.query_execution(award.dealer_id, award.execution_id)
    except Exception as exc:  # no answer is an unknown, never a "no"
        return LookupAnswer(None, None, str(exc) or type(exc).__name__)
    return LookupAnswer(lookup.state, lookup, None)


def apply_answer(record: Record, pending: PendingAward, answer: LookupAnswer,
                 policy: LookupPolicy) -> bool:
    """Settle ``pending`` from a definitive answer; True when settled."""
    if pending.outcome.done():
        return True
    if pending.resolving:  # a person's decision is being recorded: it goes first
        return False
    award, lookup = pending.award, answer.lookup
    if answer.state is ExecutionState.CONFIRMED and lookup is not None and lookup.confirm:
        c = lookup.confirm
        problem = check_confirm(award, c)
        if problem is not None:
            pending.last_error = f"the dealer reports an execution that does not match: {problem}"
            log.error("execution.reconcile_mismatch", execution_id=award.execution_id,
                      problem=problem)
            return False
        record(ExecutionConfirmed(award.execution_id, award.dealer_id, c.price, c.quantity,
                                  c.dealer_trade_id, None, "reconciled", pending.attempts))
        pending.resolve(AwardOutcome(True, c.quantity, c.price, "confirmed", c.dealer_trade_id))
        return True
    if answer.state is ExecutionState.REJECTED:
        reason = ("reconciled: the dealer reports it rejected: "
                  f"{(lookup and lookup.reason) or 'no reason given'}")
        timeout = False
    elif answer.state is ExecutionState.NOT_FOUND and policy.not_found_proves_absent:
        reason = ("reconciled: the dealer has no record of it, which proves it was never "
                  f"executed ({policy.note or policy.key})")
        timeout = True
    else:
        return False
    record(ExecutionRejected(award.execution_id, award.dealer_id, reason, None, timeout,
                             "reconciled", pending.attempts))
    pending.resolve(AwardOutcome(False, ZERO, award.price, reason, timeout=timeout))
    return True


def _escalate(record: Record, pending: PendingAward, last: LookupAnswer | None,
              policy: LookupPolicy) -> None:
    award = pending.award
    why = ("the dealer cannot be asked and sent no confirm or reject" if not policy.can_query
           else "reconciliation could not settle it by reconcile_by")
    pending.unresolved = True
    record(ExecutionUnresolved(
        award.execution_id, award.dealer_id, why, pending.attempts,
        None if last is None or last.state is None else last.state.value,
        pending.last_error if last is None or last.error is None else last.error))
    log.error("execution.unresolved", execution_id=award.execution_id,
              dealer_id=award.dealer_id, alert="execution_unresolved_needs_a_person")
    pending.changed.set()


async def reconcile(s: Services, record: Record, pending: PendingAward, reason: str) -> None:
    """Run the unknown-outcome rule for ``pending`` until it is settled (see module doc).

    Returns when the outcome is known; escalates to unresolved at ``reconcile_by`` and then
    keeps asking slowly. Cancelled when the RFQ stops (recovery resumes it)."""
    declare_unknown(s, record, pending, reason)
    policy = policy_of(s, pending)
    cfg = s.config
    loop = asyncio.get_running_loop()
    reconcile_by = pending.deadline_mono + cfg.reconcile_timeout_ms / 1000
    delay = cfg.reconcile_backoff_ms / 1000
    last: LookupAnswer | None = None
    while not pending.outcome.done():
        if policy.can_query:
            last = await ask_once(s, pending)
            if last.error is not None:
                pending.last_error = last.error
            if apply_answer(record, pending, last, policy):
                return
        now = loop.time()
        if not pending.unresolved and now >= reconcile_by:
            _escalate(record, pending, last, policy)
        if pending.unresolved:
            wait = cfg.reconcile_slow_interval_ms / 1000
        else:
            wait = min(delay, max(reconcile_by - now, 0.0))
            delay = min(delay * 2, cfg.reconcile_backoff_max_ms / 1000)
        if not policy.can_query and not pending.unresolved:
            wait = max(reconcile_by - now, 0.0)
        try:  # a late confirm/reject (or a person) settles it meanwhile
            async with asyncio.timeout(wait):
                await asyncio.shield(pending.outcome)
        except TimeoutError:
            continue
    log.info("execution.reconciled", execution_id=pending.award.execution_id,
             attempts=pending.attempts, at=format_ts(utc_now()))
