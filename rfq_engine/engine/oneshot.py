"""Running one RFQ to its end from a one-shot command (``rfq request``, ``rfq hedge plan``),
where nobody can act on it afterwards.

A one-shot command cannot wait for a person. An RFQ that needs a second person's approval
is cancelled, with a reason that says so. An RFQ whose award is unresolved is left in
``unresolved`` (parked when the engine stops), for ``rfq resolve`` or ``rfq serve``. It is
never waited on forever, and it is never cancelled: the dealer may hold the trade.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rfq_engine.domain import RfqState
from rfq_engine.engine.engine import RfqEngine

__all__ = ["OneShotEnd", "run_to_end"]


@dataclass(frozen=True, slots=True)
class OneShotEnd:
    state: RfqState
    """Terminal, or ``unresolved``."""
    cancelled_for_approval: bool


async def run_to_end(engine: RfqEngine, rfq_id: str, *, actor: str, reason: str) -> OneShotEnd:
    """Wait for ``rfq_id`` to end or go unresolved; cancel it (as ``actor``, for ``reason``)
    if it waits for an approval."""
    run = engine.live(rfq_id)
    if run is None:
        return OneShotEnd(await engine.wait(rfq_id), False)
    waits = {asyncio.ensure_future(e.wait())
             for e in (run.done, run.waiting_unresolved, run.waiting_approval)}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    if run.waiting_approval.is_set() and not run.done.is_set() \
            and run.state is RfqState.PENDING_APPROVAL:
        await engine.cancel(rfq_id, actor=actor, reason=reason)
        return OneShotEnd(await engine.wait(rfq_id, until_unresolved=True), True)
    return OneShotEnd(await engine.wait(rfq_id, until_unresolved=True), False)
