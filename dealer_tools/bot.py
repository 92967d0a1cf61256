"""The reference dealer bot: one OTC desk speaking the wire protocol over MQTT.

Part of ``dealer_tools`` (the far side of the wire): it uses ``dealer_adapters.mqtt``'s
envelope, config and connection, and the simulated desks' quoting model, never the engine.

``rfq dealer --config dealer.toml`` runs it. It is what a desk starts from when it
integrates, and what the tests and ``rfq demo --mqtt`` use as a remote dealer.

What it does:

- connects as its dealer (persistent session, QoS 1, TCP_NODELAY: ``connection.py``),
  subscribes to ``{prefix}/dealers/{id}/rfq`` and ``.../award``, publishes its retained
  ``status`` (``online: true``) on every connection and sets the same topic's will
  message to ``online: false``; on a clean shutdown it publishes ``online: false``
  itself (a will is only sent when a connection dies);
- verifies every engine message exactly as the engine verifies the desk's (signature
  with the shared secret, ``dealer_id`` equal to its own id, type allowed on the topic),
  ignores a ``msg_id`` it has seen (QoS 1 redelivery) and logs anything it refuses;
- answers ``rfq.new`` with a quote or a decline from the same model as the simulated
  desks (``dealer_adapters.simulated.model``: a reference price from the market plus a
  spread and skew, sizes, declines, silence, latency), and ``award`` with a confirm or a
  reject (it stands only by what it quoted, then applies its last-look reject rate);
- trades only the quantity units in ``quoting.units``: an RFQ in another unit is declined
  (``unit X not traded``), an award in another unit (or not the quote's) is rejected;
- books each answered award before answering (in its JSONL ledger when
  ``ledger_path`` is set) and repeats the very same answer for the same
  ``execution_id``: one trade per award, however often the award arrives;
- answers ``execution.query`` (a project extension, advertised as
  ``"features": ["execution.query"]`` in its ``status``; ``answer_queries=False`` turns
  it off): the answer it gave that execution id again (a new ``msg_id``), after its
  booking when one is in progress; with no record, ``execution.reject`` with
  ``"not_found": true``, and from then on the id is *fenced*: an award for it is rejected
  (``REJECT_FENCED``), never booked. With a ledger the fence is durable too (``<ledger
  path>.fenced``, fsynced before the answer), so it holds across restarts;
- ``queries_unanswered`` (an attribute, False by default) plays a desk whose look-up into
  its books is down for a while: it still advertises ``execution.query`` but leaves every
  query unanswered (and does not answer it later), so the engine's look-ups say UNKNOWN;
  its bookings and its answers to awards are unaffected;
- ``quoting.book_latency_ms`` is how long booking an award takes (a query meanwhile is
  answered once it is booked); ``quoting.lose_confirm_rate`` simulates "executed, but the
  confirm was lost": the trade is booked and counted, its ``execution.confirm`` is not
  published (a ``lost`` event); an ``execution.query`` or a repeated award gets it;
- counts what it executed: ``executed_count()`` (confirmed bookings, those in its ledger
  from earlier runs included), ``executions()``.

Outgoing messages go through an outbox, published in order without waiting for each
PUBACK (``MqttLink.publish_nowait``: a desk answering 64 RFQs does not wait 64 round
trips); a message that cannot be published because the connection is down, or whose
PUBACK the lost connection never brought, is published after the reconnect, with the same
``msg_id`` (so the engine drops a copy that did get through). A quote is dropped once the RFQ's deadline
has passed (the engine no longer takes it); an execution answer is never dropped: the
engine treats an award with no answer as an unknown outcome and keeps listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from dealer_adapters.jsonlog import JsonLog, dumps_line
from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_adapters.mqtt.connection import DeliveryUncertain, MqttLink, NotConnected
from dealer_adapters.mqtt.envelope import (
    ENGINE_TOPICS,
    FEATURE_EXECUTION_QUERY,
    NOT_FOUND_REASON,
    EnvelopeError,
    ExecutionQuery,
    Topics,
    build_payload,
    open_envelope,
)
from dealer_adapters.mqtt.outbound import parse_outbound_body
from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_adapters.simulated.ledger import ExecutionRecord, Ledger
from dealer_adapters.simulated.model import (
    REJECT_FENCED,
    DealerModel,
    DeclinePlan,
    QuotePlan,
    SentQuote,
    quote_body,
)
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    QuoteId,
    RfqClosed,
    RfqId,
    RfqNew,
    ValidationError,
    decimal_str,
    format_ts,
    new_id,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["BotEvent", "DealerBot", "fence_path"]

_log = structlog.get_logger(__name__)
_SEEN_MAX = 100_000


def _utc_today() -> date:
    return utc_now().date()


def fence_path(ledger_path: Path) -> Path:
    """The desk's durable fences beside its ledger: ``<ledger>.fenced`` (JSON lines)."""
    return ledger_path.with_name(ledger_path.name + ".fenced")


@dataclass(frozen=True, slots=True)
class BotEvent:
    """What the bot did, for listeners (tests, a desk's own monitoring)."""

    kind: str
    """``received``, ``refused``, ``published``, ``dropped``; ``executed`` (a trade booked),
    ``lost`` (a confirm not published: ``lose_confirm_rate``), ``fenced`` (an id answered
    "not found" to a query, from now on never executed), ``fenced_award`` (an award for a
    fenced id, rejected)."""
    msg_type: str = ""
    msg_id: str = ""
    rfq_id: str = ""
    detail: str = ""


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    msg_type: str
    msg_id: str
    rfq_id: str
    expires: datetime | None
    retain: bool = False


class DealerBot:
    """One dealer desk on MQTT. ``start()`` connects; ``close()`` says goodbye and disconnects.

    ``market()`` is the desk's view of the market when it prices an RFQ. ``secret`` is
    the HMAC key it shares with the engine. ``answer_queries`` advertises and answers
    ``execution.query``; without it the desk ignores queries, as one that predates them.
    """

    def __init__(
        self,
        dealer_id: DealerId,
        *,
        secret: bytes,
        broker: MqttBrokerConfig,
        password: str | None,
        quoting: SimulatedDealerConfig,
        market: Callable[[], MarketSnapshot],
        clock_today: Callable[[], date] = _utc_today,
        answer_queries: bool = True,
    ) -> None:
        self.dealer_id = dealer_id
        self._secret = secret
        self._broker = broker
        self._password = password
        self._quoting = quoting
        self._market = market
        self._today = clock_today
        self._model = DealerModel(dealer_id, quoting)
        self._topics = Topics(broker.prefix)
        self._status_topic = self._topics.topic(dealer_id, "status")
        self._answer_queries = answer_queries
        self.queries_unanswered = False
        """While True, ``execution.query`` is ignored although advertised (see the module doc)."""
        self._ledger = None if quoting.ledger_path is None else Ledger(quoting.ledger_path)
        self._fence_log = None if quoting.ledger_path is None else JsonLog(fence_path(quoting.ledger_path))
        self._executions: dict[ExecutionId, ExecutionRecord] = {}
        self._fenced: set[ExecutionId] = set()
        if self._ledger is not None:
            for record in self._ledger.load():
                if record.dealer_id == dealer_id:
                    self._executions[record.execution_id] = record
        if self._fence_log is not None:
            for _, line in self._fence_log.lines():
                entry = json.loads(line)
                if entry.get("dealer_id") == dealer_id:
                    self._fenced.add(ExecutionId(str(entry["execution_id"])))
        self._answers: dict[ExecutionId, _Outgoing] = {}
        self._booking: set[ExecutionId] = set()
        self._queried: dict[ExecutionId, RfqId | None] = {}
        """Queries that arrived while their award was being booked: answered once it is."""
        self._quotes: dict[QuoteId, SentQuote] = {}
        self._pending: dict[RfqId, asyncio.TimerHandle] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._link: MqttLink | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[BotEvent], None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def link(self) -> MqttLink | None:
        return self._link

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.ready

    def executed_count(self) -> int:
        """How many trades the desk has executed (confirmed bookings; with a ledger, those of
        earlier runs too). One per award that traded, however often it was awarded or asked."""
        return sum(1 for record in self._executions.values() if record.confirmed)

    def executions(self) -> tuple[ExecutionRecord, ...]:
        """Every award the desk has answered (confirmed and rejected), in booking order."""
        return tuple(self._executions.values())

    def is_fenced(self, execution_id: ExecutionId) -> bool:
        """Whether the desk answered "not found" for ``execution_id`` (it will never execute it)."""
        return execution_id in self._fenced

    async def start(self, *, wait: bool = True) -> bool:
        """Connect (and keep reconnecting); returns whether the first connection is up."""
        if self._link is not None:
            raise RuntimeError("DealerBot already started")
        self._link = MqttLink(
            self._broker,
            username=self._broker.username or self.dealer_id,
            password=self._password,
            client_id=self._broker.client_id or self._broker.username or self.dealer_id,
            subscriptions=[self._topics.topic(self.dealer_id, "rfq"),
                           self._topics.topic(self.dealer_id, "award")],
            on_message=self._on_message,
            on_connect=self._announce_online,
            will=lambda: (self._status_topic, self._status_payload(online=False)),
            name=f"dealer:{self.dealer_id}",
        )
        self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        return await self._link.start(wait=wait)

    async def close(self) -> None:
        """Publish ``online: false`` (retained), then disconnect cleanly."""
        for handle in [*self._pending.values(), *self._timers]:
            handle.cancel()
        self._pending.clear()
        self._timers.clear()
        link = self._link
        if link is not None and link.connected:
            with contextlib.suppress(NotConnected, DeliveryUncertain, TimeoutError):
                async with asyncio.timeout(self._broker.connect_timeout_s):
                    await link.publish(self._status_topic, self._status_payload(online=False), retain=True)
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        for task in list(self._tasks):
            task.cancel()
        if link is not None:
            await link.close()

    # ------------------------------------------------------------------ status

    def _status_payload(self, *, online: bool) -> bytes:
        body: dict[str, Any] = {"online": online, "instruments": [k.value for k in self._quoting.instruments]}
        if self._answer_queries:
            body["features"] = [FEATURE_EXECUTION_QUERY]
        return build_payload("status", body, dealer_id=self.dealer_id, secret=self._secret)[1]

    async def _announce_online(self) -> None:
        assert self._link is not None
        await self._link.publish(self._status_topic, self._status_payload(online=True), retain=True)
        _log.info("dealer.online", dealer_id=self.dealer_id)

    # ------------------------------------------------------------------ inbound

    def _emit(self, event: BotEvent) -> None:
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("dealer.listener_failed")

    def _on_message(self, message: aiomqtt.Message, received_at: datetime) -> None:
        topic = str(message.topic)
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        parsed = self._topics.parse(topic)
        if parsed is None or parsed[0] != self.dealer_id or parsed[1] not in ENGINE_TOPICS:
            self._refuse(f"message on an unexpected topic {topic}")
            return
        try:
            envelope = open_envelope(payload, topic_dealer=self.dealer_id,
                                     allowed_types=ENGINE_TOPICS[parsed[1]], secret=self._secret,
                                     max_bytes=self._broker.max_message_bytes)
            message_ = parse_outbound_body(envelope.type, envelope.body, dealer_id=self.dealer_id)
        except EnvelopeError as exc:
            self._refuse(exc.reason, exc.msg_id or "")
            return
        except ValidationError as exc:
            self._refuse(str(exc))
            return
        if envelope.msg_id in self._seen:
            _log.info("dealer.duplicate_ignored", dealer_id=self.dealer_id, msg_id=envelope.msg_id)
            return
        self._seen[envelope.msg_id] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        rfq_id = message_.rfq_id or ""
        self._emit(BotEvent("received", envelope.type, envelope.msg_id, rfq_id))
        _log.info("dealer.received", dealer_id=self.dealer_id, type=envelope.type, rfq_id=rfq_id,
                  msg_id=envelope.msg_id)
        if isinstance(message_, RfqNew):
            self._on_rfq(message_)
        elif isinstance(message_, Award):
            self._on_award(message_)
        elif isinstance(message_, RfqClosed):
            self._on_closed(message_)
        elif isinstance(message_, ExecutionQuery):
            self._on_query(message_)

    def _refuse(self, reason: str, msg_id: str = "") -> None:
        _log.warning("dealer.message_refused", dealer_id=self.dealer_id, reason=reason, msg_id=msg_id)
        self._emit(BotEvent("refused", msg_id=msg_id, detail=reason))

    def _on_rfq(self, rfq: RfqNew) -> None:
        if rfq.deadline <= utc_now():
            _log.info("dealer.rfq_expired_on_arrival", dealer_id=self.dealer_id, rfq_id=rfq.rfq_id)
            return
        answer: QuotePlan | DeclinePlan | None
        try:
            plan = self._model.plan_rfq(rfq, self._market(), self._today())
            answer, delay = plan.answer, plan.delay_s
        except Exception as exc:  # a broken pricer declines; it never kills the desk
            _log.exception("dealer.pricing_failed", dealer_id=self.dealer_id, rfq_id=rfq.rfq_id)
            answer, delay = DeclinePlan(f"pricing error: {exc}"), self._quoting.latency_ms / 1000
        if answer is None:
            _log.info("dealer.silent", dealer_id=self.dealer_id, rfq_id=rfq.rfq_id)
            return
        loop = asyncio.get_running_loop()
        self._pending[rfq.rfq_id] = loop.call_later(delay, self._answer_rfq, rfq, answer)

    def _answer_rfq(self, rfq: RfqNew, answer: QuotePlan | DeclinePlan) -> None:
        self._pending.pop(rfq.rfq_id, None)
        if isinstance(answer, DeclinePlan):
            decline = {"rfq_id": rfq.rfq_id, "reason": answer.reason}
            self._send("quote.decline", decline, rfq.rfq_id, rfq.deadline)
            return
        quote_id = QuoteId(new_id())
        valid_until = utc_now() + timedelta(milliseconds=self._quoting.quote_validity_ms)
        body = quote_body(rfq.rfq_id, quote_id, answer, valid_until)
        self._quotes[quote_id] = SentQuote(rfq.rfq_id, quote_id, answer.bid, answer.ask, answer.quantity,
                                           valid_until, rfq.quantity_unit)
        self._send("quote", body, rfq.rfq_id, rfq.deadline)

    def _on_closed(self, closed: RfqClosed) -> None:
        pending = self._pending.pop(closed.rfq_id, None)
        if pending is not None:
            pending.cancel()
        for quote_id in [q.quote_id for q in self._quotes.values() if q.rfq_id == closed.rfq_id]:
            del self._quotes[quote_id]
        _log.info("dealer.rfq_closed", dealer_id=self.dealer_id, rfq_id=closed.rfq_id, outcome=closed.outcome,
                  you_won=closed.you_won)

    def _on_award(self, award: Award) -> None:
        answered = self._answers.get(award.execution_id)
        if answered is not None:  # the same award again: the very same answer (same msg_id)
            self._queue(answered)
            return
        record = self._executions.get(award.execution_id)
        if record is not None:  # booked in an earlier run (ledger): answer as booked
            self._schedule_answer(record, lose=False)
            return
        if award.execution_id in self._booking:
            return  # its answer follows once booked
        if award.execution_id in self._fenced:
            self._refuse_fenced(award)
            return
        self._booking.add(award.execution_id)
        task = asyncio.get_running_loop().create_task(self._book(award))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refuse_fenced(self, award: Award) -> None:
        """An award for an id this desk answered "not found": rejected, never booked."""
        _log.warning("dealer.fenced_award", dealer_id=self.dealer_id, rfq_id=award.rfq_id,
                     execution_id=award.execution_id)
        self._emit(BotEvent("fenced_award", "award", rfq_id=award.rfq_id, detail=award.execution_id))
        body = {"execution_id": award.execution_id, "rfq_id": award.rfq_id, "reason": REJECT_FENCED}
        self._send("execution.reject", body, award.rfq_id, None)

    async def _book(self, award: Award) -> None:
        now = utc_now()
        reason = self._model.plan_award(award, self._quotes.get(award.quote_id), now)
        record = ExecutionRecord.for_award(self.dealer_id, award, reason, now)
        lose = record.confirmed and self._model.loses_confirm()
        eid = award.execution_id
        if self._quoting.book_latency_ms:  # a slow booking system: a query meanwhile waits for it
            await asyncio.sleep(self._quoting.book_latency_ms / 1000)
        try:
            if self._ledger is not None:
                await asyncio.to_thread(self._ledger.append, record)  # durable before any answer
        except OSError:
            _log.exception("dealer.booking_failed", dealer_id=self.dealer_id, execution_id=eid)
            self._booking.discard(eid)
            # not booked, so not executed and no answer; a query waiting for it is told
            # "not found" (and the id fenced) rather than left hanging
            if eid in self._queried:
                del self._queried[eid]
                await self._not_found(eid, award.rfq_id)
            return
        self._executions[eid] = record
        self._booking.discard(eid)
        _log.info("dealer.award", dealer_id=self.dealer_id, execution_id=award.execution_id,
                  outcome=record.outcome.value, reason=record.reason)
        if record.confirmed:
            self._emit(BotEvent("executed", "award", rfq_id=record.rfq_id, detail=record.execution_id))
        self._schedule_answer(record, lose=lose)
        if award.execution_id in self._queried:  # asked while booking: the answer, now
            del self._queried[award.execution_id]
            self._queue(self._answer_message(record))

    def _answer_message(self, record: ExecutionRecord) -> _Outgoing:
        """The desk's answer to the award ``record`` booked, as a new message (a new msg_id)."""
        if record.confirmed:
            msg_type = "execution.confirm"
            body: dict[str, Any] = {
                "execution_id": record.execution_id,
                "rfq_id": record.rfq_id,
                "quote_id": record.quote_id,
                "price": decimal_str(record.price),
                "quantity": decimal_str(record.quantity),
                "dealer_trade_id": record.dealer_trade_id,
            }
        else:
            msg_type = "execution.reject"
            body = {"execution_id": record.execution_id, "rfq_id": record.rfq_id, "reason": record.reason}
        msg_id, payload = build_payload(msg_type, body, dealer_id=self.dealer_id, secret=self._secret)
        return _Outgoing(self._topics.for_type(self.dealer_id, msg_type), payload, msg_type, msg_id,
                         record.rfq_id, None)

    def _schedule_answer(self, record: ExecutionRecord, *, lose: bool) -> None:
        outgoing = self._answer_message(record)
        self._answers[record.execution_id] = outgoing
        if lose:  # executed, but the confirm never leaves the desk
            _log.info("dealer.confirm_lost", dealer_id=self.dealer_id, execution_id=record.execution_id)
            self._emit(BotEvent("lost", outgoing.msg_type, outgoing.msg_id, record.rfq_id,
                                record.execution_id))
            return
        delay = self._quoting.confirm_latency_ms / 1000
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._queue(outgoing)

        holder.append(asyncio.get_running_loop().call_later(delay, fire))
        self._timers.add(holder[0])

    # ------------------------------------------------------------------ execution.query

    def _on_query(self, query: ExecutionQuery) -> None:
        """Answer truthfully: the booked answer again; after the booking in progress; or
        "not found", fencing the id first."""
        if not self._answer_queries or self.queries_unanswered:
            _log.info("dealer.query_ignored", dealer_id=self.dealer_id, execution_id=query.execution_id)
            return
        eid = query.execution_id
        record = self._executions.get(eid)
        if record is not None:
            self._queue(self._answer_message(record))
        elif eid in self._booking:
            self._queried[eid] = query.rfq_id
        else:
            task = asyncio.get_running_loop().create_task(self._not_found(eid, query.rfq_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _not_found(self, execution_id: ExecutionId, rfq_id: RfqId | None) -> None:
        """Fence ``execution_id`` (in memory at once, then durably), then say "not found"."""
        first = execution_id not in self._fenced
        self._fenced.add(execution_id)  # from this instant no award for it is booked
        if first:
            _log.info("dealer.fenced", dealer_id=self.dealer_id, execution_id=execution_id)
            self._emit(BotEvent("fenced", "execution.query", rfq_id=rfq_id or "", detail=execution_id))
            if self._fence_log is not None:
                line = dumps_line({"dealer_id": self.dealer_id, "execution_id": execution_id,
                                   "fenced_at": format_ts(utc_now())})
                try:
                    await asyncio.to_thread(self._fence_log.append, line)
                except OSError:  # the fence holds in this run, but could not be made durable: stay silent
                    _log.exception("dealer.fence_failed", dealer_id=self.dealer_id, execution_id=execution_id)
                    return
        body: dict[str, Any] = {"execution_id": execution_id, "reason": NOT_FOUND_REASON, "not_found": True}
        if rfq_id:
            body["rfq_id"] = rfq_id
        self._send("execution.reject", body, rfq_id or "", None)

    # ------------------------------------------------------------------ outbound

    def _send(self, msg_type: str, body: Mapping[str, Any], rfq_id: str, expires: datetime | None) -> None:
        msg_id, payload = build_payload(msg_type, body, dealer_id=self.dealer_id, secret=self._secret)
        self._queue(_Outgoing(self._topics.for_type(self.dealer_id, msg_type), payload, msg_type, msg_id,
                              rfq_id, expires))

    def _queue(self, outgoing: _Outgoing) -> None:
        self._outbox.put_nowait(outgoing)

    async def _publish_loop(self) -> None:
        """Publish in order without waiting for each PUBACK (they are followed by ``_acked``);
        wait out a lost connection; drop what the engine no longer awaits."""
        link = self._link
        assert link is not None
        while True:
            item = await self._outbox.get()
            while True:
                left = None if item.expires is None else (item.expires - utc_now()).total_seconds()
                if left is not None and left <= 0:
                    _log.warning("dealer.message_dropped", dealer_id=self.dealer_id, type=item.msg_type,
                                 msg_id=item.msg_id, reason="its deadline passed while it could not be sent")
                    self._emit(BotEvent("dropped", item.msg_type, item.msg_id, item.rfq_id,
                                        "deadline passed"))
                    break
                if not await link.wait_ready(left):
                    continue
                try:
                    acked = link.publish_nowait(item.topic, item.payload, retain=item.retain)
                except NotConnected as exc:
                    _log.info("dealer.publish_retry", dealer_id=self.dealer_id, msg_id=item.msg_id,
                              error=str(exc))
                    await self._until_reconnect(link, left)
                    continue
                acked.add_done_callback(functools.partial(self._acked, item))
                break

    def _acked(self, item: _Outgoing, future: asyncio.Future[None]) -> None:
        """The broker acknowledged ``item`` (``published``), or the connection was lost
        before it did: queue it again, same ``msg_id``, for the next connection (a copy the
        engine already has is dropped there as a duplicate)."""
        error = None if future.cancelled() else future.exception()
        if error is None and not future.cancelled():
            _log.info("dealer.sent", dealer_id=self.dealer_id, type=item.msg_type, rfq_id=item.rfq_id,
                      msg_id=item.msg_id)
            self._emit(BotEvent("published", item.msg_type, item.msg_id, item.rfq_id))
            return
        _log.info("dealer.publish_retry", dealer_id=self.dealer_id, msg_id=item.msg_id, error=str(error))
        self._queue(item)

    @staticmethod
    async def _until_reconnect(link: MqttLink, left: float | None) -> None:
        """After a failed publish: wait for this connection to be torn down, then for the next."""
        before = link.connections
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                while link.connections == before or not link.ready:
                    await link.wait_state_change()
