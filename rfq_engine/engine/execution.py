"""Awards in last look, for one RFQ: make them (write-ahead), send them (shielded), take
the dealer's confirm or reject, hand an unknown outcome to ``reconcile``, record fills.

``AwardDesk`` is the half of an RFQ that deals with executions; ``RfqRun`` is the half
that deals with the request (pre-trade, approval, window, ranking). The desk knows the
run only through what it is given: the services, the RFQ's book and a ``record`` function
that audits an event and applies it to the book.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog

from dealer_adapters.protocol import DealerUnavailable
from rfq_engine import failpoints
from rfq_engine.domain import (
    Award,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    RfqId,
    RfqSpec,
    decimal_str,
    new_id,
    utc_now,
)
from rfq_engine.domain.events import (
    AwardDecided,
    AwardSent,
    ExecutionConfirmed,
    ExecutionRejected,
    FillRecorded,
    MessageRejected,
)
from rfq_engine.engine import reconcile
from rfq_engine.engine.awards import AwardOutcome, PendingAward, check_confirm
from rfq_engine.engine.book import RfqBook
from rfq_engine.engine.context import Services
from rfq_engine.engine.errors import UnknownExecution
from rfq_engine.engine.resolution import Resolution, resolve_pending, settled_conflict
from rfq_engine.store.events import AuditEvent

__all__ = ["AwardDesk", "Record"]

log = structlog.get_logger("rfq_engine.execution")
ZERO = Decimal(0)
Record = Callable[..., "asyncio.Future[AuditEvent]"]
"""``record(event, actor="engine")``: audit the event and apply it to the book."""
# Award sends that outlived send_timeout_ms: never cancelled (the dealer may be booking).
_SENDS_IN_FLIGHT: set[asyncio.Task[None]] = set()


def _send_finished(task: asyncio.Task[None]) -> None:
    _SENDS_IN_FLIGHT.discard(task)
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        log.info("award.send_failed", error=str(error) or type(error).__name__)


class AwardDesk:
    def __init__(self, services: Services, book: RfqBook, record: Record,
                 spawn: Callable[[Coroutine[Any, Any, None]], None],
                 unit_notional: Decimal | None) -> None:
        self.s = services
        self.book = book
        self.record = record
        self.spawn = spawn
        self.unit_notional = unit_notional
        self.loop = asyncio.get_running_loop()
        self.pending: dict[ExecutionId, PendingAward] = {}
        self.resolved: dict[ExecutionId, AwardOutcome] = {}

    @property
    def rfq_id(self) -> RfqId:
        return self.book.rfq_id

    @property
    def spec(self) -> RfqSpec:
        return self.book.spec

    @property
    def unsettled(self) -> list[PendingAward]:
        """Awards sent whose outcome is not known (in last look, unknown or unresolved)."""
        return [p for p in self.pending.values() if not p.outcome.done()]

    @property
    def in_flight(self) -> Decimal:
        """Quantity awarded and not yet settled: never awarded again meanwhile."""
        return sum((p.award.quantity for p in self.unsettled), ZERO)

    def stop_timers(self) -> None:
        for pending in self.pending.values():
            if pending.timer is not None:
                pending.timer.cancel()

    # ----------------------------------------------------------------- awards

    async def decide(self, batch: list[tuple[Quote, Decimal, int]], cover: Decimal | None
                     ) -> list[PendingAward]:
        """Write-ahead: every award of the batch is durable before any is sent."""
        side = self.spec.award_side
        timeout = self.s.config.confirm_timeout_ms / 1000
        decided: list[asyncio.Future[Any]] = []
        awarded: list[PendingAward] = []
        for quote, quantity, rank in batch:
            price = quote.price(side)
            assert price is not None and self.unit_notional is not None
            award = Award(self.rfq_id, quote.quote_id, quote.dealer_id, side, price, quantity,
                          ExecutionId(new_id()), utc_now() + timedelta(seconds=timeout),
                          self.spec.quantity_unit)
            reason = (f"rank {rank}: best {side.value} {decimal_str(price)} of the valid quotes"
                      if rank == 1 else
                      f"rank {rank}: next best {side.value} {decimal_str(price)} after "
                      "earlier awards were rejected or did not cover the size")
            pending = PendingAward(award, quantity * self.unit_notional, rank,
                                   self.loop.time() + timeout)
            self.pending[award.execution_id] = pending
            self.s.risk.reserve_award(award.execution_id, quote.dealer_id, pending.notional)
            decided.append(self.record(AwardDecided(
                award.execution_id, award.dealer_id, award.quote_id, side.value, price,
                quantity, award.confirm_by, rank, reason, cover)))
            awarded.append(pending)
        await asyncio.gather(*decided)
        failpoints.hit("award.durable")
        return awarded

    async def send_and_settle(self, awarded: list[PendingAward]) -> None:
        """Send, then wait until each award is settled or escalated to unresolved."""
        if len(awarded) == 1:  # the usual case: no task for a one-element gather
            await self._send(awarded[0])
        else:
            await asyncio.gather(*(self._send(p) for p in awarded))
        failpoints.hit("award.sent")
        await asyncio.gather(*(p.decided() for p in awarded))
        for pending in awarded:
            if pending.outcome.done():
                await self.settle(pending)

    async def _send(self, pending: PendingAward) -> None:
        """The send runs as its own task, shielded: a send slower than ``send_timeout_ms``
        (or an RFQ that stops meanwhile) never cancels work the dealer side has started.
        Only ``DealerUnavailable`` proves it never left; any other failure leaves the
        outcome unknown until confirm_by, then it is reconciled."""
        award = pending.award
        pending.timer = self.loop.call_at(pending.deadline_mono, self._confirm_timed_out, pending)
        error: str | None = None
        undelivered = False
        send = self.loop.create_task(
            self.s.adapters[award.dealer_id].send_award(award.dealer_id, award))
        _SENDS_IN_FLIGHT.add(send)
        send.add_done_callback(_send_finished)
        try:
            async with asyncio.timeout(self.s.config.send_timeout_ms / 1000):
                await asyncio.shield(send)
        except DealerUnavailable as exc:
            error, undelivered = str(exc), True
        except TimeoutError:
            error = (f"send not finished within {self.s.config.send_timeout_ms} ms; it carries "
                     "on, the outcome is unknown until the dealer answers")
        except Exception as exc:  # in flight when it failed: the dealer may have it
            error = str(exc) or type(exc).__name__
        pending.send_error = None if undelivered else error
        self.record(AwardSent(award.execution_id, award.dealer_id, error))
        if undelivered and not pending.outcome.done():
            reason = f"award not delivered: {error}"
            self.record(ExecutionRejected(award.execution_id, award.dealer_id, reason,
                                          source="undelivered"))
            pending.resolve(AwardOutcome(False, ZERO, award.price, reason))

    def _confirm_timed_out(self, pending: PendingAward) -> None:
        if pending.outcome.done():
            return
        pending.timer = None
        reason = "no confirm or reject by confirm_by"
        if pending.send_error:
            reason += f" (the send failed in flight: {pending.send_error})"
        self.start_reconcile(pending, reason)

    def start_reconcile(self, pending: PendingAward, reason: str) -> None:
        """The unknown-outcome rule for ``pending`` (``engine.reconcile``), as a side task."""
        self.spawn(reconcile.reconcile(self.s, self.record, pending, reason))

    def adopt(self, award: Award, rank: int, *, unknown: bool, unresolved: bool) -> PendingAward:
        """Recovery: an award decided before a restart, whose outcome is not known."""
        left = (award.confirm_by - utc_now()).total_seconds()
        notional = ZERO if self.unit_notional is None else award.quantity * self.unit_notional
        pending = PendingAward(award, notional, rank, self.loop.time() + left)
        pending.unknown, pending.unresolved = unknown, unresolved
        self.pending[award.execution_id] = pending
        self.s.risk.reserve_award(award.execution_id, award.dealer_id, notional)
        self.start_reconcile(pending, "the engine restarted before the award's outcome was known")
        return pending

    async def settle(self, pending: PendingAward) -> None:
        outcome = pending.outcome.result()
        award = pending.award
        self.resolved[award.execution_id] = outcome
        del self.pending[award.execution_id]
        if not outcome.confirmed:
            self.s.risk.settle_award(award.execution_id, ZERO)
            return
        await self.record_fill(award, outcome)

    async def record_fill(self, award: Award, outcome: AwardOutcome) -> None:
        assert self.unit_notional is not None
        notional = outcome.quantity * self.unit_notional
        await self.record(FillRecorded(
            f"F-{award.execution_id}", award.execution_id, award.dealer_id, self.spec.mandate,
            outcome.price, outcome.quantity, notional, outcome.dealer_trade_id,
            self.spec.package.last_date))
        failpoints.hit("fill.durable")
        self.s.risk.settle_award(award.execution_id, notional)

    # ----------------------------------------------------------------- inbound

    def _refuse(self, base: dict[str, Any], reason: str, dealer: str) -> None:
        self.record(MessageRejected(reason, base["dealer_id"], base["msg_id"],
                                    {"execution_id": base["execution_id"]}), actor=dealer)

    def on_confirm(self, confirm: ExecutionConfirm) -> None:
        pending = self.pending.get(confirm.execution_id)
        base = {"dealer_id": confirm.dealer_id, "msg_id": confirm.msg_id,
                "execution_id": confirm.execution_id}
        if pending is None or pending.outcome.done():
            earlier = (pending.outcome.result() if pending is not None
                       else self.resolved.get(confirm.execution_id))
            if earlier is not None and earlier.confirmed:
                why = "duplicate confirm: execution already filled once (idempotent)"
            elif earlier is not None:
                why = f"confirm after the execution ended: {earlier.reason}"
            else:
                why = "confirm for an execution this RFQ never awarded"
            self._refuse(base, why, confirm.dealer_id)
            return
        if pending.resolving:  # a person's decision on it is being recorded and goes first
            self._refuse(base, "confirm arrived while a person's resolution of this execution "
                               "was being recorded; review the resolution", confirm.dealer_id)
            log.error("execution.resolution_contradicted", execution_id=confirm.execution_id)
            return
        problem = check_confirm(pending.award, confirm)
        if problem is not None:
            self._refuse(base, problem, confirm.dealer_id)
            return
        self.record(ExecutionConfirmed(
            confirm.execution_id, confirm.dealer_id, confirm.price, confirm.quantity,
            confirm.dealer_trade_id, confirm.msg_id, "dealer"), actor=confirm.dealer_id)
        pending.resolve(AwardOutcome(True, confirm.quantity, confirm.price, "confirmed",
                                     confirm.dealer_trade_id))

    def on_reject(self, reject: ExecutionReject) -> None:
        pending = self.pending.get(reject.execution_id)
        base = {"dealer_id": reject.dealer_id, "msg_id": reject.msg_id,
                "execution_id": reject.execution_id}
        if pending is None or pending.outcome.done() or pending.award.dealer_id != reject.dealer_id \
                or pending.resolving:
            self._refuse(base, "reject for no pending award of this dealer", reject.dealer_id)
            return
        reason = f"rejected by the dealer: {reject.reason or 'no reason given'}"
        self.record(ExecutionRejected(reject.execution_id, reject.dealer_id, reason,
                                      reject.msg_id, False), actor=reject.dealer_id)
        pending.resolve(AwardOutcome(False, ZERO, pending.award.price, reason))

    async def resolve(self, resolution: Resolution) -> AwardOutcome:
        """A person's decision on an award whose outcome is unknown (``engine.resolution``)."""
        pending = self.pending.get(resolution.execution_id)
        if pending is None:
            earlier = self.resolved.get(resolution.execution_id)
            if earlier is not None:
                raise settled_conflict(resolution.execution_id, earlier)
            raise UnknownExecution(self.rfq_id, resolution.execution_id)
        return await resolve_pending(self.spec.requester, pending, resolution,
                                     record=self.record)

