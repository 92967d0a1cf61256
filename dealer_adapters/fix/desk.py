"""One FIX desk as the adapter sees it: its session's handler, journal, requests and quotes.

``Desk`` turns what the desk's session delivers (in sequence order) into the engine's
inbound messages, through the ``Outlet`` it was built with (``FixDealers``): a ``Quote(S)``
into a quote, a ``QuoteRequestReject(AG)`` into a decline with its reason code, an
``ExecutionReport(8)`` into a confirm or a reject once its outcome is journaled (a second
report of the same outcome hands over nothing), a ``QuoteCancel(Z)`` into forgotten
quotes, a ``Reject(3)`` or ``BusinessMessageReject(j)`` of our quote request or award into
a decline or a reject. It also asks the desk about an award (``ask_status``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from dealer_adapters.common import confirm_body, parse_inbound, quote_body, reject_body, rejected
from dealer_adapters.fix.codec import FixMessage, parse_fix_time
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.journal import AwardIntent, AwardOutcome, FixJournal
from dealer_adapters.fix.mapping import (
    QUOTE_REQUEST_REJECT_REASONS,
    ExecAnswer,
    QuotePlan,
    read_execution,
    read_quote_prices,
    status_request,
)
from dealer_adapters.fix.session import NotSent, SendUnknown
from dealer_adapters.protocol import ExecutionLookup, ExecutionState
from rfq_engine.domain import (
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    Inbound,
    QuoteSide,
    RfqId,
    RfqNew,
    ValidationError,
    new_id,
    utc_now,
)

if TYPE_CHECKING:
    from dealer_adapters.fix.session import FixSession

__all__ = ["Desk", "Outlet", "QuoteRef", "Request", "outcome_of"]

_log = structlog.get_logger(__name__)

_MAX_QUOTES = 20_000
_MAX_SENT = 10_000


class Outlet(Protocol):
    def emit(self, message: Inbound) -> None: ...

    def decline(self, desk: Desk, rfq_id: RfqId, reason: str) -> None: ...


@dataclass(eq=False)
class Request:
    rfq: RfqNew
    plan: QuotePlan
    timer: asyncio.TimerHandle | None = None
    answered: bool = False
    quote_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QuoteRef:
    rfq_id: RfqId
    desk_quote_id: str
    plan: QuotePlan
    quantity_unit: str


class Desk:
    """One desk: its session, journal, open quote requests and quotes. The session's handler."""

    application_types = frozenset({"S", "AG", "8", "Z", "j"})

    def __init__(self, dealer_id: DealerId, config: FixDealerConfig, owner: Outlet) -> None:
        self.dealer_id = dealer_id
        self.config = config
        self.owner = owner
        self.journal = FixJournal(config.state_dir / f"{dealer_id}.orders.jsonl", dealer_id)
        self.journal.restore()
        self.session: FixSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.requests: dict[str, Request] = {}
        self.quotes: OrderedDict[str, QuoteRef] = OrderedDict()
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
        except Exception as exc:  # a bug here must not end the session: the message is audited
            _log.exception("fix_message_failed", dealer_id=self.dealer_id, msg_type=message.msg_type)
            why = f"adapter error on MsgType {message.msg_type}: {type(exc).__name__}: {exc}"
            self._unreadable(None, why, message)

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
        self.quotes[desk_quote_id] = QuoteRef(rfq_id, desk_quote_id, request.plan, request.rfq.quantity_unit)
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
            await self.journal.record_outcome(self.dealer_id, eid, outcome_of(eid, answer))  # logs a conflict
            return
        await self.settle(entry.intent, outcome_of(eid, answer))

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

    def _answer(self, request: Request, decline: str | None) -> None:
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


def outcome_of(eid: ExecutionId, answer: ExecAnswer) -> AwardOutcome:
    return AwardOutcome(eid, answer.filled, utc_now(), price=answer.price, quantity=answer.quantity,
                        order_id=answer.order_id, reason=answer.reason)
