"""Last-look side tasks of an RFQ, run off the latency-critical path.

- ``record_award_reference``: the package reference at award time, for TCA.

(An award with no answer by ``confirm_by`` is handled by ``engine.reconcile``.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from rfq_engine.domain import ExecutionId
from rfq_engine.store.events import EventType as E

if TYPE_CHECKING:
    from rfq_engine.engine.run import RfqRun

__all__ = ["record_award_reference"]

log = structlog.get_logger("rfq_engine.lastlook")


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
