"""One RFQ's lifecycle, from pre-trade check to the outcome sent to every dealer.

    submit ─► pre-trade mandate check ─► (approval) ─► open: send to every dealer at once
      ─► collect until the deadline (monotonic), or every dealer answered (close policy)
      ─► rank the valid quotes ─► award the best (write-ahead) ─► last look
      ─► confirm: fill; explicit reject: the next best, still valid and within mandate;
         no answer: *unknown*, reconciled with the dealer (``reconcile``) before anything
         else is awarded, ``unresolved`` (waiting for the dealer or a person) if it cannot be
      ─► tell every dealer the outcome

``RfqRun`` is the request half: pre-trade, approval, the window, ranking, award rounds and
the end. ``execution.AwardDesk`` is the execution half: awards in last look, confirms,
rejects, reconciliation and fills. Both write typed events through ``record``, which
audits an event and applies it to the RFQ's ``RfqBook``: the state, awards and fills that
a restart rebuilds from the same events. Every state change goes through ``_transition``
(the table in ``domain.states``). Decisions (award, fill, the terminal state) are durable
before the message that acts on them leaves the process. Inbound messages arrive through
the ``on_*`` methods, called by the engine's dispatcher on the event loop; they never block.
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
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionReject,
    Quote,
    RfqClosed,
    RfqId,
    RfqNew,
    RfqSpec,
    RfqState,
    check_transition,
    decimal_str,
    utc_now,
)
from rfq_engine.domain.events import (
    AnyEvent,
    ApprovalRequested,
    MandateChecked,
    MessageRejected,
    OutcomeSent,
    QuoteDeclined,
    QuoteReceived,
    QuoteRejected,
    QuotesRanked,
    RfqParked,
    RfqSent,
    RfqStateChanged,
    WindowClosed,
)
from rfq_engine.domain.rfq import ClosePolicy
from rfq_engine.engine import selection, tca
from rfq_engine.engine.awards import AwardOutcome, PendingAward
from rfq_engine.engine.book import RfqBook
from rfq_engine.engine.context import Services
from rfq_engine.engine.execution import AwardDesk
from rfq_engine.engine.resolution import Resolution
from rfq_engine.engine.selection import Candidates, QuoteJudge
from rfq_engine.engine.validation import check_quote
from rfq_engine.mandate import Mandate, PreTradeContext, Verdict, all_passed
from rfq_engine.pricing.reference import PackageReference
from rfq_engine.store.events import AuditEvent

__all__ = ["RfqRun"]

log = structlog.get_logger("rfq_engine.run")
ZERO = Decimal(0)
_OUTCOME_WIRE = {
    RfqState.FILLED: "filled",
    RfqState.PARTIALLY_FILLED: "filled",
    RfqState.NOT_FILLED: "not_filled",
    RfqState.CANCELLED: "cancelled",
    RfqState.EXPIRED: "expired",
    RfqState.REJECTED: "not_filled",
    RfqState.FAILED: "not_filled",
}


def _quote_received(q: Quote) -> QuoteReceived:
    return QuoteReceived(q.dealer_id, q.quote_id, q.bid, q.ask, q.quantity, q.valid_until,
                         q.received_at, q.msg_id,
                         None if q.conversion is None else q.conversion.to_dict())


def _quote_rejected(q: Quote, reason: str, stage: str) -> QuoteRejected:
    return QuoteRejected(reason, stage, q.dealer_id, q.quote_id, q.bid, q.ask, q.quantity,
                         q.valid_until, q.received_at, q.msg_id)


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
        book: RfqBook | None = None,
    ) -> None:
        self.services = services
        self.book = book or RfqBook(rfq_id, spec, notional)
        self.mandate = mandate
        self.unit_notional = None if notional is None else notional / spec.quantity
        self.reference = reference
        self.loop = asyncio.get_running_loop()
        self.deadline_mono = 0.0
        self.deadline: datetime | None = None
        self.quotes: dict[DealerId, Quote] = {}
        self.responded: set[DealerId] = set()
        self.unreachable: set[DealerId] = set()
        self.cancel_reason: str | None = None
        self.approval: asyncio.Future[tuple[bool, str, str]] = self.loop.create_future()
        self.parked = False  # engine stopping: left pending in the store, resumed on restart
        self.waiting_unresolved = asyncio.Event()  # in ``unresolved``, waiting for a settlement
        self.waiting_approval = asyncio.Event()  # in ``pending_approval``, waiting for a person
        self.ready = asyncio.Event()  # recovery clears it until the awards are rebuilt
        self.ready.set()
        self.done = asyncio.Event()
        self.submitted_at: datetime | None = None  # the durable rfq.submitted's timestamp
        self._wake = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.desk = AwardDesk(services, self.book, self.record, self._spawn, self.unit_notional)

    # ----------------------------------------------------------------- the book

    @property
    def rfq_id(self) -> RfqId:
        return self.book.rfq_id

    @property
    def spec(self) -> RfqSpec:
        return self.book.spec

    @property
    def state(self) -> RfqState:
        return self.book.state

    @property
    def sent_to(self) -> tuple[DealerId, ...]:
        return self.book.sent_to

    @property
    def filled_quantity(self) -> Decimal:
        return self.book.filled_quantity

    @property
    def unsettled(self) -> list[PendingAward]:
        return self.desk.unsettled

    def record(self, event: AnyEvent, actor: str = "engine") -> asyncio.Future[AuditEvent]:
        """Audit ``event`` and apply it to the book: the one way this RFQ's state changes."""
        future = self.services.audit(self.rfq_id, event, actor)
        self.book.apply(event)
        return future

    # ----------------------------------------------------------------- state machine

    def _transition(self, target: RfqState, reason: str) -> asyncio.Future[AuditEvent]:
        check_transition(self.rfq_id, self.state, target)
        return self.record(RfqStateChanged(self.state.value, target.value, reason))

    async def _finish(self, target: RfqState, reason: str) -> None:
        """Terminal state: durable first, then the outcome to every dealer that was asked."""
        await self._transition(target, reason)
        failpoints.hit("outcome.durable")
        self.services.risk.settle_rfq(self.rfq_id, self.book.filled_notional)
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
            message = RfqClosed(self.rfq_id, outcome, dealer in self.book.winners)
            adapter = self.services.adapters.get(dealer)
            if adapter is None:
                failed[dealer] = "dealer no longer configured"
                return
            try:
                async with asyncio.timeout(self.services.config.send_timeout_ms / 1000):
                    await adapter.send_closed(dealer, message)
                notified.append(dealer)
            except (DealerUnavailable, TimeoutError, OSError) as exc:
                failed[dealer] = str(exc) or type(exc).__name__

        await asyncio.gather(*(tell(d) for d in self.sent_to))
        self.record(OutcomeSent(outcome, tuple(sorted(notified)), failed, reason))

    # ----------------------------------------------------------------- inbound

    def on_quote(self, quote: Quote) -> None:
        if quote.dealer_id not in self.spec.dealers:
            self.record(_quote_rejected(quote, "dealer was not invited to this RFQ", "receive"),
                        actor=quote.dealer_id)
            return
        if self.state is not RfqState.OPEN or self.loop.time() > self.deadline_mono:
            self.record(_quote_rejected(quote, f"late: arrived with the RFQ {self.state.value}",
                                        "receive"), actor=quote.dealer_id)
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
            self.record(_quote_received(quote), actor=dealer)
            if reason is not None:
                self.record(_quote_rejected(quote, reason, "receive"), actor=dealer)
        except BaseException:
            self._take_back(dealer, earlier, answered)
            raise

    def on_decline(self, decline: Decline) -> None:
        if decline.dealer_id not in self.spec.dealers or self.state is not RfqState.OPEN:
            self.record(MessageRejected(
                f"decline not accepted: RFQ {self.state.value}", decline.dealer_id,
                decline.msg_id, {"declined_reason": decline.reason}), actor=decline.dealer_id)
            return
        dealer = decline.dealer_id
        # Recorded before audited, for the same reason as in ``on_quote``.
        earlier, answered = self.quotes.pop(dealer, None), dealer in self.responded
        self._answered(dealer)  # a decline withdraws an earlier quote
        try:
            self.record(QuoteDeclined(dealer, decline.reason, decline.msg_id), actor=dealer)
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
        self.desk.on_confirm(confirm)

    def on_reject(self, reject: ExecutionReject) -> None:
        self.desk.on_reject(reject)

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
        return await self.desk.resolve(resolution)

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
        self.desk.stop_timers()
        for task in self._side_tasks:
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A side task of this RFQ, cancelled when the RFQ ends."""
        task = self.loop.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def park_unsettled(self, reason: str) -> None:
        """Never end an RFQ while an award's outcome is unknown: leave it non-terminal in the
        store; recovery resumes the reconciliation on restart."""
        self.parked = True
        unsettled = self.unsettled
        try:
            await self.record(RfqParked(
                f"{reason}: {len(unsettled)} award(s) with an outcome not yet known; "
                "reconciliation resumes on restart",
                tuple(p.award.execution_id for p in unsettled)))
        except Exception:
            log.exception("rfq.park_failed")

    async def park(self, reason: str) -> None:
        """Waiting for a person (approval): left pending in the store, resumed on restart."""
        self.parked = True
        await self.record(RfqParked(f"{reason}: still pending approval; resumes on restart"))

    async def _abort(self, reason: str) -> None:
        target = RfqState.PARTIALLY_FILLED if self.filled_quantity > 0 else RfqState.FAILED
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
        notional = self.book.notional
        if notional is None:
            verdicts = [Verdict("reference_price", False,
                                "no market data: the notional cannot be checked against the caps")]
        else:
            await self.services.risk.load(self.spec.mandate, self.spec.dealers, now)
            used_day, used_month = self.services.risk.used(self.spec.mandate, now)
            ctx = PreTradeContext(self.spec, now.date(), notional, used_day, used_month)
            verdicts = self.mandate.check_pre_trade(ctx)
        passed = all_passed(verdicts)
        self.record(MandateChecked("pre_trade", passed, [v.to_dict() for v in verdicts]))
        if not passed:
            failed = "; ".join(v.reason for v in verdicts if not v.passed)
            await self._finish(RfqState.REJECTED, f"mandate: {failed}")
            return False
        assert notional is not None
        self.services.risk.reserve_rfq(self.rfq_id, self.spec.mandate, now, notional)
        approval = self.mandate.approval_verdict(notional)
        if approval.passed and self.spec.require_approval:
            approval = Verdict("approval", False, "the request asks for a second person's approval")
        if not approval.passed:
            self._transition(RfqState.PENDING_APPROVAL, approval.reason)
            self.record(ApprovalRequested(notional, approval.reason,
                                          now + self.mandate.approval_timeout))
        return True

    async def _await_approval(self) -> bool:
        self.waiting_approval.set()
        expires = self.book.approval_expires or utc_now() + self.mandate.approval_timeout
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
        dealers = self.spec.dealers
        # Durable before anything leaves: after a crash, recovery must know dealers may have it.
        await self._transition(RfqState.OPEN, f"sending to {len(dealers)} dealers")
        # The window starts once that is durable, as the RFQ leaves: a slow store must not
        # eat the dealers' time to answer.
        self.deadline_mono = self.loop.time() + window
        self.deadline = utc_now() + timedelta(milliseconds=self.spec.window_ms)
        self.book.sent_to = dealers  # the window's membership (rfq.sent then records it)
        message = RfqNew(self.rfq_id, self.spec.legs, self.spec.quantity, self.spec.quantity_unit,
                         self.spec.direction, self.spec.allow_partial, self.deadline,
                         self.spec.settlement, self.close_policy.value)
        failed: dict[str, str] = {}

        async def send(dealer: DealerId) -> None:
            try:
                async with asyncio.timeout(min(window, self.services.config.send_timeout_ms / 1000)):
                    await self.services.adapters[dealer].send_rfq(dealer, message)
            except (DealerUnavailable, TimeoutError, OSError) as exc:
                failed[dealer] = str(exc) or type(exc).__name__
                self.unreachable.add(dealer)
                self._answered(dealer)  # absent: do not wait for it

        await asyncio.gather(*(send(d) for d in dealers))
        await self.record(RfqSent(self.deadline, self.spec.window_ms,
                                  tuple(d for d in dealers if d not in failed), failed))
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
        self.record(WindowClosed(utc_now(), self.deadline, self.close_policy.value, reason))

    # ----------------------------------------------------------------- ranking and awards

    def _judge(self) -> QuoteJudge:
        assert self.unit_notional is not None
        return QuoteJudge(self.spec, self.mandate, self.reference, self.services.risk.exposure,
                          self.unit_notional,
                          timedelta(milliseconds=self.services.config.min_quote_validity_ms))

    def _rank(self) -> tuple[Candidates, Verdict]:
        """Validate every latest quote, rank the valid ones, audit the whole picture."""
        ranking = selection.rank(self._judge(), self.quotes.values(), utc_now())
        self.record(QuotesRanked(**ranking.payload(self.spec, self.reference)))
        return ranking.candidates(), ranking.min_quotes

    async def _award_rounds(self, candidates: Candidates) -> None:
        """Award, await last look, fall back to the next best, until done or out of quotes.
        Nothing more is awarded while any award's outcome is unknown."""
        rounds = 0
        why_short = "no valid quote left to award"
        while self.remaining > 0 and candidates and self.cancel_reason is None \
                and not self.unsettled:
            rounds += 1
            if rounds > self.services.config.max_award_rounds:
                why_short = f"stopped after {self.services.config.max_award_rounds} award rounds"
                break
            batch = self._select(candidates)
            if not batch:
                break
            cover_quote = candidates[0][0] if candidates else None
            cover = None if cover_quote is None else cover_quote.price(self.spec.award_side)
            awarded = await self.desk.decide(batch, cover)
            self._spawn(tca.record_award_reference(
                self.services, self.rfq_id, self.spec, [p.award.execution_id for p in awarded]))
            if self.state is RfqState.AWARDING:
                self._transition(RfqState.CONFIRMING,
                                 f"{len(awarded)} award(s) sent, awaiting last look")
            await self.desk.send_and_settle(awarded)
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
            await self.desk.settle(pending)
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
        return self.spec.quantity - self.filled_quantity - self.desk.in_flight

    def _select(self, candidates: Candidates) -> list[tuple[Quote, Decimal, int]]:
        """The next quotes to award, re-checked now (validity, mandate, credit with in-flight)."""
        batch, dropped = selection.select(self._judge(), candidates, self.remaining, utc_now())
        for quote, reason in dropped:
            self.record(_quote_rejected(quote, f"not awardable now: {reason}", "award"),
                        actor=quote.dealer_id)
        return batch

    @property
    def average_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return self.book.filled_value / self.filled_quantity
