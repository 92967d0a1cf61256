"""Last-look side tasks of an RFQ, run off the latency-critical path.

- ``lookup_after_timeout``: when ``confirm_by`` passes without an answer, ask the dealer
  once before counting it as a reject, so an exchange order that filled while its confirm
  was lost is not followed by a second trade with the next quote.
- ``record_award_reference``: the package reference at award time, for TCA.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from dealer_adapters.protocol import ExecutionState
from rfq_engine.domain import ExecutionId, decimal_str
from rfq_engine.engine.awards import AwardOutcome, PendingAward, check_confirm
from rfq_engine.store.events import EventType as E

if TYPE_CHECKING:
    from rfq_engine.engine.run import RfqRun

__all__ = ["lookup_after_timeout", "record_award_reference"]

log = structlog.get_logger("rfq_engine.lastlook")
ZERO = Decimal(0)


async def record_award_reference(run: RfqRun, execution_ids: list[ExecutionId]) -> None:
    """TCA: the reference at award time, fetched off the latency-critical path."""
    try:
        async with asyncio.timeout(run.s.config.lookup_timeout_ms / 1000):
            reference = await run.s.reference.package_reference(run.spec)
    except Exception as exc:  # no reference: TCA at award is simply absent
        log.info("award.reference_unavailable", error=str(exc) or type(exc).__name__)
        return
    run.s.audit(run.rfq_id, E.AWARD_REFERENCE,
                 {"execution_ids": list(execution_ids), "reference": reference.to_dict()})

async def lookup_after_timeout(run: RfqRun, pending: PendingAward) -> None:
    """``confirm_by`` passed without an answer. Before counting it as a reject (and
    perhaps awarding the next quote), ask the dealer once: an exchange order that timed
    out may have filled, and falling back blindly would trade twice."""
    award = pending.award
    adapter = run.s.adapters.get(award.dealer_id)
    lookup = None
    if adapter is not None:
        try:
            async with asyncio.timeout(run.s.config.lookup_timeout_ms / 1000):
                lookup = await adapter.query_execution(award.dealer_id, award.execution_id)
        except Exception as exc:  # the dealer could not say: silence counts as a reject
            log.warning("award.timeout_lookup_failed", execution_id=award.execution_id,
                        error=str(exc) or type(exc).__name__)
    if pending.outcome.done():  # a confirm or reject arrived while we asked
        return
    if lookup is not None and lookup.state is ExecutionState.CONFIRMED and lookup.confirm:
        c = lookup.confirm
        problem = check_confirm(award, c)
        if problem is None:
            run.s.audit(run.rfq_id, E.EXECUTION_CONFIRMED, {
                "execution_id": award.execution_id, "dealer_id": award.dealer_id,
                "msg_id": None, "price": decimal_str(c.price),
                "quantity": decimal_str(c.quantity), "dealer_trade_id": c.dealer_trade_id,
                "source": "reconciled_at_timeout"})
            pending.resolve(AwardOutcome(True, c.quantity, c.price, "confirmed",
                                         c.dealer_trade_id))
            return
        log.error("award.timeout_lookup_mismatch", execution_id=award.execution_id,
                  problem=problem)
    reason = "no confirm by confirm_by: counted as a reject"
    if lookup is not None and lookup.state is ExecutionState.REJECTED:
        reason = f"no confirm by confirm_by; the dealer reports it rejected: {lookup.reason}"
    run.s.audit(run.rfq_id, E.EXECUTION_REJECTED, {
        "execution_id": award.execution_id, "dealer_id": award.dealer_id,
        "reason": reason, "msg_id": None, "timeout": True})
    pending.resolve(AwardOutcome(False, ZERO, award.price, reason, timeout=True))
