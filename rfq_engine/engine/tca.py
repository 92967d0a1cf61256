"""Transaction-cost analysis inputs, recorded off the latency-critical path: the package
reference at award time (``award.reference_recorded``)."""

from __future__ import annotations

import asyncio

import structlog

from rfq_engine.domain import ExecutionId, RfqSpec
from rfq_engine.domain.events import AwardReferenceRecorded
from rfq_engine.engine.context import Services

__all__ = ["record_award_reference"]

log = structlog.get_logger("rfq_engine.tca")


async def record_award_reference(services: Services, rfq_id: str, spec: RfqSpec,
                                 execution_ids: list[ExecutionId]) -> None:
    """The reference at award time; absent (logged) when it cannot be priced in time."""
    try:
        async with asyncio.timeout(services.config.lookup_timeout_ms / 1000):
            reference = await services.reference.package_reference(spec)
    except Exception as exc:  # no reference: TCA at award is simply absent
        log.info("award.reference_unavailable", error=str(exc) or type(exc).__name__)
        return
    services.audit(rfq_id, AwardReferenceRecorded(tuple(execution_ids), reference.to_dict()))
