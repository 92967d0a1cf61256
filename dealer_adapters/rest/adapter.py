"""``RestDealers``: OTC desks that quote and trade over HTTPS, behind the ``DealerAdapter`` protocol.

The contract a desk (or a thin gateway in front of it) implements is ``docs/dealers-rest.md``.
One adapter serves every REST desk; each desk has its own ``aiohttp.ClientSession``,
created in ``start()``, reused by every call (keep-alive) and closed in ``close()``.

Quotes: ``send_rfq`` returns at once; a task per desk request asks for the quote (two
concurrent requests for a two-way RFQ when the desk quotes one side per call), bounded by
the RFQ's deadline (``RfqNew.deadline`` against the UTC clock, less ``deadline_margin_ms``,
under ``asyncio.timeout``). Whatever happens reaches the engine and is audited with its
reason: a ``Quote``, or a ``Decline`` (desk declined, HTTP error, transport error, no answer
in time, nothing the desk can be asked for); a malformed answer is also handed over as
``InboundRejected`` with its raw text. A desk that answers late never holds the RFQ up.

Orders: ``send_award`` turns the award into one fill-or-kill order on the desk's quote with
``client_order_id = prefix + execution_id``. Its intent is fsynced to the desk's execution
journal before the call (``dealer_adapters.journal``, lines as ``journal.py`` has them); if
that fails, nothing is sent and the award is undeliverable (``DealerUnavailable``). The
answer (filled / rejected with the desk's reason) reaches the engine as
``ExecutionConfirm`` / ``ExecutionReject``. When the outcome is unknown (timeout,
network error, 5xx, a malformed or ``pending`` answer) the order is asked for by client
order id, every ``reconcile_interval_ms`` until ``confirm_by + reconcile_grace_ms``; an
execution id the journal has seen is never posted again, also after a restart.
``query_execution`` asks the desk for the order the same way (recovery, and the engine's
reconciliation of an unknown outcome); which answer is which ``ExecutionState`` is in its
docstring and in ``docs/dealers-rest.md``. An execution id it answered NOT_FOUND is
fenced: an award for it later is rejected, never posted.

``rfq.closed`` is not sent (a REST desk's quotes expire on their own); it cancels the
RFQ's outstanding quote requests and forgets its quotes.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from dealer_adapters.common import cancel_all, check_startable, describe_error, not_served, reachable
from dealer_adapters.protocol import (
    DealerUnavailable,
    ExecutionLookup,
    ExecutionState,
    InboundSink,
    LookupPolicy,
)
from dealer_adapters.rest.client import DeskClient, resolve_signer
from dealer_adapters.rest.config import RestDealerConfig
from dealer_adapters.rest.journal import Journal, OrderIntent, OrderOutcome
from dealer_adapters.rest.parsing import (
    DeskAnswerError,
    DeskOrder,
    DeskQuote,
    DeskStatus,
    decline_message,
    decode_object,
    error_code,
    error_reason,
    execution_lookup,
    execution_message,
    order_outcome,
    parse_quote,
    quote_message,
    read_order,
    reject_message,
    rejected_message,
    unit_refused,
)
from dealer_adapters.rest.planning import PlannedRequest, QuotePlan, SideMap, plan_quote
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    Inbound,
    QuoteId,
    QuoteSide,
    RfqClosed,
    RfqId,
    RfqNew,
    ValidationError,
    format_ts,
    utc_now,
)

__all__ = [
    "NOT_FOUND_CODE",
    "REFUSED_STATUSES",
    "REJECT_FENCED",
    "REST_LOOKUP",
    "UNSUPPORTED_UNIT_CODE",
    "RestDealers",
]

_log = structlog.get_logger(__name__)

REST_LOOKUP = LookupPolicy(
    key="client_order_id (the execution id)",
    can_query=True,
    not_found_proves_absent=True,
    note=("GET /v1/orders/{client_order_id}; a 404 not_found proves absence only past the "
          "order's expires_at + clock_skew_ms, when the contract forbids the desk to accept it; "
          "no intent in the journal (nothing being recorded) proves it was never posted"),
)

NOT_FOUND_CODE = "not_found"
"""The ``error`` of the desk's 404 for an order it has no record of; a 404 without it (a
proxy, a wrong path) is not the desk's answer and proves nothing."""
UNSUPPORTED_UNIT_CODE = "unsupported_unit"
"""The ``error`` of a desk's 422 for a quantity unit it does not trade."""
REJECT_FENCED = "execution id already reported not found; no order sent"
"""The reject of an award whose execution id ``query_execution`` already answered NOT_FOUND
(no intent in the journal): it is never posted, so that answer stays true."""

REFUSED_STATUSES = frozenset({400, 401, 403, 422})
"""Answers to ``POST /v1/orders`` that mean "refused, no order was created" (contract)."""
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_MAX_QUOTES = 20_000
"""Quotes remembered per desk (oldest forgotten first) if RFQs are never closed."""


@dataclass(frozen=True, slots=True)
class _SideRef:
    desk_quote_id: str
    mapping: SideMap


@dataclass(frozen=True, slots=True)
class _QuoteRef:
    """What an engine quote id stands for at the desk: per package side, the desk's quote."""

    rfq_id: RfqId
    sides: dict[QuoteSide, _SideRef]
    quantity_unit: str = ""


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    raw: str | None = None
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class _Refused:
    """The desk refused the order outright (``REFUSED_STATUSES``): no order exists."""

    reason: str


@dataclass(eq=False)
class _Desk:
    dealer_id: DealerId
    config: RestDealerConfig
    journal: Journal
    """Its orders: intents, outcomes, fences (ids answered NOT_FOUND: never posted afterwards)."""
    session: aiohttp.ClientSession | None = None
    client: DeskClient | None = None
    quotes: OrderedDict[QuoteId, _QuoteRef] = field(default_factory=OrderedDict)
    rfq_tasks: dict[RfqId, set[asyncio.Task[None]]] = field(default_factory=dict)
    order_tasks: dict[ExecutionId, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def call_timeout(self) -> float:
        return (self.config.connect_timeout_ms + self.config.read_timeout_ms) / 1000

    def client_order_id(self, execution_id: ExecutionId) -> str:
        return f"{self.config.client_order_id_prefix}{execution_id}"

    def intent(self, execution_id: ExecutionId) -> OrderIntent | None:
        entry = self.journal.get(self.dealer_id, execution_id)
        return None if entry is None else entry.intent

    def outcome(self, execution_id: ExecutionId) -> OrderOutcome | None:
        entry = self.journal.get(self.dealer_id, execution_id)
        return None if entry is None else entry.outcome


class RestDealers:
    """REST desks, one adapter for all of them (each with its own session and journal).

    ``environ`` is where the auth secrets are read at ``start`` (``os.environ`` by default).
    Journals are read when the adapter is built, so a corrupt one fails early.
    """

    def __init__(
        self,
        dealers: Mapping[DealerId, RestDealerConfig],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not dealers:
            raise ValueError("RestDealers needs at least one dealer")
        self._environ = environ if environ is not None else os.environ
        self._sink: InboundSink | None = None
        self._closed = False
        self._desks: dict[DealerId, _Desk] = {}
        for dealer_id, config in dealers.items():
            journal = Journal(config.state_dir / f"{dealer_id}.orders.jsonl", dealer_id)
            journal.restore()
            self._desks[DealerId(dealer_id)] = _Desk(DealerId(dealer_id), config, journal)

    # --- DealerAdapter ---------------------------------------------------------------------

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(self._desks)

    async def start(self, sink: InboundSink) -> None:
        """Open one HTTP session per desk. A missing secret is a ``ValueError`` naming it."""
        check_startable("RestDealers", self._closed)
        if self._sink is not None:
            return
        signers = {d: resolve_signer(d, desk.config.auth, self._environ) for d, desk in self._desks.items()}
        for dealer_id, desk in self._desks.items():
            config = desk.config
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=config.connect_timeout_ms / 1000,
                sock_connect=config.connect_timeout_ms / 1000,
                sock_read=config.read_timeout_ms / 1000,
            )
            desk.session = aiohttp.ClientSession(timeout=timeout)
            desk.client = DeskClient(desk.session, config, signers[dealer_id])
        self._sink = sink

    async def close(self) -> None:
        self._closed = True
        tasks = [t for desk in self._desks.values() for ts in desk.rfq_tasks.values() for t in ts]
        await cancel_all(tasks + [t for desk in self._desks.values() for t in desk.order_tasks.values()])
        for desk in self._desks.values():
            desk.client = None
            if desk.session is not None:
                await desk.session.close()
                desk.session = None

    def is_online(self, dealer_id: DealerId) -> bool:
        return dealer_id in self._desks and self._sink is not None and not self._closed

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        desk = self._reachable(dealer_id)
        plan = plan_quote(desk.config, message)
        task = asyncio.get_running_loop().create_task(
            self._quote(desk, message, plan), name=f"rest-quote-{dealer_id}-{message.rfq_id}"
        )
        running = desk.rfq_tasks.setdefault(message.rfq_id, set())
        running.add(task)

        def done(t: asyncio.Task[None]) -> None:
            running.discard(t)
            if not running and desk.rfq_tasks.get(message.rfq_id) is running:
                del desk.rfq_tasks[message.rfq_id]

        task.add_done_callback(done)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        """Record the order's intent durably, then place it (in the background).

        Returns once the intent is on disk. An execution id seen before (in flight, or in
        the journal from an earlier run) is never posted again: it is asked for instead.
        """
        desk = self._reachable(dealer_id)
        eid = award.execution_id
        running = desk.order_tasks.get(eid)
        if running is not None and not running.done():
            _log.info("rest_duplicate_award_in_flight", dealer_id=dealer_id, execution_id=eid)
            return
        entry = desk.journal.get(dealer_id, eid)
        if entry is not None and entry.intent is not None:
            _log.info("rest_duplicate_award_reconciled", dealer_id=dealer_id, execution_id=eid)
            self._spawn_order(desk, eid, self._reconcile_and_deliver(desk, entry.intent))
            return
        if entry is not None and entry.fenced:
            _log.warning("rest_fenced_award", dealer_id=dealer_id, execution_id=eid)
            refusal = reject_message(desk.dealer_id, eid, award.rfq_id, REJECT_FENCED, utc_now())
            asyncio.get_running_loop().call_soon(self._emit, refusal)  # after the send returns
            return
        ref = desk.quotes.get(award.quote_id)
        side = None if ref is None or ref.rfq_id != award.rfq_id else ref.sides.get(award.side)
        if side is None:
            raise DealerUnavailable(
                dealer_id,
                f"no {award.side.value} of this desk known for quote {award.quote_id}; no order sent",
            )
        intent = OrderIntent(
            execution_id=eid,
            client_order_id=desk.client_order_id(eid),
            rfq_id=award.rfq_id,
            quote_id=award.quote_id,
            desk_quote_id=side.desk_quote_id,
            side=side.mapping.order_side,
            price=side.mapping.to_engine(award.price),  # the same sign maps both ways
            quantity=award.quantity,
            sign=side.mapping.sign,
            confirm_by=award.confirm_by,
            recorded_at=utc_now(),
            quantity_unit=award.quantity_unit or (ref.quantity_unit if ref is not None else ""),
        )
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        recorded.add_done_callback(lambda f: f.cancelled() or f.exception())
        desk.journal.begin(dealer_id, eid)  # PENDING: a lookup now says "being recorded"
        self._spawn_order(desk, eid, self._execute(desk, intent, recorded))
        try:
            await asyncio.shield(recorded)
        except OSError as exc:
            reason = f"could not record the order intent: {exc}; no order sent"
            raise DealerUnavailable(dealer_id, reason) from exc

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        desk = self._reachable(dealer_id)
        for task in desk.rfq_tasks.pop(message.rfq_id, set()):
            task.cancel()
        for quote_id in [q for q, ref in desk.quotes.items() if ref.rfq_id == message.rfq_id]:
            del desk.quotes[quote_id]

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        return REST_LOOKUP

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """What became of the order for ``execution_id`` (``docs/dealers-rest.md``, "Lookups").

        - No intent in the journal, none being recorded: NOT_FOUND (never posted), and the id
          is fenced: an award for it later is rejected, never posted. An intent still being
          written: UNKNOWN.
        - The desk answers ``filled`` / ``rejected``: CONFIRMED / REJECTED.
        - Otherwise the journal's recorded outcome, if any; else
        - ``404 not_found`` once the clock is past ``expires_at + clock_skew_ms``: NOT_FOUND
          (the desk refuses the order from then on);
        - ``404`` earlier (or without ``not_found``), ``pending``, another status, a timeout,
          an unreachable desk, an unreadable answer, the adapter not started: UNKNOWN.
        """
        desk = self._desks.get(dealer_id)
        if desk is None:
            return not_served()
        entry = desk.journal.get(dealer_id, execution_id)
        intent = None if entry is None else entry.intent
        if intent is None:
            if entry is not None and entry.pending:
                return ExecutionLookup(ExecutionState.UNKNOWN, reason="the order intent is being recorded")
            await desk.journal.fence(dealer_id, execution_id, "answered not found to query_execution")
            return ExecutionLookup(
                ExecutionState.NOT_FOUND,
                reason="no order intent in the journal: no order was ever posted for it (now fenced)",
            )
        why = "adapter not started"
        absent = False
        if desk.client is not None and not self._closed:
            try:
                async with asyncio.timeout(desk.call_timeout):
                    response = await desk.client.get_order(intent.client_order_id)
                order = read_order(response, intent.client_order_id)
            except DeskAnswerError as exc:
                why = f"unreadable answer from the desk: {exc.reason}"
            except _TRANSPORT_ERRORS as exc:
                why = f"desk unreachable: {describe_error(exc, None)}"
            else:
                if isinstance(order, DeskOrder) and order.final:
                    return execution_lookup(desk.dealer_id, intent, order_outcome(intent.execution_id, order))
                if isinstance(order, DeskOrder):
                    why = "order pending at the desk"
                elif order.status == 404 and order.code == NOT_FOUND_CODE:
                    proof_at = intent.confirm_by + timedelta(milliseconds=desk.config.clock_skew_ms)
                    absent = utc_now() > proof_at
                    why = (f"the desk has no order {intent.client_order_id} and it is past expires_at "
                           f"+ clock_skew_ms ({format_ts(proof_at)}): the desk refuses it from now on"
                           if absent else
                           f"the desk has no order {intent.client_order_id} yet; it may still arrive "
                           f"until expires_at + clock_skew_ms ({format_ts(proof_at)})")
                elif order.status == 404:
                    why = (f"desk answered {order.reason} without error {NOT_FOUND_CODE!r}: "
                           "not the desk's answer")
                else:
                    why = f"desk error {order.reason}"
        recorded = desk.outcome(execution_id)
        if recorded is not None:
            return execution_lookup(desk.dealer_id, intent, recorded)
        return ExecutionLookup(ExecutionState.NOT_FOUND if absent else ExecutionState.UNKNOWN, reason=why)

    # --- quotes ------------------------------------------------------------------------------

    async def _quote(self, desk: _Desk, rfq: RfqNew, plan: QuotePlan | str) -> None:
        try:
            await self._quote_inner(desk, rfq, plan)
        except Exception as exc:  # a bug here must not leave the RFQ waiting for this desk
            _log.exception("rest_quote_failed", dealer_id=desk.dealer_id, rfq_id=rfq.rfq_id)
            self._decline(desk, rfq.rfq_id, f"adapter error: {describe_error(exc, None)}")

    async def _quote_inner(self, desk: _Desk, rfq: RfqNew, plan: QuotePlan | str) -> None:
        if isinstance(plan, str):
            self._decline(desk, rfq.rfq_id, plan)
            return
        budget = (rfq.deadline - utc_now()).total_seconds() - desk.config.deadline_margin_ms / 1000
        if budget <= 0:
            self._decline(desk, rfq.rfq_id, "no time left before the RFQ's deadline")
            return
        try:
            async with asyncio.timeout(budget):
                answers = await asyncio.gather(*(self._ask(desk, request) for request in plan.requests))
        except TimeoutError:
            _log.info("rest_quote_timeout", dealer_id=desk.dealer_id, rfq_id=rfq.rfq_id)
            waited = round(budget * 1000)
            self._decline(desk, rfq.rfq_id, f"no answer before the RFQ's deadline (waited {waited} ms)")
            return
        received_at = utc_now()
        failures = [(request, a) for request, a in zip(plan.requests, answers, strict=True)
                    if isinstance(a, _Failure)]
        if failures:
            named: list[str] = []
            for request, failure in failures:
                if failure.malformed:
                    self._emit(rejected_message(desk.dealer_id, rfq.rfq_id, failure.reason, failure.raw,
                                                received_at))
                side = "/".join(m.package_side.value for m in request.sides)
                named.append(f"{side} side: {failure.reason}" if len(plan.requests) > 1 else failure.reason)
            self._decline(desk, rfq.rfq_id, "; ".join(named))
            return
        quotes = [a for a in answers if isinstance(a, DeskQuote)]
        prices: dict[QuoteSide, Decimal] = {}
        sides: dict[QuoteSide, _SideRef] = {}
        for request, answer in zip(plan.requests, quotes, strict=True):
            for mapping in request.sides:
                desk_price = answer.bid if mapping.price_field == "bid" else answer.ask
                assert desk_price is not None  # parse_quote requires the fields asked for
                prices[mapping.package_side] = mapping.to_engine(desk_price)
                sides[mapping.package_side] = _SideRef(answer.quote_id, mapping)
        quote_id = "/".join(dict.fromkeys(a.quote_id for a in quotes))
        try:
            quote = quote_message(
                desk.dealer_id, rfq.rfq_id, quote_id,
                prices.get(QuoteSide.BID), prices.get(QuoteSide.ASK),
                min(a.quantity for a in quotes), min(a.expires_at for a in quotes), received_at,
            )
        except ValidationError as exc:
            self._emit(rejected_message(desk.dealer_id, rfq.rfq_id, f"quote: {exc}", quote_id, received_at))
            self._decline(desk, rfq.rfq_id, f"unusable quote: {exc}")
            return
        desk.quotes[quote.quote_id] = _QuoteRef(rfq.rfq_id, sides, rfq.quantity_unit)
        while len(desk.quotes) > _MAX_QUOTES:
            desk.quotes.popitem(last=False)
        self._emit(quote)

    async def _ask(self, desk: _Desk, request: PlannedRequest) -> DeskQuote | _Failure:
        """One quote request; every way it can fail is a ``_Failure`` with the reason."""
        assert desk.client is not None
        try:
            response = await desk.client.request_quote(request.body)
        except _TRANSPORT_ERRORS as exc:
            return _Failure(f"request failed: {describe_error(exc, None)}")
        if response.status in (200, 201):
            try:
                data = decode_object(response, "quote")
                return parse_quote(data, needs=request.needs, raw=response.text)
            except DeskAnswerError as exc:
                return _Failure(f"malformed answer: {exc.reason}", exc.raw, malformed=True)
        if response.status == 422:
            if error_code(response) == UNSUPPORTED_UNIT_CODE:
                return _Failure(unit_refused(str(request.body.get("quantity_unit") or ""), response))
            return _Failure(f"declined by the desk ({error_reason(response)})")
        return _Failure(f"desk error {error_reason(response)}")

    # --- orders ------------------------------------------------------------------------------

    def _spawn_order(self, desk: _Desk, eid: ExecutionId, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"rest-order-{desk.dealer_id}-{eid}")
        desk.order_tasks[eid] = task

        def done(t: asyncio.Task[None]) -> None:
            if desk.order_tasks.get(eid) is t:
                del desk.order_tasks[eid]
            if not t.cancelled() and t.exception() is not None:
                _log.error("rest_order_task_failed", dealer_id=desk.dealer_id, execution_id=eid,
                           error=repr(t.exception()))

        task.add_done_callback(done)

    async def _execute(self, desk: _Desk, intent: OrderIntent, recorded: asyncio.Future[None]) -> None:
        """Intent on disk, then the one ``POST /v1/orders``, then its answer to the engine."""
        eid = intent.execution_id
        try:
            await desk.journal.record_intent(desk.dealer_id, eid, intent)
        except (OSError, ValueError) as exc:
            _log.error("rest_order_intent_failed", dealer_id=desk.dealer_id, execution_id=eid, error=str(exc))
            recorded.set_exception(OSError(str(exc)))
            return
        except BaseException:  # cancelled (the adapter is closing): the order is not sent
            recorded.set_exception(OSError("adapter closing"))
            raise
        recorded.set_result(None)
        desk.journal.mark_sent(desk.dealer_id, eid)
        answer = await self._post_order(desk, intent)
        if isinstance(answer, DeskOrder) and answer.final:
            await self._settle(desk, intent, order_outcome(eid, answer))
        elif isinstance(answer, _Refused):
            await self._settle(desk, intent, OrderOutcome(eid, False, utc_now(),
                                                          reason=f"order refused: {answer.reason}"))
        else:  # unknown or pending: ask for it, never post it again
            desk.journal.mark_unknown(desk.dealer_id, eid, "no final answer to the order")
            await self._reconcile_and_deliver(desk, intent)

    async def _post_order(self, desk: _Desk, intent: OrderIntent) -> DeskOrder | _Refused | None:
        """The desk's answer to the order; None when the outcome is unknown."""
        assert desk.client is not None
        log = _log.bind(dealer_id=desk.dealer_id, execution_id=intent.execution_id,
                        client_order_id=intent.client_order_id)
        try:
            async with asyncio.timeout(desk.call_timeout):
                response = await desk.client.place_order(intent.order_body())
        except _TRANSPORT_ERRORS as exc:
            log.warning("rest_order_outcome_unknown", error=describe_error(exc, None))
            return None
        except Exception:  # whatever went wrong, the order may have left: ask, never resend
            log.exception("rest_order_outcome_unknown")
            return None
        if response.status in REFUSED_STATUSES:
            if error_code(response) == UNSUPPORTED_UNIT_CODE:
                return _Refused(unit_refused(intent.quantity_unit, response))
            return _Refused(error_reason(response))
        try:
            order = read_order(response, intent.client_order_id)
        except DeskAnswerError as exc:
            log.warning("rest_order_answer_malformed", error=exc.reason)
            self._emit(rejected_message(desk.dealer_id, intent.rfq_id, f"order answer: {exc.reason}",
                                        exc.raw, utc_now()))
            return None
        if isinstance(order, DeskStatus):  # 404, 5xx, 409...: the outcome is not known
            log.warning("rest_order_outcome_unknown", error=order.reason)
            return None
        return order

    async def _reconcile_and_deliver(self, desk: _Desk, intent: OrderIntent) -> None:
        """Ask for the order until it is final or ``confirm_by + reconcile_grace_ms``; deliver it."""
        recorded = desk.outcome(intent.execution_id)
        if recorded is not None:  # answered before: the same answer again (a new message)
            self._deliver_outcome(desk, intent, recorded)
            return
        assert desk.client is not None
        config = desk.config
        give_up = intent.confirm_by.timestamp() + config.reconcile_grace_ms / 1000
        log = _log.bind(dealer_id=desk.dealer_id, execution_id=intent.execution_id,
                        client_order_id=intent.client_order_id)
        reported = False
        while True:
            try:
                async with asyncio.timeout(desk.call_timeout):
                    response = await desk.client.get_order(intent.client_order_id)
                order = read_order(response, intent.client_order_id)
            except DeskAnswerError as exc:
                log.warning("rest_order_lookup_malformed", error=exc.reason)
                if not reported:
                    reported = True
                    self._emit(rejected_message(desk.dealer_id, intent.rfq_id, f"order lookup: {exc.reason}",
                                                exc.raw, utc_now()))
            except _TRANSPORT_ERRORS as exc:
                log.info("rest_order_lookup_failed", error=describe_error(exc, None))
            else:
                if isinstance(order, DeskOrder) and order.final:
                    await self._settle(desk, intent, order_outcome(intent.execution_id, order))
                    return
                log.info("rest_order_not_final",
                         status=order.status.value if isinstance(order, DeskOrder) else order.reason)
            if utc_now().timestamp() >= give_up:
                log.error("rest_order_unresolved", confirm_by=intent.confirm_by.isoformat())
                return
            await asyncio.sleep(config.reconcile_interval_ms / 1000)

    async def _settle(self, desk: _Desk, intent: OrderIntent, outcome: OrderOutcome) -> None:
        """Journal the desk's answer (for lookups after a restart), then hand it to the engine
        (the answer that stands: the first one journaled)."""
        outcome = await desk.journal.record_outcome(desk.dealer_id, intent.execution_id, outcome)
        self._deliver_outcome(desk, intent, outcome)

    def _deliver_outcome(self, desk: _Desk, intent: OrderIntent, outcome: OrderOutcome) -> None:
        try:
            message = execution_message(desk.dealer_id, intent, outcome)
        except ValidationError as exc:
            message = rejected_message(desk.dealer_id, intent.rfq_id, f"order answer: {exc}", None, utc_now())
        self._emit(message)

    # --- internals ---------------------------------------------------------------------------

    def _reachable(self, dealer_id: DealerId) -> _Desk:
        return reachable(self._desks, dealer_id, closed=self._closed, started=self._sink is not None,
                         offline=lambda desk: "" if desk.client is not None else "adapter not started")

    def _decline(self, desk: _Desk, rfq_id: RfqId, reason: str) -> None:
        _log.info("rest_quote_declined", dealer_id=desk.dealer_id, rfq_id=rfq_id, reason=reason)
        self._emit(decline_message(desk.dealer_id, rfq_id, reason, utc_now()))

    def _emit(self, message: Inbound) -> None:
        if self._sink is not None and not self._closed:
            self._sink(message)

