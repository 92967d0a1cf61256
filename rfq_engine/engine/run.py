"""One RFQ's lifecycle, from pre-trade check to the outcome sent to every dealer.

    submit ─► pre-trade mandate check ─► (approval) ─► open: send to every dealer at once
      ─► collect until the deadline (monotonic), or every dealer answered (close policy)
      ─► rank the valid quotes ─► award the best (write-ahead) ─► last look
      ─► confirm: fill; explicit reject: the next best, still valid and within mandate;
         no answer: *unknown*, reconciled with the dealer (``reconcile``) before anything
         else is awarded, ``unresolved`` (waiting for the dealer or a person) if it cannot be
      ─► tell every dealer the outcome

Every state change goes through ``_transition`` (the table in ``domain.states``) and is an
audit event. Decisions (award, fill, the terminal state) are durable before the message
that acts on them leaves the process. Inbound messages arrive through the ``on_*``
methods, called by the engine's dispatcher on the event loop; they never block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from dealer_adapters.protocol import DealerUnavailable
from rfq_engine import failpoints
from rfq_engine.domain import (
    Award,
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Quote,
    RfqClosed,
    RfqId,
    RfqNew,
    RfqSpec,
    RfqState,
    check_transition,
    decimal_str,
    format_ts,
    new_id,
    utc_now,
)
from rfq_engine.domain.rfq import ClosePolicy
from rfq_engine.engine import lastlook, reconcile, selection
from rfq_engine.engine.awards import AwardOutcome, PendingAward, award_payload, check_confirm
from rfq_engine.engine.context import Services
from rfq_engine.engine.errors import UnknownExecution
from rfq_engine.engine.resolution import Resolution, resolve_pending, settled_conflict
from rfq_engine.engine.selection import Candidates, QuoteJudge
from rfq_engine.engine.validation import check_quote
from rfq_engine.mandate import Mandate, PreTradeContext, Verdict, all_passed
from rfq_engine.pricing.reference import PackageReference
from rfq_engine.store.events import EventType as E

__all__ = ["RfqRun"]

log = structlog.get_logger("rfq_engine.run")
ZERO = Decimal(0)
# Award sends that outlived send_timeout_ms: never cancelled (the dealer may be booking).
_SENDS_IN_FLIGHT: set[asyncio.Task[None]] = set()
_OUTCOME_WIRE = {
    RfqState.FILLED: "filled",
    RfqState.PARTIALLY_FILLED: "filled",
    RfqState.NOT_FILLED: "not_filled",
    RfqState.CANCELLED: "cancelled",
    RfqState.EXPIRED: "expired",
    RfqState.REJECTED: "not_filled",
    RfqState.FAILED: "not_filled",
}


def _send_finished(task: asyncio.Task[None]) -> None:
    _SENDS_IN_FLIGHT.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.info("award.send_failed", error=str(task.exception()) or type(task.exception()).__name__)


def _quote_fields(q: Quote) -> dict[str, Any]:
    return {
        "dealer_id": q.dealer_id,
        "quote_id": q.quote_id,
        "bid": None if q.bid is None else decimal_str(q.bid),
        "ask": None if q.ask is None else decimal_str(q.ask),
        "quantity": decimal_str(q.quantity),
        "valid_until": format_ts(q.valid_until),
        "received_at": format_ts(q.received_at),
        "msg_id": q.msg_id,
    }


def _verdicts(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [v.to_dict() for v in verdicts]


class RfqRun:
    """The live state of one RFQ. Created by the engine (or by recovery), run as one task."""

    def __init__(
        self,
        services: Services,
        rfq_id: RfqId,
        spec: RfqSpec,
        mandate: Mandate,
        *,
        notional: Decimal | None,
        reference: PackageReference | None,
        state: RfqState = RfqState.CREATED,
    ) -> None:
        self.s = services
        self.rfq_id = rfq_id
        self.spec = spec
        self.mandate = mandate
        self.notional = notional
        self.unit_notional = None if notional is None else notional / spec.quantity
        self.reference = reference
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.deadline_mono = 0.0
        self.deadline: datetime | None = None
        self.sent_to: tuple[DealerId, ...] = ()
        self.quotes: dict[DealerId, Quote] = {}
        self.responded: set[DealerId] = set()
        self.pending: dict[ExecutionId, PendingAward] = {}
        self.resolved: dict[ExecutionId, AwardOutcome] = {}
        self.winners: set[DealerId] = set()
        self.filled_quantity = ZERO
        self.filled_notional = ZERO
        self.filled_value = ZERO  # sum(price * qty), for the average price
        self.cancel_reason: str | None = None
        self.approval: asyncio.Future[tuple[bool, str, str]] = self.loop.create_future()
        self.approval_expires: datetime | None = None
        self.parked = False  # engine stopping: left pending in the store, resumed on restart
        self._wake = asyncio.Event()
        self.unreachable: set[DealerId] = set()
        self.waiting_unresolved = asyncio.Event()  # in ``unresolved``, waiting for a settlement
        self.ready = asyncio.Event()  # recovery clears it until the awards are rebuilt
        self.ready.set()
        self.window_closed_mono: float | None = None
        self._lookups: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        self.final_reason = ""

    # ----------------------------------------------------------------- state machine

    def _transition(self, target: RfqState, reason: str) -> asyncio.Future[Any]:
        check_transition(self.rfq_id, self.state, target)
        previous, self.state = self.state, target
        return self.s.audit(
            self.rfq_id,
            E.RFQ_STATE_CHANGED,
            {"from": previous.value, "to": target.value, "reason": reason},
        )

    async def _finish(self, target: RfqState, reason: str) -> None:
        """Terminal state: durable first, then the outcome to every dealer that was asked."""
        self.final_reason = reason
        await self._transition(target, reason)
        failpoints.hit("outcome.durable")
        self.s.risk.settle_rfq(self.rfq_id, self.filled_notional)
        log.info("rfq.finished", state=target.value, reason=reason,
                 filled=decimal_str(self.filled_quantity))
        if self.sent_to:
            await self.send_outcome(target)

    async def send_outcome(self, target: RfqState, *, reason: str | None = None) -> None:
        """``rfq.closed`` to every dealer asked, then ``rfq.outcome_sent`` (with ``reason``
        when this is not the RFQ's own end, e.g. recovery)."""
        outcome = _OUTCOME_WIRE[target]
        notified: list[str] = []
        failed: dict[str, str] = {}

        async def tell(dealer: DealerId) -> None:
            message = RfqClosed(self.rfq_id, outcome, dealer in self.winners)
            adapter = self.s.adapters.get(dealer)
            if adapter is None:
                failed[dealer] = "dealer no longer configured"
                return
            try:
                async with asyncio.timeout(self.s.config.send_timeout_ms / 1000):
                    await adapter.send_closed(dealer, message)
                notified.append(dealer)
            except (DealerUnavailable, TimeoutError, OSError) as exc:
                failed[dealer] = str(exc) or type(exc).__name__

        await asyncio.gather(*(tell(d) for d in self.sent_to))
        payload: dict[str, Any] = {"outcome": outcome, "notified": sorted(notified), "failed": failed}
        if reason is not None:
            payload["reason"] = reason
        self.s.audit(self.rfq_id, E.OUTCOME_SENT, payload)

    # ----------------------------------------------------------------- inbound

    def on_quote(self, quote: Quote) -> None:
        fields = _quote_fields(quote)
        if quote.dealer_id not in self.spec.dealers:
            self._reject_quote(fields, "dealer was not invited to this RFQ", "receive")
            return
        if self.state is not RfqState.OPEN or self.loop.time() > self.deadline_mono:
            self._reject_quote(fields, f"late: arrived with the RFQ {self.state.value}", "receive")
            return
        dealer = quote.dealer_id
        reason = check_quote(self.spec, quote, now=quote.received_at, min_validity=timedelta(0))
        # The answer is recorded (waking the run task if it was the last) *before* its audit
        # events are queued: the woken task then runs ahead of the audit writer on the next
        # loop turn, so the ranking and the award join this quote's commit instead of
        # queueing behind it (one durable write fewer between the last quote and the award).
        # The events and their order are unchanged; if they cannot be queued the answer is
        # taken back, as if it had not arrived.
        earlier, answered = self.quotes.get(dealer), dealer in self.responded
        if reason is None:
            self.quotes[dealer] = quote  # the latest valid quote of a dealer counts
        if reason is None or earlier is None:
            self._answered(dealer)
        try:
            self.s.audit(self.rfq_id, E.QUOTE_RECEIVED, fields, actor=dealer)
            if reason is not None:
                self._reject_quote(fields, reason, "receive")
        except BaseException:
            self._take_back(dealer, earlier, answered)
            raise

    def on_decline(self, decline: Decline) -> None:
        payload = {"dealer_id": decline.dealer_id, "reason": decline.reason, "msg_id": decline.msg_id}
        if decline.dealer_id not in self.spec.dealers or self.state is not RfqState.OPEN:
            self.s.audit(self.rfq_id, E.MESSAGE_REJECTED,
                         {**payload, "declined_reason": decline.reason,
                          "reason": f"decline not accepted: RFQ {self.state.value}"},
                         actor=decline.dealer_id)
            return
        dealer = decline.dealer_id
        # Recorded before audited, for the same reason as in ``on_quote``.
        earlier, answered = self.quotes.pop(dealer, None), dealer in self.responded
        self._answered(dealer)  # a decline withdraws an earlier quote
        try:
            self.s.audit(self.rfq_id, E.QUOTE_DECLINED, payload, actor=dealer)
        except BaseException:
            self._take_back(dealer, earlier, answered)
            raise

    def _take_back(self, dealer: DealerId, earlier: Quote | None, answered: bool) -> None:
        """Undo what ``on_quote``/``on_decline`` recorded when its audit could not be queued
        (a spurious wake-up of the run task is harmless: ``_collect`` re-checks)."""
        if earlier is None:
            self.quotes.pop(dealer, None)
        else:
            self.quotes[dealer] = earlier
        if not answered:
            self.responded.discard(dealer)

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
            self.s.audit(self.rfq_id, E.MESSAGE_REJECTED, {**base, "reason": why},
                         actor=confirm.dealer_id)
            return
        if pending.resolving:  # a person's decision on it is being recorded and goes first
            self.s.audit(self.rfq_id, E.MESSAGE_REJECTED, {
                **base, "reason": "confirm arrived while a person's resolution of this "
                                  "execution was being recorded; review the resolution"},
                actor=confirm.dealer_id)
            log.error("execution.resolution_contradicted", execution_id=confirm.execution_id)
            return
        problem = check_confirm(pending.award, confirm)
        if problem is not None:
            self.s.audit(self.rfq_id, E.MESSAGE_REJECTED, {**base, "reason": problem},
                         actor=confirm.dealer_id)
            return
        self.s.audit(self.rfq_id, E.EXECUTION_CONFIRMED, {
            **base, "price": decimal_str(confirm.price),
            "quantity": decimal_str(confirm.quantity),
            "dealer_trade_id": confirm.dealer_trade_id, "source": "dealer",
        }, actor=confirm.dealer_id)
        pending.resolve(AwardOutcome(True, confirm.quantity, confirm.price, "confirmed",
                                     confirm.dealer_trade_id))

    def on_reject(self, reject: ExecutionReject) -> None:
        pending = self.pending.get(reject.execution_id)
        base = {"dealer_id": reject.dealer_id, "msg_id": reject.msg_id,
                "execution_id": reject.execution_id}
        if pending is None or pending.outcome.done() or pending.award.dealer_id != reject.dealer_id \
                or pending.resolving:
            self.s.audit(self.rfq_id, E.MESSAGE_REJECTED,
                         {**base, "reason": "reject for no pending award of this dealer"},
                         actor=reject.dealer_id)
            return
        reason = f"rejected by the dealer: {reject.reason or 'no reason given'}"
        self.s.audit(self.rfq_id, E.EXECUTION_REJECTED,
                     {**base, "reason": reason, "timeout": False}, actor=reject.dealer_id)
        pending.resolve(AwardOutcome(False, ZERO, pending.award.price, reason))

    def _reject_quote(self, fields: dict[str, Any], reason: str, stage: str) -> None:
        self.s.audit(self.rfq_id, E.QUOTE_REJECTED, {**fields, "reason": reason, "stage": stage},
                     actor=str(fields.get("dealer_id", "engine")))

    def _answered(self, dealer: DealerId) -> None:
        self.responded.add(dealer)
        if self.sent_to and self._may_close_early():
            self._wake.set()

    # ----------------------------------------------------------------- commands

    def request_cancel(self, reason: str) -> None:
        """Cancel: nothing new is awarded. Awards in last look, or whose outcome is
        unknown, are still settled (a confirm is a trade); the RFQ then ends."""
        if self.cancel_reason is None:
            self.cancel_reason = reason or "cancelled"
        if not self.approval.done():
            self.approval.set_result((False, "cancelled", reason))
        self._wake.set()

    def grant(self, approver: str) -> bool:
        """Decide the approval (first decision wins); False when already decided."""
        if self.approval.done():
            return False
        self.approval.set_result((True, approver, ""))
        return True

    def refuse(self, approver: str, reason: str) -> bool:
        if self.approval.done():
            return False
        self.approval.set_result((False, approver, reason))
        return True

    async def resolve_execution(self, resolution: Resolution) -> AwardOutcome:
        """A person's decision on an award whose outcome is unknown (``engine.resolution``)."""
        await self.ready.wait()
        pending = self.pending.get(resolution.execution_id)
        if pending is None:
            earlier = self.resolved.get(resolution.execution_id)
            if earlier is not None:
                raise settled_conflict(resolution.execution_id, earlier)
            raise UnknownExecution(self.rfq_id, resolution.execution_id)
        return await resolve_pending(self.s, self.rfq_id, self.spec.requester, pending,
                                     resolution)

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        with structlog.contextvars.bound_contextvars(rfq_id=self.rfq_id):
            try:
                await self._lifecycle()
            except asyncio.CancelledError:
                if self.unsettled and not self.state.is_terminal:
                    await asyncio.shield(self.park_unsettled("engine stopped"))
                elif not self.state.is_terminal and not self.parked:
                    await asyncio.shield(self._abort("engine stopped while the RFQ was running"))
                raise
            except Exception as exc:
                log.exception("rfq.failed")
                if self.unsettled and not self.state.is_terminal:
                    await self.park_unsettled(f"internal error: {type(exc).__name__}: {exc}")
                elif not self.state.is_terminal:
                    await self._abort(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self.stop_side_tasks()
                self.done.set()

    def stop_side_tasks(self) -> None:
        """Timers and side tasks (reconciliation, TCA) end with the RFQ's task."""
        for pending in self.pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        for task in self._lookups:
            task.cancel()

    @property
    def unsettled(self) -> list[PendingAward]:
        """Awards sent whose outcome is not known (in last look, unknown or unresolved)."""
        return [p for p in self.pending.values() if not p.outcome.done()]

    async def park_unsettled(self, reason: str) -> None:
        """Never end an RFQ while an award's outcome is unknown: leave it non-terminal in the
        store; recovery resumes the reconciliation on restart."""
        self.parked = True
        try:
            await self.s.audit(self.rfq_id, E.RFQ_PARKED, {
                "reason": f"{reason}: {len(self.unsettled)} award(s) with an outcome not yet "
                          "known; reconciliation resumes on restart",
                "execution_ids": [p.award.execution_id for p in self.unsettled]})
        except Exception:
            log.exception("rfq.park_failed")

    async def _abort(self, reason: str) -> None:
        target = RfqState.FAILED
        if self.filled_quantity > 0:
            target = RfqState.PARTIALLY_FILLED
        try:
            await self._finish(target, reason)
        except Exception:
            log.exception("rfq.abort_failed")

    async def _lifecycle(self) -> None:
        if self.state is RfqState.CREATED and not await self._pre_trade():
            return
        if self.state is RfqState.PENDING_APPROVAL and not await self._await_approval():
            return
        if self.cancel_reason is not None:
            await self._finish(RfqState.CANCELLED, self.cancel_reason)
            return
        await self._open()
        await self._collect()
        if self.cancel_reason is not None:
            await self._finish(RfqState.CANCELLED, self.cancel_reason)
            return
        everyone = self.responded >= set(self.sent_to)
        self._transition(RfqState.AWARDING,
                         "every dealer answered" if everyone else "response window closed")
        ranked, min_quotes = self._rank()
        if not min_quotes.passed:
            await self._finish(RfqState.NOT_FILLED, min_quotes.reason)
            return
        await self._award_rounds(ranked)

    async def _pre_trade(self) -> bool:
        now = utc_now()
        if self.notional is None:
            verdicts = [Verdict("reference_price", False,
                                "no market data: the notional cannot be checked against the caps")]
        else:
            await self.s.risk.load(self.spec.mandate, self.spec.dealers, now)
            used_day, used_month = self.s.risk.used(self.spec.mandate, now)
            ctx = PreTradeContext(self.spec, now.date(), self.notional, used_day, used_month)
            verdicts = self.mandate.check_pre_trade(ctx)
        passed = all_passed(verdicts)
        self.s.audit(self.rfq_id, E.MANDATE_CHECKED,
                     {"stage": "pre_trade", "passed": passed, "verdicts": _verdicts(verdicts)})
        if not passed:
            failed = "; ".join(v.reason for v in verdicts if not v.passed)
            await self._finish(RfqState.REJECTED, f"mandate: {failed}")
            return False
        assert self.notional is not None
        self.s.risk.reserve_rfq(self.rfq_id, self.spec.mandate, now, self.notional)
        approval = self.mandate.approval_verdict(self.notional)
        if approval.passed and self.spec.require_approval:
            approval = Verdict("approval", False, "the request asks for a second person's approval")
        if not approval.passed:
            self._transition(RfqState.PENDING_APPROVAL, approval.reason)
            self.approval_expires = now + self.mandate.approval_timeout
            self.s.audit(self.rfq_id, E.APPROVAL_REQUESTED, {
                "notional": decimal_str(self.notional), "reason": approval.reason,
                "expires_at": format_ts(self.approval_expires),
            })
        return True

    async def _await_approval(self) -> bool:
        expires = self.approval_expires or utc_now() + self.mandate.approval_timeout
        wait = (expires - utc_now()).total_seconds()
        try:
            granted, who, reason = await asyncio.wait_for(asyncio.shield(self.approval),
                                                          max(wait, 0.0))
        except TimeoutError:
            await self._finish(RfqState.EXPIRED, "no approval before the approval deadline")
            return False
        # The approval.granted / approval.refused event is written by the engine's
        # approve/refuse call, durable before that call returns.
        if granted:
            return True
        if who == "cancelled":
            await self._finish(RfqState.CANCELLED, reason or "cancelled while pending approval")
        else:
            await self._finish(RfqState.REJECTED, f"approval refused by {who}: {reason}")
        return False

    async def _open(self) -> None:
        window = self.spec.window_ms / 1000
        self.deadline_mono = self.loop.time() + window
        self.deadline = utc_now() + timedelta(milliseconds=self.spec.window_ms)
        self.sent_to = self.spec.dealers
        # Durable before anything leaves: after a crash, recovery must know dealers may have it.
        await self._transition(RfqState.OPEN, f"sending to {len(self.spec.dealers)} dealers")
        message = RfqNew(self.rfq_id, self.spec.legs, self.spec.quantity, self.spec.quantity_unit,
                         self.spec.direction, self.spec.allow_partial, self.deadline,
                         self.spec.settlement, self.close_policy.value)
        failed: dict[str, str] = {}

        async def send(dealer: DealerId) -> None:
            try:
                async with asyncio.timeout(min(window, self.s.config.send_timeout_ms / 1000)):
                    await self.s.adapters[dealer].send_rfq(dealer, message)
            except (DealerUnavailable, TimeoutError, OSError) as exc:
                failed[dealer] = str(exc) or type(exc).__name__
                self.unreachable.add(dealer)
                self._answered(dealer)  # absent: do not wait for it

        await asyncio.gather(*(send(d) for d in self.spec.dealers))
        await self.s.audit(self.rfq_id, E.RFQ_SENT, {
            "deadline": format_ts(self.deadline), "window_ms": self.spec.window_ms,
            "sent": [d for d in self.spec.dealers if d not in failed], "failed": failed,
        })
        failpoints.hit("rfq.sent")

    @property
    def close_policy(self) -> ClosePolicy:
        """The RFQ's own close policy, else its mandate's."""
        return self.spec.close_policy or self.mandate.close_policy

    def _may_close_early(self) -> bool:
        """``all_answered``: once every dealer answered. ``deadline``: a dealer may replace
        its quote until the deadline, so only when no dealer could be reached at all."""
        if self.cancel_reason is not None:
            return True
        if self.close_policy is ClosePolicy.DEADLINE:
            return bool(self.sent_to) and self.unreachable >= set(self.sent_to)
        return self.responded >= set(self.sent_to)

    async def _collect(self) -> None:
        reason = "deadline reached"
        while True:
            if self._may_close_early():
                reason = ("cancel requested" if self.cancel_reason is not None
                          else "no dealer could be reached" if self.unreachable >= set(self.sent_to)
                          else "every dealer answered")
                break
            remaining = self.deadline_mono - self.loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        self.window_closed_mono = self.loop.time()
        self.s.audit(self.rfq_id, E.WINDOW_CLOSED, {
            "closed_at": format_ts(utc_now()),
            "deadline": None if self.deadline is None else format_ts(self.deadline),
            "policy": self.close_policy.value, "reason": reason})

    # ----------------------------------------------------------------- ranking and awards

    def _judge(self) -> QuoteJudge:
        assert self.unit_notional is not None
        return QuoteJudge(self.spec, self.mandate, self.reference, self.s.risk.exposure,
                          self.unit_notional,
                          timedelta(milliseconds=self.s.config.min_quote_validity_ms))

    def _rank(self) -> tuple[Candidates, Verdict]:
        """Validate every latest quote, rank the valid ones, audit the whole picture."""
        ranking = selection.rank(self._judge(), self.quotes.values(), utc_now())
        self.s.audit(self.rfq_id, E.QUOTES_RANKED, ranking.payload(self.spec, self.reference))
        return ranking.candidates(), ranking.min_quotes

    async def _award_rounds(self, candidates: Candidates) -> None:
        """Award, await last look, fall back to the next best, until done or out of quotes."""
        rounds = 0
        why_short = "no valid quote left to award"
        while self.remaining > 0 and candidates and self.cancel_reason is None \
                and not self.unsettled:
            rounds += 1
            if rounds > self.s.config.max_award_rounds:
                why_short = f"stopped after {self.s.config.max_award_rounds} award rounds"
                break
            batch = self._select(candidates)
            if not batch:
                break
            await self._award(batch, candidates)
            if self.remaining > 0 and candidates and self.cancel_reason is None \
                    and not self.unsettled:
                self._transition(RfqState.AWARDING, "falling back to the next best quote")
        if self.unsettled:
            why_short = await self.await_unresolved()
        elif self.cancel_reason is not None:
            why_short = f"cancel requested: {self.cancel_reason}"
        await self.finish_with_fills(why_short)

    async def await_unresolved(self) -> str:
        """Wait in ``unresolved`` until every escalated award is settled (a late dealer
        answer, the slow reconciliation, or a person); nothing new is awarded after."""
        unresolved = self.unsettled
        self.waiting_unresolved.set()
        if self.state is not RfqState.UNRESOLVED:
            self._transition(RfqState.UNRESOLVED,
                             f"{len(unresolved)} award(s) with an unknown outcome could not be "
                             "reconciled: waiting for the dealer or a person")
        await asyncio.gather(*(asyncio.shield(p.outcome) for p in unresolved))
        for pending in unresolved:
            await self._settle(pending)
        return "an award's outcome was unresolved; nothing more is awarded after it"

    async def finish_with_fills(self, why_short: str, filled: str = "filled") -> None:
        """End the RFQ with what it filled."""
        if self.filled_quantity >= self.spec.quantity:
            await self._finish(RfqState.FILLED, filled)
        elif self.filled_quantity > 0:
            await self._finish(RfqState.PARTIALLY_FILLED,
                               f"filled {decimal_str(self.filled_quantity)} of "
                               f"{decimal_str(self.spec.quantity)}; {why_short}")
        elif self.cancel_reason is not None:
            await self._finish(RfqState.CANCELLED, self.cancel_reason)
        else:
            await self._finish(RfqState.NOT_FILLED, why_short)

    @property
    def remaining(self) -> Decimal:
        return self.spec.quantity - self.filled_quantity - sum(
            (p.award.quantity for p in self.pending.values() if not p.outcome.done()), ZERO)

    def _select(self, candidates: Candidates) -> list[tuple[Quote, Decimal, int]]:
        """The next quotes to award, re-checked now (validity, mandate, credit with in-flight)."""
        batch, dropped = selection.select(self._judge(), candidates, self.remaining, utc_now())
        for quote, reason in dropped:
            self._reject_quote(_quote_fields(quote), f"not awardable now: {reason}", "award")
        return batch

    async def _award(self, batch: list[tuple[Quote, Decimal, int]],
                     candidates: Candidates) -> None:
        side = self.spec.award_side
        timeout = self.s.config.confirm_timeout_ms / 1000
        cover_quote = candidates[0][0] if candidates else None
        cover = None if cover_quote is None else cover_quote.price(side)
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
            decided.append(self.s.audit(self.rfq_id, E.AWARD_DECIDED,
                                        award_payload(award, rank=rank, reason=reason, cover=cover)))
            awarded.append(pending)
        await asyncio.gather(*decided)  # write-ahead: the decision is durable before it is sent
        failpoints.hit("award.durable")
        self._spawn(lastlook.record_award_reference(self, [p.award.execution_id for p in awarded]))
        if self.state is RfqState.AWARDING:
            self._transition(RfqState.CONFIRMING, f"{len(awarded)} award(s) sent, awaiting last look")
        if len(awarded) == 1:  # the usual case: no task for a one-element gather
            await self._send_award(awarded[0])
        else:
            await asyncio.gather(*(self._send_award(p) for p in awarded))
        failpoints.hit("award.sent")
        await asyncio.gather(*(p.decided() for p in awarded))
        for pending in awarded:
            if pending.outcome.done():
                await self._settle(pending)

    async def _send_award(self, pending: PendingAward) -> None:
        """Send one award. The send runs as its own task, shielded: a send slower than
        ``send_timeout_ms`` (or an RFQ that stops meanwhile) never cancels work the dealer
        side has started. Only ``DealerUnavailable`` proves it never left; any other failure
        leaves the outcome unknown until confirm_by, then it is reconciled."""
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
        self.s.audit(self.rfq_id, E.AWARD_SENT,
                     {"execution_id": award.execution_id, "dealer_id": award.dealer_id,
                      "error": error})
        if undelivered and not pending.outcome.done():
            reason = f"award not delivered: {error}"
            self.s.audit(self.rfq_id, E.EXECUTION_REJECTED, {
                "execution_id": award.execution_id, "dealer_id": award.dealer_id,
                "reason": reason, "msg_id": None, "timeout": False})
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
        self._spawn(reconcile.reconcile(self.s, self.rfq_id, pending, reason))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A side task of this RFQ, cancelled when the RFQ ends."""
        task = self.loop.create_task(coro)
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _settle(self, pending: PendingAward) -> None:
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
        expiry = self.spec.package.last_date
        await self.s.audit(self.rfq_id, E.FILL_RECORDED, {
            "fill_id": f"F-{award.execution_id}", "execution_id": award.execution_id,
            "dealer_id": award.dealer_id, "mandate": self.spec.mandate,
            "price": decimal_str(outcome.price), "quantity": decimal_str(outcome.quantity),
            "notional": decimal_str(notional), "dealer_trade_id": outcome.dealer_trade_id,
            "last_date": None if expiry is None else expiry.isoformat(),
        })
        failpoints.hit("fill.durable")
        self.s.risk.settle_award(award.execution_id, notional)
        self.filled_quantity += outcome.quantity
        self.filled_notional += notional
        self.filled_value += outcome.quantity * outcome.price
        self.winners.add(award.dealer_id)

    @property
    def average_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return self.filled_value / self.filled_quantity

