"""The reference dealer bot: one OTC desk speaking the wire protocol over MQTT.

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
- books each answered award before answering (in its JSONL ledger when
  ``ledger_path`` is set) and repeats the very same answer for the same
  ``execution_id``: one trade per award, however often the award arrives.

Outgoing messages go through an outbox: a message that cannot be published because the
connection is down is published after the reconnect, with the same ``msg_id`` (so the
engine drops a copy that did get through), until its own deadline passes (a quote: the
RFQ's deadline; an execution answer: the award's ``confirm_by``), after which it is
dropped, since the engine no longer waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import aiomqtt
import structlog

from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_adapters.mqtt.connection import DeliveryUncertain, MqttLink, NotConnected
from dealer_adapters.mqtt.envelope import (
    ENGINE_TOPICS,
    EnvelopeError,
    Topics,
    build_envelope,
    encode_envelope,
    open_envelope,
    parse_outbound_body,
)
from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_adapters.simulated.ledger import ExecutionRecord, Ledger
from dealer_adapters.simulated.model import DealerModel, DeclinePlan, QuotePlan, SentQuote, quote_body
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
    new_id,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["BotEvent", "DealerBot"]

_log = structlog.get_logger(__name__)
_SEEN_MAX = 100_000


def _utc_today() -> date:
    return utc_now().date()


@dataclass(frozen=True, slots=True)
class BotEvent:
    """What the bot did, for listeners (tests, a desk's own monitoring)."""

    kind: str
    """``received``, ``refused``, ``published``, ``dropped``."""
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
    the HMAC key it shares with the engine.
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
        self._ledger = None if quoting.ledger_path is None else Ledger(quoting.ledger_path)
        self._executions: dict[ExecutionId, ExecutionRecord] = {}
        if self._ledger is not None:
            for record in self._ledger.load():
                if record.dealer_id == dealer_id:
                    self._executions[record.execution_id] = record
        self._answers: dict[ExecutionId, _Outgoing] = {}
        self._booking: set[ExecutionId] = set()
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
        body = {"online": online, "instruments": [k.value for k in self._quoting.instruments]}
        envelope = build_envelope("status", body, dealer_id=self.dealer_id, secret=self._secret)
        return encode_envelope(envelope)

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
        rfq_id = message_.rfq_id
        self._emit(BotEvent("received", envelope.type, envelope.msg_id, rfq_id))
        _log.info("dealer.received", dealer_id=self.dealer_id, type=envelope.type, rfq_id=rfq_id,
                  msg_id=envelope.msg_id)
        if isinstance(message_, RfqNew):
            self._on_rfq(message_)
        elif isinstance(message_, Award):
            self._on_award(message_)
        elif isinstance(message_, RfqClosed):
            self._on_closed(message_)

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
                                           valid_until)
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
            self._schedule_answer(record, award.confirm_by)
            return
        if award.execution_id in self._booking:
            return  # its answer follows once booked
        self._booking.add(award.execution_id)
        task = asyncio.get_running_loop().create_task(self._book(award))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _book(self, award: Award) -> None:
        now = utc_now()
        reason = self._model.plan_award(award, self._quotes.get(award.quote_id), now)
        record = ExecutionRecord.for_award(self.dealer_id, award, reason, now)
        try:
            if self._ledger is not None:
                await asyncio.to_thread(self._ledger.append, record)  # durable before any answer
            self._executions[award.execution_id] = record
        except OSError:
            _log.exception("dealer.booking_failed", dealer_id=self.dealer_id, execution_id=award.execution_id)
            return  # no answer: the engine counts silence as a reject at confirm_by
        finally:
            self._booking.discard(award.execution_id)
        _log.info("dealer.award", dealer_id=self.dealer_id, execution_id=award.execution_id,
                  outcome=record.outcome.value, reason=record.reason)
        self._schedule_answer(record, award.confirm_by)

    def _schedule_answer(self, record: ExecutionRecord, confirm_by: datetime) -> None:
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
        envelope = build_envelope(msg_type, body, dealer_id=self.dealer_id, secret=self._secret)
        outgoing = _Outgoing(self._topics.for_type(self.dealer_id, msg_type), encode_envelope(envelope),
                             msg_type, envelope["msg_id"], record.rfq_id, confirm_by)
        self._answers[record.execution_id] = outgoing
        delay = self._quoting.confirm_latency_ms / 1000
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._queue(outgoing)

        holder.append(asyncio.get_running_loop().call_later(delay, fire))
        self._timers.add(holder[0])

    # ------------------------------------------------------------------ outbound

    def _send(self, msg_type: str, body: Mapping[str, Any], rfq_id: str, expires: datetime | None) -> None:
        envelope = build_envelope(msg_type, body, dealer_id=self.dealer_id, secret=self._secret)
        self._queue(_Outgoing(self._topics.for_type(self.dealer_id, msg_type), encode_envelope(envelope),
                              msg_type, envelope["msg_id"], rfq_id, expires))

    def _queue(self, outgoing: _Outgoing) -> None:
        self._outbox.put_nowait(outgoing)

    async def _publish_loop(self) -> None:
        """Publish in order; wait out a lost connection; drop what the engine no longer awaits."""
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
                    await link.publish(item.topic, item.payload, retain=item.retain)
                except (NotConnected, DeliveryUncertain) as exc:
                    _log.info("dealer.publish_retry", dealer_id=self.dealer_id, msg_id=item.msg_id,
                              error=str(exc))
                    await self._until_reconnect(link, left)
                    continue
                _log.info("dealer.sent", dealer_id=self.dealer_id, type=item.msg_type, rfq_id=item.rfq_id,
                          msg_id=item.msg_id)
                self._emit(BotEvent("published", item.msg_type, item.msg_id, item.rfq_id))
                break

    @staticmethod
    async def _until_reconnect(link: MqttLink, left: float | None) -> None:
        """After a failed publish: wait for this connection to be torn down, then for the next."""
        before = link.connections
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                while link.connections == before or not link.ready:
                    await link.wait_state_change()
