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

Session-level ``Reject(3)`` and ``BusinessMessageReject(j)`` of our quote request decline
the RFQ; of an award, reject it (the desk's application never took it). Garbled bytes and
unreadable messages reach the engine as ``InboundRejected`` (audited).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from dealer_adapters.common import (
    cancel_all,
    check_startable,
    confirm_body,
    not_served,
    parse_inbound,
    quote_body,
    reachable,
    reject_body,
    rejected,
)
from dealer_adapters.fix.codec import FixMessage, parse_fix_time
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.journal import AwardIntent, AwardOutcome, FixJournal
from dealer_adapters.fix.mapping import (
    QUOTE_REQUEST_REJECT_REASONS,
    ExecAnswer,
    QuotePlan,
    award_message,
    loser_message,
    plan_quote,
    read_execution,
    read_quote_prices,
    status_request,
)
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
    ExecutionConfirm,
    ExecutionId,
    Inbound,
    QuoteSide,
    RfqClosed,
    RfqId,
    RfqNew,
    ValidationError,
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
_MAX_QUOTES = 20_000
_MAX_SENT = 10_000


@dataclass(eq=False)
class _Request:
    rfq: RfqNew
    plan: QuotePlan
    timer: asyncio.TimerHandle | None = None
    answered: bool = False
    quote_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _QuoteRef:
    rfq_id: RfqId
    desk_quote_id: str
    plan: QuotePlan
    quantity_unit: str


class _Desk:
    """One desk: its session, journal, open quote requests and quotes. The session's handler."""

    application_types = frozenset({"S", "AG", "8", "Z", "j"})

    def __init__(self, dealer_id: DealerId, config: FixDealerConfig, owner: FixDealers) -> None:
        self.dealer_id = dealer_id
        self.config = config
        self.owner = owner
        self.journal = FixJournal(config.state_dir / f"{dealer_id}.orders.jsonl", dealer_id)
        self.journal.restore()
        self.session: FixSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.requests: dict[str, _Request] = {}
        self.quotes: OrderedDict[str, _QuoteRef] = OrderedDict()
        self.sent: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.waiters: dict[str, asyncio.Future[ExecAnswer | None]] = {}
        self.online = asyncio.Event()
        self.work: set[asyncio.Task[Any]] = set()

    @property
    def logged_on(self) -> bool:
        return self.session is not None and self.session.logged_on

    def client_id(self, execution_id: str) -> str:
        return f"{self.config.client_id_prefix}{execution_id}"

    def execution_id(self, client_id: str) -> ExecutionId | None:
        prefix = self.config.client_id_prefix
        return ExecutionId(client_id[len(prefix):]) if client_id.startswith(prefix) else None

    # --- SessionHandler ------------------------------------------------------------------

    def on_state(self, logged_on: bool, reason: str) -> None:
        if logged_on:
            self.online.set()
            return
        self.online.clear()
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        _log.info("fix_session_down", dealer_id=self.dealer_id, reason=reason)

    def on_garbled(self, reason: str, raw: bytes) -> None:
        self.owner.emit(rejected(self.dealer_id, None, f"garbled FIX message ignored: {reason}",
                                 raw.decode("utf-8", "replace").replace("\x01", "|"), utc_now()))

    async def on_application(self, message: FixMessage) -> None:
        try:
            handler = {"S": self._on_quote, "AG": self._on_quote_reject, "8": self._on_execution,
                       "Z": self._on_quote_cancel, "j": self._on_business_reject}.get(message.msg_type)
            if handler is None:
                self._unreadable(None, f"unexpected MsgType {message.msg_type!r}", message)
                return
            await handler(message)
        except ValidationError as exc:
            rfq_id = message.get(131)
            self._unreadable(RfqId(rfq_id) if rfq_id in self.requests else None, str(exc), message)

    async def on_session_reject(self, message: FixMessage) -> None:
        ref = message.get(45)
        sent = self.sent.get(int(ref)) if ref is not None and ref.isdigit() else None
        why = f"session Reject(3) (SessionRejectReason {message.get(373) or '?'}): {message.get(58) or ''}"
        _log.warning("fix_session_reject", dealer_id=self.dealer_id, ref_seq=ref, reason=why)
        if sent is not None:
            await self._refused(sent[0], sent[1], why)

    # --- inbound application messages ----------------------------------------------------

    async def _on_quote(self, msg: FixMessage) -> None:
        request = self.requests.get(msg.require(131, "QuoteReqID"))
        if request is None:
            self._unreadable(None, f"Quote for QuoteReqID {msg.get(131)!r}, not an open request of ours", msg)
            return
        rfq_id = request.rfq.rfq_id
        desk_quote_id = msg.require(117, "QuoteID")
        if msg.get(537) == "0":
            self._answer(request, f"indicative quote {desk_quote_id} (QuoteType 0): not tradeable")
            return
        try:
            prices, quantity = read_quote_prices(msg, request.plan)
            valid_until = parse_fix_time(msg.get(62), "ValidUntilTime", 62)
        except ValidationError as exc:
            self._unreadable(rfq_id, f"Quote {desk_quote_id}: {exc}", msg)
            self._answer(request, f"unusable quote: {exc}")
            return
        body = quote_body(rfq_id, desk_quote_id, quantity, valid_until,
                          bid=prices.get(QuoteSide.BID), ask=prices.get(QuoteSide.ASK))
        quote = parse_inbound(self.dealer_id, "quote", body)
        self.quotes[desk_quote_id] = _QuoteRef(rfq_id, desk_quote_id, request.plan, request.rfq.quantity_unit)
        while len(self.quotes) > _MAX_QUOTES:
            self.quotes.popitem(last=False)
        request.quote_ids.append(desk_quote_id)
        self._answer(request, None)
        self.owner.emit(quote)

    async def _on_quote_reject(self, msg: FixMessage) -> None:
        request = self.requests.get(msg.require(131, "QuoteReqID"))
        if request is None:
            self._unreadable(None, f"QuoteRequestReject for QuoteReqID {msg.get(131)!r}, not ours", msg)
            return
        code = msg.get(658) or ""
        named = QUOTE_REQUEST_REJECT_REASONS.get(code, "unlisted reason")
        text = msg.get(58)
        detail = f": {text}" if text else ""
        self._answer(request, f"QuoteRequestRejectReason {code or '?'} ({named}){detail}")

    async def _on_quote_cancel(self, msg: FixMessage) -> None:
        quote_id, req_id = msg.get(117), msg.get(131)
        if msg.get(298) == "4":
            gone = list(self.quotes)
        else:
            gone = [q for q, ref in self.quotes.items()
                    if q == quote_id or (req_id is not None and ref.rfq_id == req_id)]
        for q in gone:
            del self.quotes[q]
        _log.info("fix_quotes_cancelled", dealer_id=self.dealer_id, quotes=gone)

    async def _on_execution(self, msg: FixMessage) -> None:
        answer = read_execution(msg)
        waiter = self.waiters.get(answer.status_req_id) if answer.status_req_id else None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(answer)
            return
        eid = self.execution_id(answer.client_id)
        entry = None if eid is None else self.journal.get(self.dealer_id, eid)
        if eid is None or entry is None or entry.intent is None:
            self._unreadable(None, f"ExecutionReport for ClOrdID {answer.client_id!r}: no award of ours", msg)
            return
        if not answer.final:
            _log.info("fix_execution_not_final", dealer_id=self.dealer_id, execution_id=eid,
                      why=answer.reason)
            return
        if entry.outcome is not None:
            _log.info("fix_duplicate_execution_report", dealer_id=self.dealer_id, execution_id=eid,
                      poss_dup=msg.poss_dup, order_id=answer.order_id)
            await self.journal.record_outcome(self.dealer_id, eid, _outcome(eid, answer))  # logs a conflict
            return
        await self.settle(entry.intent, _outcome(eid, answer))

    async def _on_business_reject(self, msg: FixMessage) -> None:
        ref_type, ref_id = msg.get(372) or "", msg.get(379) or ""
        why = f"BusinessMessageReject (reason {msg.get(380) or '?'}): {msg.get(58) or ''}"
        await self._refused(ref_type, ref_id, why)

    async def _refused(self, msg_type: str, ref: str, why: str) -> None:
        """The desk refused one of our messages before its application acted on it."""
        if msg_type == "R" and ref in self.requests:
            self._answer(self.requests[ref], why)
            return
        if msg_type in ("AJ", "D"):
            eid = self.execution_id(ref) or ExecutionId(ref)
            entry = self.journal.get(self.dealer_id, eid)
            if entry is not None and entry.intent is not None and entry.outcome is None:
                await self.settle(entry.intent, AwardOutcome(eid, False, utc_now(), reason=f"refused: {why}"))
                return
        _log.warning("fix_refused_unmatched", dealer_id=self.dealer_id, msg_type=msg_type, ref=ref, why=why)

    # --- outcomes ------------------------------------------------------------------------

    async def settle(self, intent: AwardIntent, outcome: AwardOutcome) -> None:
        """Journal the desk's answer, then hand the answer that stands to the engine."""
        standing = await self.journal.record_outcome(self.dealer_id, intent.execution_id, outcome)
        self.owner.emit(self.outcome_message(intent, standing))

    def outcome_message(self, intent: AwardIntent, outcome: AwardOutcome) -> Inbound:
        if outcome.filled:
            assert outcome.price is not None and outcome.quantity is not None
            body = confirm_body(intent.execution_id, intent.rfq_id, intent.quote_id,
                                intent.to_engine(outcome.price), outcome.quantity, outcome.order_id)
            return parse_inbound(self.dealer_id, "execution.confirm", body)
        return parse_inbound(self.dealer_id, "execution.reject",
                             reject_body(intent.execution_id, intent.rfq_id, outcome.reason or "rejected"))

    def lookup(self, intent: AwardIntent, outcome: AwardOutcome) -> ExecutionLookup:
        message = self.outcome_message(intent, outcome)
        if isinstance(message, ExecutionConfirm):
            return ExecutionLookup(ExecutionState.CONFIRMED, confirm=message)
        if outcome.filled:
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=f"unreadable fill: {message}")
        return ExecutionLookup(ExecutionState.REJECTED, reason=outcome.reason)

    async def ask_status(self, intent: AwardIntent) -> ExecAnswer | None:
        """The desk's answer to an OrderStatusRequest for ``intent`` (None: none in time)."""
        assert self.session is not None
        req_id = f"S{new_id()}"
        waiter: asyncio.Future[ExecAnswer | None] = asyncio.get_running_loop().create_future()
        self.waiters[req_id] = waiter
        try:
            seq = await self.session.send("H", status_request(intent, req_id))
            self.remember(seq, "H", req_id)
            async with asyncio.timeout(self.config.status_timeout_ms / 1000):
                return await waiter
        except (NotSent, SendUnknown, TimeoutError) as exc:
            _log.info("fix_status_unanswered", dealer_id=self.dealer_id, execution_id=intent.execution_id,
                      error=str(exc) or type(exc).__name__)
            return None
        finally:
            self.waiters.pop(req_id, None)

    # --- helpers -------------------------------------------------------------------------

    def remember(self, seq: int, msg_type: str, ref: str) -> None:
        self.sent[seq] = (msg_type, ref)
        while len(self.sent) > _MAX_SENT:
            self.sent.popitem(last=False)

    def _answer(self, request: _Request, decline: str | None) -> None:
        """The request got its answer: a quote (``decline`` None) or a decline with its reason."""
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        if decline is not None and not request.answered:
            self.owner.decline(self, request.rfq.rfq_id, decline)
        request.answered = True

    def _unreadable(self, rfq_id: RfqId | None, reason: str, msg: FixMessage) -> None:
        _log.warning("fix_message_refused", dealer_id=self.dealer_id, reason=reason)
        self.owner.emit(rejected(self.dealer_id, rfq_id, reason, msg.text(), utc_now()))


def _outcome(eid: ExecutionId, answer: ExecAnswer) -> AwardOutcome:
    return AwardOutcome(eid, answer.filled, utc_now(), price=answer.price, quantity=answer.quantity,
                        order_id=answer.order_id, reason=answer.reason)


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
        self._desks = {DealerId(d): _Desk(DealerId(d), c, self) for d, c in dealers.items()}

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
        desk = self._reachable(dealer_id)
        now = utc_now()
        plan = plan_quote(desk.config, message, message.rfq_id, now)
        if isinstance(plan, str):
            asyncio.get_running_loop().call_soon(self.decline, desk, message.rfq_id, plan)
            return
        request = _Request(message, plan)
        desk.requests[plan.quote_req_id] = request
        assert desk.session is not None
        try:
            seq = await desk.session.send("R", plan.body)
        except NotSent as exc:
            del desk.requests[plan.quote_req_id]
            raise DealerUnavailable(dealer_id, f"QuoteRequest not sent: {exc}") from exc
        except SendUnknown as exc:
            _log.warning("fix_quote_request_unknown", dealer_id=dealer_id, rfq_id=message.rfq_id,
                         error=str(exc))
        else:
            desk.remember(seq, "R", plan.quote_req_id)
        budget = (message.deadline - utc_now()).total_seconds() - desk.config.deadline_margin_ms / 1000
        if not request.answered:
            request.timer = asyncio.get_running_loop().call_later(
                max(budget, 0), self._deadline, desk, request, round(max(budget, 0) * 1000))

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
                                                        _outcome(execution_id, answer))
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

    async def _place(self, desk: _Desk, intent: AwardIntent, plan: QuotePlan) -> None:
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

    async def _resolve(self, desk: _Desk, intent: AwardIntent) -> None:
        """A repeated award: hand over what the desk answered, asking it when we do not know."""
        entry = desk.journal.get(desk.dealer_id, intent.execution_id)
        if entry is not None and entry.outcome is not None:
            self.emit(desk.outcome_message(intent, entry.outcome))
            return
        if desk.logged_on:
            answer = await desk.ask_status(intent)
            if answer is not None and answer.final:
                await desk.settle(intent, _outcome(intent.execution_id, answer))

    def _spawn(self, desk: _Desk, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        desk.work.add(task)

        def done(t: asyncio.Task[None]) -> None:
            desk.work.discard(t)
            if not t.cancelled() and t.exception() is not None and not isinstance(t.exception(),
                                                                                  DealerUnavailable):
                _log.error("fix_task_failed", dealer_id=desk.dealer_id, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    def _deadline(self, desk: _Desk, request: _Request, waited_ms: int) -> None:
        request.timer = None
        if not request.answered:
            request.answered = True
            reason = f"no answer before the RFQ's deadline (waited {waited_ms} ms)"
            self.decline(desk, request.rfq.rfq_id, reason)

    def _reachable(self, dealer_id: DealerId) -> _Desk:
        return reachable(self._desks, dealer_id, closed=self._closed, started=self._sink is not None,
                         offline=lambda desk: "" if desk.logged_on else "FIX session not logged on")

    def decline(self, desk: _Desk, rfq_id: RfqId, reason: str) -> None:
        _log.info("fix_quote_declined", dealer_id=desk.dealer_id, rfq_id=rfq_id, reason=reason)
        self.emit(parse_inbound(desk.dealer_id, "quote.decline", {"rfq_id": rfq_id, "reason": reason}))

    def emit(self, message: Inbound) -> None:
        if self._sink is not None and not self._closed:
            self._sink(message)

