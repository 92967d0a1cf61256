"""``SimulatedDealers``: several in-process dealer desks behind the ``DealerAdapter`` protocol.

It lets the engine run end to end (demos, tests, dry runs) without a broker. Each desk
follows its ``SimulatedDealerConfig`` model (``model.py``); this module is the
plumbing: per-desk state, timers for latency, the wire shape, the execution ledger.

Wire fidelity: inbound messages are built as protocol bodies and parsed with the
shared ``parse_body``, exactly as the MQTT transport does, so the engine sees what a
real desk would send (a shape a real desk could not send cannot slip through here).
Every message gets a fresh ``msg_id`` and is stamped ``received_at`` when delivered.

Timing: nothing blocks. An answer is scheduled with ``loop.call_later`` at the desk's
latency; the quote's ``valid_until`` counts from delivery. The desk decides (and prices
from ``market()``) when the RFQ arrives. An answer due while its desk is offline is
lost, as on a dropped connection; a desk told ``rfq.closed`` before answering stays
silent. ``close()`` cancels every pending answer.

Awards: the answer is decided on arrival, then booked in a task of its own (it takes
``book_latency_ms``, then the ledger write, fsynced in a worker thread, when configured)
that a cancelled ``send_award`` never stops, and delivered ``confirm_latency_ms`` after
the booking (unless ``lose_confirm_rate`` loses a confirm). An ``execution_id`` the desk
has answered before gets the same answer again (a new message), never a second trade.
The desk's books are the shared execution journal (``ledger.py``: a booking is PENDING
until durable, then CONFIRMED or REJECTED; fences); ledgers are read when the adapter is
built (a torn last line is repaired), so ``query_execution`` answers from the books before
and after ``start``: CONFIRMED / REJECTED from the books, UNKNOWN while a booking is in
progress or the desk is offline, NOT_FOUND otherwise, after which the id is fenced (a
later award for it is rejected and never booked:
``SIMULATED_LOOKUP.not_found_proves_absent``). The fence lives as long as the adapter; an
in-process desk restarts with the engine, so no award from before a restart can reach it
later.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from dealer_adapters.common import check_startable, not_served, parse_inbound, reachable, reject_body
from dealer_adapters.protocol import (
    DealerUnavailable,
    ExecutionLookup,
    ExecutionState,
    InboundSink,
    LookupPolicy,
)
from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_adapters.simulated.ledger import ExecutionRecord, Ledger
from dealer_adapters.simulated.model import (
    REJECT_FENCED,
    DealerModel,
    DeclinePlan,
    QuotePlan,
    SentQuote,
)
from dealer_adapters.simulated.wire import desk_status_body, execution_body, quote_body
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    Inbound,
    Outbound,
    QuoteId,
    QuoteSide,
    RfqClosed,
    RfqId,
    RfqNew,
    new_id,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["SimulatedDealers", "SimulatedTrade"]

_log = structlog.get_logger(__name__)

RECEIVED_KEPT = 1_000
"""Messages each desk keeps for ``received`` (the newest; a long run must not keep them all)."""

SIMULATED_LOOKUP = LookupPolicy(
    key="execution_id",
    can_query=True,
    not_found_proves_absent=True,
    note=("the desk's own books; UNKNOWN while a booking is in progress; an id it has answered "
          "'not found' is fenced: an award for it later is rejected, never booked"),
)


def _utc_today() -> date:
    return utc_now().date()


@dataclass(frozen=True, slots=True)
class SimulatedTrade:
    """A trade a desk booked (confirmed execution), as ``trades()`` reports it."""

    dealer_id: DealerId
    execution_id: ExecutionId
    rfq_id: RfqId
    quote_id: QuoteId
    side: QuoteSide
    price: Decimal
    quantity: Decimal
    dealer_trade_id: str

    @classmethod
    def from_record(cls, record: ExecutionRecord) -> SimulatedTrade:
        return cls(
            record.dealer_id,
            record.execution_id,
            record.rfq_id,
            record.quote_id,
            record.side,
            record.price,
            record.quantity,
            record.dealer_trade_id,
        )


@dataclass(slots=True)
class _Desk:
    """Mutable state of one simulated desk."""

    dealer_id: DealerId
    config: SimulatedDealerConfig
    model: DealerModel
    online: bool
    books: Ledger
    """The desk's executions and fences (shared with the desks of the same ledger file)."""
    received: deque[Outbound] = field(default_factory=lambda: deque(maxlen=RECEIVED_KEPT))
    quotes: dict[QuoteId, SentQuote] = field(default_factory=dict)
    pending_rfqs: dict[RfqId, asyncio.TimerHandle] = field(default_factory=dict)
    booking: dict[ExecutionId, asyncio.Task[ExecutionRecord]] = field(default_factory=dict)
    """Bookings running (PENDING in the books): a duplicate award waits for its answer."""

    def record(self, execution_id: ExecutionId) -> ExecutionRecord | None:
        """How the desk answered ``execution_id``, once booked."""
        entry = self.books.get(self.dealer_id, execution_id)
        return None if entry is None else entry.outcome

    def records(self) -> list[ExecutionRecord]:
        return [e.outcome for e in self.books.executions(self.dealer_id) if e.outcome is not None]


class SimulatedDealers:
    """In-process dealer desks, one adapter for all of them.

    ``market`` is called whenever a desk prices an RFQ (the desk's market view; it may
    raise ``PriceUnavailable``, which the desk answers with a decline). ``clock_today``
    gives the pricing date (UTC today by default; inject one for deterministic tests).
    """

    def __init__(
        self,
        dealers: Mapping[DealerId, SimulatedDealerConfig],
        market: Callable[[], MarketSnapshot],
        *,
        clock_today: Callable[[], date] = _utc_today,
    ) -> None:
        if not dealers:
            raise ValueError("SimulatedDealers needs at least one dealer")
        self._market = market
        self._today = clock_today
        self._sink: InboundSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._timers: set[asyncio.TimerHandle] = set()
        ledgers: dict[Path | None, Ledger] = {}  # None: the books of desks without a ledger file
        self._desks: dict[DealerId, _Desk] = {}
        for dealer_id, config in dealers.items():
            path = None if config.ledger_path is None else config.ledger_path.resolve()
            if path not in ledgers:
                ledgers[path] = Ledger(path)
                ledgers[path].restore()
            desk_id = DealerId(dealer_id)
            model = DealerModel(desk_id, config)
            self._desks[desk_id] = _Desk(desk_id, config, model, config.online, ledgers[path])

    # --- DealerAdapter ---------------------------------------------------------------------

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(self._desks)

    async def start(self, sink: InboundSink) -> None:
        """Start delivering; each desk first announces its ``status`` (online or not)."""
        check_startable("SimulatedDealers", self._closed)
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        for desk in self._desks.values():
            self._schedule(0.0, self._announce, desk)

    async def close(self) -> None:
        """Stop answering. Bookings in progress are finished first (a desk never half-books)."""
        self._closed = True
        bookings = [task for desk in self._desks.values() for task in desk.booking.values()]
        if bookings:
            await asyncio.gather(*bookings, return_exceptions=True)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for desk in self._desks.values():
            desk.pending_rfqs.clear()

    def is_online(self, dealer_id: DealerId) -> bool:
        desk = self._desks.get(dealer_id)
        return desk is not None and desk.online and not self._closed

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        desk = self._reachable(dealer_id)
        desk.received.append(message)
        try:
            plan = desk.model.plan_rfq(message, self._market(), self._today())
        except Exception as exc:  # a desk whose pricer breaks declines; it never breaks the engine
            _log.exception("simulated_dealer_pricing_failed", dealer_id=dealer_id, rfq_id=message.rfq_id)
            plan_answer: QuotePlan | DeclinePlan | None = DeclinePlan(f"pricing error: {exc}")
            delay = desk.config.latency_ms / 1000.0
        else:
            plan_answer, delay = plan.answer, plan.delay_s
        if plan_answer is None:
            _log.debug("simulated_dealer_silent", dealer_id=dealer_id, rfq_id=message.rfq_id)
            return
        answer = plan_answer
        handle = self._schedule(delay, self._answer_rfq, desk, message, answer)
        desk.pending_rfqs[message.rfq_id] = handle

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        """Hand the award to the desk; returns once the desk has booked its answer.

        The booking runs in a task of its own: a caller that gives up (the engine's send
        timeout cancels this call) never stops it, so a trade the desk books is always in
        its books, its ledger and its answer to ``query_execution``, and its answer is still
        delivered. The same execution id again gets the same answer (a new message), never
        a second trade; one the desk has told a lookup it has no record of is rejected
        (``REJECT_FENCED``) and never booked.
        """
        desk = self._reachable(dealer_id)
        desk.received.append(award)
        eid = award.execution_id
        record = desk.record(eid)
        if record is None:
            booking = desk.booking.get(eid)
            if booking is None:
                entry = desk.books.get(desk.dealer_id, eid)
                if entry is not None and entry.fenced:
                    self._refuse_fenced(desk, award)
                    return
                booking = self._start_booking(desk, award)
                await asyncio.shield(booking)  # a cancelled caller leaves the booking running
                return
            # the same award again while the first is being booked: wait for that answer
            try:
                await asyncio.shield(booking)
            except DealerUnavailable:
                raise DealerUnavailable(dealer_id, "could not book the trade") from None
            record = desk.record(eid)
            assert record is not None
        _log.info(
            "simulated_dealer_duplicate_award",
            dealer_id=dealer_id,
            rfq_id=award.rfq_id,
            execution_id=eid,
            outcome=record.outcome.value,
            reason=record.reason,
        )
        self._schedule_answer(desk, record)

    def _start_booking(self, desk: _Desk, award: Award) -> asyncio.Task[ExecutionRecord]:
        """Decide now (last look on arrival), then book in a task the caller cannot cancel."""
        record = self._decide_award(desk, award)
        lose = record.confirmed and desk.model.loses_confirm()
        assert self._loop is not None
        desk.books.begin(desk.dealer_id, award.execution_id)
        task = self._loop.create_task(
            self._book(desk, record, lose), name=f"sim-book-{desk.dealer_id}-{award.execution_id}"
        )
        desk.booking[award.execution_id] = task
        task.add_done_callback(self._booking_done)
        return task

    @staticmethod
    def _booking_done(task: asyncio.Task[ExecutionRecord]) -> None:
        if not task.cancelled() and task.exception() is not None:  # retrieved: logged, not lost
            _log.warning("simulated_dealer_booking_failed", error=str(task.exception()))

    async def _book(self, desk: _Desk, record: ExecutionRecord, lose_confirm: bool) -> ExecutionRecord:
        """Take ``book_latency_ms``, make the answer durable, then let it be heard.

        The record is in the desk's books exactly when it is in its ledger (when it has one),
        before anyone can hear the answer; until then the books say PENDING and a lookup
        UNKNOWN (booking in progress).
        """
        eid = record.execution_id
        try:
            if desk.config.book_latency_ms:
                await asyncio.sleep(desk.config.book_latency_ms / 1000.0)
            try:
                await desk.books.record_outcome(desk.dealer_id, eid, record, booking=True)
            except OSError as exc:
                raise DealerUnavailable(desk.dealer_id, f"could not book the trade: {exc}") from exc
        finally:
            desk.booking.pop(eid, None)
            desk.books.abandon(desk.dealer_id, eid)  # not booked (a failed write): NEW again
        _log.info(
            "simulated_dealer_award",
            dealer_id=desk.dealer_id,
            rfq_id=record.rfq_id,
            execution_id=eid,
            outcome=record.outcome.value,
            reason=record.reason,
        )
        if lose_confirm:
            _log.info("simulated_dealer_confirm_lost", dealer_id=desk.dealer_id, execution_id=eid)
        else:
            self._schedule_answer(desk, record)
        return record

    def _schedule_answer(self, desk: _Desk, record: ExecutionRecord) -> None:
        if not self._closed:
            self._schedule(desk.config.confirm_latency_ms / 1000.0, self._answer_award, desk, record)

    def _refuse_fenced(self, desk: _Desk, award: Award) -> None:
        """An award for an id already reported "not found": rejected, never booked."""
        _log.warning("simulated_dealer_fenced_award", dealer_id=desk.dealer_id, rfq_id=award.rfq_id,
                     execution_id=award.execution_id)
        body = reject_body(award.execution_id, award.rfq_id, REJECT_FENCED)

        def answer() -> None:
            self._deliver(desk, "execution.reject", body)

        if not self._closed:
            self._schedule(desk.config.confirm_latency_ms / 1000.0, answer)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        desk = self._reachable(dealer_id)
        desk.received.append(message)
        pending = desk.pending_rfqs.pop(message.rfq_id, None)
        if pending is not None:
            pending.cancel()
            self._timers.discard(pending)
        for quote_id in [q.quote_id for q in desk.quotes.values() if q.rfq_id == message.rfq_id]:
            del desk.quotes[quote_id]

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        return SIMULATED_LOOKUP

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """The desk's books: CONFIRMED / REJECTED from its record; UNKNOWN while the booking is
        in progress, when the desk is offline or not served here; NOT_FOUND when it has no
        record and nothing in progress, and from then on the id is fenced (an award for it is
        rejected, never booked), so the answer stays true."""
        desk = self._desks.get(dealer_id)
        if desk is None:
            return not_served()
        if not desk.online:
            return ExecutionLookup(ExecutionState.UNKNOWN, reason="dealer offline")
        entry = desk.books.get(dealer_id, execution_id)
        record = None if entry is None else entry.outcome
        if record is None:
            if entry is not None and entry.pending:
                return ExecutionLookup(ExecutionState.UNKNOWN, reason="booking in progress")
            if not await desk.books.fence(dealer_id, execution_id, "answered not found to query_execution"):
                return ExecutionLookup(ExecutionState.UNKNOWN, reason="no record; the id cannot be fenced")
            return ExecutionLookup(
                ExecutionState.NOT_FOUND,
                reason="no record of this execution; an award for it will be refused",
            )
        inbound = self._execution_message(desk, record)
        if record.confirmed and isinstance(inbound, ExecutionConfirm):
            return ExecutionLookup(ExecutionState.CONFIRMED, confirm=inbound)
        return ExecutionLookup(ExecutionState.REJECTED, reason=record.reason)

    # --- testing hooks ---------------------------------------------------------------------

    def set_online(self, dealer_id: DealerId, online: bool) -> None:
        """Take a desk off or on line at run time; announces a ``status`` when started."""
        desk = self._desk(dealer_id)
        if desk.online == online:
            return
        desk.online = online
        if self._sink is not None and not self._closed:
            self._schedule(0.0, self._announce, desk)

    def received(self, dealer_id: DealerId) -> tuple[Outbound, ...]:
        """What the engine sent this desk (RFQs, awards, closes), in order: the newest
        ``RECEIVED_KEPT``."""
        return tuple(self._desk(dealer_id).received)

    def trades(self, dealer_id: DealerId) -> tuple[SimulatedTrade, ...]:
        """The desk's booked trades, those loaded from its ledger included."""
        return tuple(SimulatedTrade.from_record(r) for r in self._desk(dealer_id).records() if r.confirmed)

    def executed_count(self, dealer_id: DealerId | None = None) -> int:
        """How many trades the desk (every desk, when None) has executed: its confirmed
        bookings, those loaded from its ledger included. A test compares it with the fills
        the engine recorded: more here is a trade the engine does not know of."""
        desks = self._desks.values() if dealer_id is None else (self._desk(dealer_id),)
        return sum(1 for desk in desks for r in desk.records() if r.confirmed)

    def quotes(self, dealer_id: DealerId) -> tuple[SentQuote, ...]:
        """Quotes the desk sent for RFQs not yet closed."""
        return tuple(self._desk(dealer_id).quotes.values())

    # --- internals -------------------------------------------------------------------------

    def _desk(self, dealer_id: DealerId) -> _Desk:
        try:
            return self._desks[dealer_id]
        except KeyError:
            raise KeyError(f"dealer {dealer_id!r} is not simulated by this adapter") from None

    def _reachable(self, dealer_id: DealerId) -> _Desk:
        return reachable(self._desks, dealer_id, closed=self._closed, started=self._sink is not None,
                         offline=lambda desk: "" if desk.online else "dealer offline")

    def _schedule(
        self, delay_s: float, callback: Callable[..., None], *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        assert self._loop is not None
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            callback(*args, **kwargs)

        handle = self._loop.call_later(delay_s, fire)
        holder.append(handle)
        self._timers.add(handle)
        return handle

    def _deliver(self, desk: _Desk, msg_type: str, body: dict[str, Any]) -> Inbound | None:
        """Parse ``body`` as the engine's transport would and hand it to the sink."""
        if self._sink is None or self._closed:
            return None
        if not desk.online:
            _log.info("simulated_dealer_message_lost", dealer_id=desk.dealer_id, type=msg_type)
            return None
        inbound = parse_inbound(desk.dealer_id, msg_type, body)
        self._sink(inbound)
        return inbound

    def _announce(self, desk: _Desk) -> None:
        """The desk's retained ``status`` (an offline one stands for its MQTT will message)."""
        if self._sink is None or self._closed:
            return
        body = desk_status_body(desk.online, (k.value for k in desk.config.instruments))
        self._sink(parse_inbound(desk.dealer_id, "status", body))

    def _answer_rfq(self, desk: _Desk, rfq: RfqNew, answer: QuotePlan | DeclinePlan) -> None:
        desk.pending_rfqs.pop(rfq.rfq_id, None)
        if isinstance(answer, DeclinePlan):
            self._deliver(desk, "quote.decline", {"rfq_id": rfq.rfq_id, "reason": answer.reason})
            return
        quote_id = QuoteId(new_id())
        valid_until = utc_now() + timedelta(milliseconds=desk.config.quote_validity_ms)
        body = quote_body(rfq.rfq_id, quote_id, answer, valid_until)
        sent = SentQuote(rfq.rfq_id, quote_id, answer.bid, answer.ask, answer.quantity, valid_until,
                         rfq.quantity_unit)
        if desk.online:
            desk.quotes[quote_id] = sent  # a quote lost on the way cannot be awarded
        self._deliver(desk, "quote", body)

    def _decide_award(self, desk: _Desk, award: Award) -> ExecutionRecord:
        now = utc_now()
        reason = desk.model.plan_award(award, desk.quotes.get(award.quote_id), now)
        return ExecutionRecord.for_award(desk.dealer_id, award, reason, now)

    def _answer_award(self, desk: _Desk, record: ExecutionRecord) -> None:
        if not desk.online:
            _log.info("simulated_dealer_message_lost", dealer_id=desk.dealer_id, type="execution")
            return
        if self._sink is not None and not self._closed:
            self._sink(self._execution_message(desk, record))

    @staticmethod
    def _execution_message(desk: _Desk, record: ExecutionRecord) -> Inbound:
        msg_type, body = execution_body(record)
        return parse_inbound(desk.dealer_id, msg_type, body)
