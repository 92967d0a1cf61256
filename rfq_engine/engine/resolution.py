"""A person's resolution of an award whose outcome is unknown.

When the dealer cannot settle it (see ``engine.reconcile``), a person who has the
evidence (the dealer's trade blotter, a phone call, the venue's order history) decides:
*executed* (with quantity, at the awarded price, and the dealer's trade id) or *not
executed*. The decision is ``execution.resolved`` with the evidence and who made it, and
it is durable before the call returns. The first decision wins; a second call, or one
for an award already settled by the dealer, is refused (``InvalidState``, 409 at the API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rfq_engine.domain import ExecutionId, decimal_str
from rfq_engine.domain.events import ExecutionResolved
from rfq_engine.engine.awards import AwardOutcome, PendingAward
from rfq_engine.engine.errors import InvalidRequest, InvalidState, NotPermitted

__all__ = ["Resolution", "resolve_pending", "settled_conflict"]

ZERO = Decimal(0)
MAX_EVIDENCE = 4000


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a person decided about one execution, and on what evidence."""

    execution_id: ExecutionId
    executed: bool
    evidence: str
    actor: str
    quantity: Decimal | None = None
    """Executed only: the quantity the dealer booked (default: the whole award)."""
    price: Decimal | None = None
    """Executed only: must equal the awarded price when given."""
    dealer_trade_id: str = ""


def _outcome(pending: PendingAward, r: Resolution) -> AwardOutcome:
    award = pending.award
    evidence = r.evidence.strip()
    if not evidence:
        raise InvalidRequest("evidence", "a resolution needs its evidence (what shows it)")
    if len(evidence) > MAX_EVIDENCE:
        raise InvalidRequest("evidence", f"at most {MAX_EVIDENCE} characters")
    if not r.executed:
        if r.quantity not in (None, ZERO) or r.price is not None or r.dealer_trade_id:
            raise InvalidRequest("executed", "quantity, price and dealer_trade_id are for "
                                 "an execution that happened")
        return AwardOutcome(False, ZERO, award.price,
                            f"resolved by {r.actor}: not executed ({evidence})")
    quantity = award.quantity if r.quantity is None else r.quantity
    if not ZERO < quantity <= award.quantity:
        raise InvalidRequest("quantity", f"must be above 0 and at most the awarded "
                             f"{decimal_str(award.quantity)}")
    if r.price is not None and r.price != award.price:
        raise InvalidRequest("price", f"the award was at {decimal_str(award.price)}; a dealer "
                             "executes at the awarded price")
    if not r.dealer_trade_id.strip():
        raise InvalidRequest("dealer_trade_id", "an execution needs the dealer's trade id")
    return AwardOutcome(True, quantity, award.price,
                        f"resolved by {r.actor}: executed", r.dealer_trade_id.strip())


def settled_conflict(execution_id: str, earlier: AwardOutcome) -> InvalidState:
    what = "executed" if earlier.confirmed else f"not executed ({earlier.reason})"
    return InvalidState(f"execution {execution_id} is already settled: {what}")


async def resolve_pending(requester: str, pending: PendingAward, r: Resolution, *,
                          record: Callable[..., Awaitable[Any]]) -> AwardOutcome:
    """Check, claim (synchronously: first call wins), make durable, then settle."""
    if pending.outcome.done():
        raise settled_conflict(r.execution_id, pending.outcome.result())
    if pending.resolving:
        raise InvalidState(f"execution {r.execution_id} is being resolved by someone else")
    if not pending.unknown:
        raise InvalidState(f"execution {r.execution_id} is in last look (confirm_by not "
                           "passed): its outcome is not unknown yet")
    if r.actor == requester:
        raise NotPermitted("an execution must be resolved by someone other than the RFQ's "
                           "requester")
    outcome = _outcome(pending, r)
    award = pending.award
    event = ExecutionResolved(
        award.execution_id, award.dealer_id, r.executed, r.evidence.strip(), r.actor,
        outcome.quantity if r.executed else None, outcome.price if r.executed else None,
        outcome.dealer_trade_id, pending.unresolved)
    pending.resolving = True
    try:
        await record(event, actor=r.actor)
    except BaseException:
        pending.resolving = False
        raise
    pending.resolving = False
    pending.resolve(outcome)
    return outcome
