"""``FixDealers``: OTC desks over FIX 4.4 sessions, behind the ``DealerAdapter`` protocol.

One initiator session per desk (``session.FixSession``), started in ``start()`` and
reconnecting on its own. The RFQ flow (``mapping``; tag by tag in ``docs/dealers-fix.md``):

- ``send_rfq``: a ``QuoteRequest(R)`` with ``QuoteReqID(131)`` = the RFQ id. Its answer is
  a ``Quote(S)`` (handed to the engine as a quote), a ``QuoteRequestReject(AG)`` (a decline
  with its ``QuoteRequestRejectReason(658)``), or nothing: then a decline saying so at the
  RFQ's deadline (less ``deadline_margin_ms``). A ``QuoteCancel(Z)`` forgets the quotes it
  names: an award on one is refused before anything is sent (``DealerUnavailable``).
- ``send_award``: the intent is fsynced to the desk's journal, then a ``QuoteResponse(AJ)``
  hit/lift or a previously-quoted fill-or-kill ``NewOrderSingle(D)``, keyed by
  ``ClOrdID(11)`` / ``QuoteRespID(693)`` = prefix + execution id. An execution id with an
  intent is never sent again (also after a restart): it is asked for instead.
- ``ExecutionReport(8)``: filled -> ``ExecutionConfirm`` (price ``AvgPx(6)``, quantity
  ``CumQty(14)``, trade id ``OrderID(37)``); rejected / canceled / expired ->
  ``ExecutionReject``. The outcome is journaled first; a second report of the same outcome
  (a resend with ``PossDupFlag``, a desk's duplicate) records and hands over nothing.
- ``query_execution``: the journal's outcome, else an ``OrderStatusRequest(H)`` by ClOrdID
  (``FIX_LOOKUP`` says what each answer proves).
- ``send_closed``: forgets the RFQ's quotes; with ``tell_losers`` a desk that quoted and did
  not win gets ``QuoteResponse`` cover (4) or done away (5).

What the desk sends is read by its ``desk.Desk`` (the session's handler). Session-level
``Reject(3)`` and ``BusinessMessageReject(j)`` of our quote request decline the RFQ; of an
award, reject it (the desk's application never took it). Garbled bytes and unreadable
messages reach the engine as ``InboundRejected`` (audited).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import structlog

from dealer_adapters.common import (
    cancel_all,
    check_startable,
    not_served,
    parse_inbound,
    reachable,
    reject_body,
)
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.desk import Desk, Request, outcome_of
from dealer_adapters.fix.journal import AwardIntent, AwardOutcome
from dealer_adapters.fix.mapping import QuotePlan, award_message, loser_message, plan_quote
from dealer_adapters.fix.session import FixSession, NotSent, SendUnknown
from dealer_adapters.protocol import (
    DealerUnavailable,
    ExecutionLookup,
    ExecutionState,
    InboundSink,
    LookupPolicy,
)
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    Inbound,
    RfqClosed,
    RfqId,
    RfqNew,
    format_ts,
    new_id,
    utc_now,
)

__all__ = ["FIX_LOOKUP", "REJECT_FENCED", "FixDealers"]

_log = structlog.get_logger(__name__)

FIX_LOOKUP = LookupPolicy(
    key="ClOrdID / QuoteRespID (prefix + execution id)",
    can_query=True,
    not_found_proves_absent=True,
    note=("OrderStatusRequest(H) by ClOrdID; the desk's 'unknown order' proves absence only past the "
          "award's ValidUntilTime/ExpireTime + clock_skew_ms (the desk refuses it after); no intent in "
          "the journal proves it was never sent"),
)
REJECT_FENCED = "execution id already reported not found; no award sent"


class FixDealers:
    """FIX desks, one adapter for all of them (a session and a journal each).

    ``environ`` is where the logon credentials are read at ``start`` (``os.environ`` by
    default). Journals and session files are read when the adapter is built.
    """

    def __init__(self, dealers: Mapping[DealerId, FixDealerConfig], *,
                 environ: Mapping[str, str] | None = None) -> None:
        if not dealers:
            raise ValueError("FixDealers needs at least one dealer")
        self._environ = environ if environ is not None else os.environ
        self._sink: InboundSink | None = None
        self._closed = False
        self._desks = {DealerId(d): Desk(DealerId(d), c, self) for d, c in dealers.items()}

    # --- DealerAdapter ---------------------------------------------------------------------

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(self._desks)

    async def start(self, sink: InboundSink) -> None:
        """Start every desk's session; waits up to each ``logon_timeout_ms`` for the logons
        (a desk that is down keeps being retried in the background). A missing credential
        variable is a ``ValueError`` naming it."""
        check_startable("FixDealers", self._closed)
        if self._sink is not None:
            return
        for dealer_id, desk in self._desks.items():
            for env in (desk.config.username_env, desk.config.password_env):
                if env is not None and env not in self._environ:
                    raise ValueError(f"dealer {dealer_id}: environment variable {env} is not set")
        self._sink = sink
        loop = asyncio.get_running_loop()
        for dealer_id, desk in self._desks.items():
            desk.session = FixSession(desk.config, desk, environ=self._environ,
                                      store_path=desk.config.state_dir / f"{dealer_id}.session.json")
            desk.task = loop.create_task(desk.session.run(), name=f"fix-session-{dealer_id}")
        timeout = max(d.config.logon_timeout_ms for d in self._desks.values()) / 1000
        with contextlib.suppress(TimeoutError):
            await self.wait_online(self._desks, timeout=timeout)

    async def wait_online(self, dealers: Iterable[DealerId], timeout: float) -> None:
        """Until every desk in ``dealers`` is logged on (``TimeoutError`` after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            for dealer in dealers:
                await self._desks[dealer].online.wait()

    async def close(self) -> None:
        self._closed = True
        for desk in self._desks.values():
            for request in desk.requests.values():
                if request.timer is not None:
                    request.timer.cancel()
            if desk.session is not None:
                await desk.session.close()
        await cancel_all([t for desk in self._desks.values() for t in (*desk.work, desk.task)
                          if t is not None])

    def abort(self) -> None:
        """Stop every session with no Logout and no further work, as a killed engine would."""
        self._closed = True
        for desk in self._desks.values():
            if desk.task is not None:
                desk.task.cancel()
            for task in desk.work:
                task.cancel()
            if desk.session is not None:
                desk.session.abort()

    def is_online(self, dealer_id: DealerId) -> bool:
        desk = self._desks.get(dealer_id)
        return desk is not None and desk.logged_on and not self._closed

    def session(self, dealer_id: DealerId) -> FixSession | None:
        """The desk's session (tests and operators: its numbers, its connection count)."""
        return self._desks[dealer_id].session

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        """Hand the QuoteRequest to the desk's session and return (its sequence number is
        stored and the message written in a task: the engine's send timeout never cuts a
        request in half). A request the session then cannot send is a decline saying why."""
        desk = self._reachable(dealer_id)
        plan = plan_quote(desk.config, message, message.rfq_id, utc_now())
        if isinstance(plan, str):
            asyncio.get_running_loop().call_soon(self.decline, desk, message.rfq_id, plan)
            return
        request = Request(message, plan)
        desk.requests[plan.quote_req_id] = request
        budget = (message.deadline - utc_now()).total_seconds() - desk.config.deadline_margin_ms / 1000
        request.timer = asyncio.get_running_loop().call_later(
            max(budget, 0), self._deadline, desk, request, round(max(budget, 0) * 1000))
        self._spawn(desk, self._request(desk, request))

    async def _request(self, desk: Desk, request: Request) -> None:
        assert desk.session is not None
        rfq_id = request.rfq.rfq_id
        try:
            seq = await desk.session.send("R", request.plan.body)
        except NotSent as exc:
            desk.requests.pop(request.plan.quote_req_id, None)
            if request.timer is not None:
                request.timer.cancel()
            if not request.answered:
                request.answered = True
                self.decline(desk, rfq_id, f"QuoteRequest not sent: {exc}")
        except SendUnknown as exc:
            _log.warning("fix_quote_request_unknown", dealer_id=desk.dealer_id, rfq_id=rfq_id, error=str(exc))
        else:
            desk.remember(seq, "R", request.plan.quote_req_id)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        """Journal the award's intent durably, then send it; returns once it was handed to
        the session. An execution id seen before is never sent again: it is asked for."""
        desk = self._reachable(dealer_id)
        eid = award.execution_id
        entry = desk.journal.get(dealer_id, eid)
        if entry is not None and entry.intent is not None:
            _log.info("fix_duplicate_award", dealer_id=dealer_id, execution_id=eid)
            self._spawn(desk, self._resolve(desk, entry.intent))
            return
        if entry is not None and entry.fenced:
            refusal = parse_inbound(dealer_id, "execution.reject",
                                    reject_body(eid, award.rfq_id, REJECT_FENCED))
            asyncio.get_running_loop().call_soon(self.emit, refusal)
            return
        if entry is not None:
            raise DealerUnavailable(dealer_id, f"award {eid} is already being sent")
        ref = desk.quotes.get(award.quote_id)
        side = None if ref is None or ref.rfq_id != award.rfq_id else ref.plan.sides.get(award.side)
        if ref is None or side is None:
            raise DealerUnavailable(dealer_id, f"no {award.side.value} of this desk known for quote "
                                               f"{award.quote_id} (expired, cancelled or never quoted); "
                                               "nothing sent")
        intent = AwardIntent(
            execution_id=eid, client_id=desk.client_id(eid), rfq_id=award.rfq_id, quote_id=award.quote_id,
            desk_quote_id=ref.desk_quote_id, quote_req_id=award.rfq_id, style=desk.config.award_style,
            side=side.fix_side, symbol=ref.plan.symbol,
            price=award.price if side.sign > 0 else -award.price, quantity=award.quantity, sign=side.sign,
            confirm_by=award.confirm_by, recorded_at=utc_now(),
            quantity_unit=award.quantity_unit or ref.quantity_unit,
        )
        desk.journal.begin(dealer_id, eid)
        task = self._spawn(desk, self._place(desk, intent, ref.plan))
        await asyncio.shield(task)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        desk = self._reachable(dealer_id)
        request = desk.requests.pop(message.rfq_id, None)
        if request is not None and request.timer is not None:
            request.timer.cancel()
        quotes = [q for q, ref in desk.quotes.items() if ref.rfq_id == message.rfq_id]
        if request is not None and quotes and not message.you_won and desk.config.tell_losers != "none":
            assert desk.session is not None
            body = loser_message(desk.config, f"L{new_id()}", quotes[-1], request.plan.symbol, utc_now())
            with contextlib.suppress(NotSent, SendUnknown):
                await desk.session.send("AJ", body)
        for q in quotes:
            del desk.quotes[q]

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        return FIX_LOOKUP

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """What became of the award ``execution_id`` (``docs/dealers-fix.md``, "Lookups")."""
        desk = self._desks.get(dealer_id)
        if desk is None:
            return not_served()
        entry = desk.journal.get(dealer_id, execution_id)
        if entry is None or entry.intent is None:
            if entry is not None and entry.pending:
                return ExecutionLookup(ExecutionState.UNKNOWN, reason="the award's intent is being recorded")
            await desk.journal.fence(dealer_id, execution_id, "answered not found to query_execution")
            return ExecutionLookup(ExecutionState.NOT_FOUND,
                                   reason="no award intent in the journal: nothing was ever sent "
                                          "(now fenced)")
        intent = entry.intent
        if entry.outcome is not None:
            return desk.lookup(intent, entry.outcome)
        if not desk.logged_on or self._closed:
            return ExecutionLookup(ExecutionState.UNKNOWN, reason="FIX session not logged on")
        answer = await desk.ask_status(intent)
        if answer is None:
            return ExecutionLookup(ExecutionState.UNKNOWN, reason="no answer to OrderStatusRequest in time")
        if answer.final:
            outcome = await desk.journal.record_outcome(dealer_id, execution_id,
                                                        outcome_of(execution_id, answer))
            return desk.lookup(intent, outcome)
        if answer.unknown_order:
            proof_at = intent.confirm_by + timedelta(milliseconds=desk.config.clock_skew_ms)
            if utc_now() > proof_at:
                return ExecutionLookup(ExecutionState.NOT_FOUND, reason=(
                    f"the desk has no order {intent.client_id} and it is past its validity + clock_skew_ms "
                    f"({format_ts(proof_at)}): the desk refuses it from now on"))
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=(
                f"the desk has no order {intent.client_id} yet; it may arrive until {format_ts(proof_at)}"))
        return ExecutionLookup(ExecutionState.UNKNOWN, reason=f"order pending at the desk ({answer.reason})")

    # --- internals ---------------------------------------------------------------------------

    async def _place(self, desk: Desk, intent: AwardIntent, plan: QuotePlan) -> None:
        eid = intent.execution_id
        try:
            await desk.journal.record_intent(desk.dealer_id, eid, intent)
        except (OSError, ValueError) as exc:
            reason = f"could not record the award intent: {exc}; nothing sent"
            raise DealerUnavailable(desk.dealer_id, reason) from exc
        desk.journal.mark_sent(desk.dealer_id, eid)
        assert desk.session is not None
        msg_type, body = award_message(desk.config, intent, plan.legs, utc_now())
        try:
            seq = await desk.session.send(msg_type, body)
        except NotSent as exc:
            await desk.journal.record_outcome(desk.dealer_id, eid, AwardOutcome(
                eid, False, utc_now(), reason=f"not sent: {exc}"))
            raise DealerUnavailable(desk.dealer_id, f"award not sent: {exc}") from exc
        except SendUnknown as exc:
            desk.journal.mark_unknown(desk.dealer_id, eid, str(exc))
            _log.warning("fix_award_outcome_unknown", dealer_id=desk.dealer_id, execution_id=eid,
                         error=str(exc))
            return
        desk.remember(seq, msg_type, intent.client_id)

    async def _resolve(self, desk: Desk, intent: AwardIntent) -> None:
        """A repeated award: hand over what the desk answered, asking it when we do not know."""
        entry = desk.journal.get(desk.dealer_id, intent.execution_id)
        if entry is not None and entry.outcome is not None:
            self.emit(desk.outcome_message(intent, entry.outcome))
            return
        if desk.logged_on:
            answer = await desk.ask_status(intent)
            if answer is not None and answer.final:
                await desk.settle(intent, outcome_of(intent.execution_id, answer))

    def _spawn(self, desk: Desk, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        desk.work.add(task)

        def done(t: asyncio.Task[None]) -> None:
            desk.work.discard(t)
            if not t.cancelled() and t.exception() is not None and not isinstance(t.exception(),
                                                                                  DealerUnavailable):
                _log.error("fix_task_failed", dealer_id=desk.dealer_id, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    def _deadline(self, desk: Desk, request: Request, waited_ms: int) -> None:
        request.timer = None
        if not request.answered:
            request.answered = True
            reason = f"no answer before the RFQ's deadline (waited {waited_ms} ms)"
            self.decline(desk, request.rfq.rfq_id, reason)

    def _reachable(self, dealer_id: DealerId) -> Desk:
        return reachable(self._desks, dealer_id, closed=self._closed, started=self._sink is not None,
                         offline=lambda desk: "" if desk.logged_on else "FIX session not logged on")

    def decline(self, desk: Desk, rfq_id: RfqId, reason: str) -> None:
        _log.info("fix_quote_declined", dealer_id=desk.dealer_id, rfq_id=rfq_id, reason=reason)
        self.emit(parse_inbound(desk.dealer_id, "quote.decline", {"rfq_id": rfq_id, "reason": reason}))

    def emit(self, message: Inbound) -> None:
        if self._sink is not None and not self._closed:
            self._sink(message)

