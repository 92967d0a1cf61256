"""``MqttDealers``: every ``kind = "mqtt"`` dealer behind one broker connection.

The adapter carries messages; it never decides. Outbound, it signs each message with
the addressee's secret and publishes it at QoS 1 on that dealer's topic, returning once
the broker acknowledged it. Inbound, it verifies each envelope (``envelope.py``) and
hands the engine either the domain message or an ``InboundRejected`` with the reason;
the engine audits rejections, drops duplicate ``msg_id``s, and judges lateness, unknown
RFQs and confirms against awards. A verified ``status`` also updates ``is_online``.

Topics (``{prefix}/dealers/{dealer_id}/...``): the adapter subscribes to ``quote``,
``execution`` and ``status`` of each configured dealer, and publishes on ``rfq``
(``rfq.new``, ``rfq.closed``) and ``award``.

Online: a dealer is online while the engine is connected and the dealer's latest
``status`` (retained, and its will message when its connection dies) says
``online: true``. On every (re)connection the adapter waits until the broker has
delivered the retained statuses (a round trip through its own ``.../engine/<client
id>/sync`` topic, ordered behind them) before it reports itself connected, so the first
RFQ after start-up sees who is there. ``rfq.new`` and ``award`` are only sent to an
online dealer (else ``DealerUnavailable``: the engine counts it absent, or falls back to
the next quote); ``rfq.closed`` is published to offline dealers too (the broker queues it
in their persistent session).

Send outcomes: acknowledged by the broker -> returns; no connection ->
``DealerUnavailable`` (nothing was sent); the connection dropped before the broker
acknowledged -> ``DeliveryUncertain`` (a ``ConnectionError``): for an award the engine
then keeps listening for a confirm until ``confirm_by``, as the dealer may have it.
``send_rfq`` is the exception: it returns once ``rfq.new`` is queued on the connection,
without waiting for the PUBACK, so the engine stamps ``rfq.sent`` when the RFQ opens and not
one broker round trip (or, with many RFQs in flight, a queue of them) later; the ten
``rfq.new`` of an RFQ leave back to back. ``DealerUnavailable`` still comes at once when
there is no connection or the dealer is offline. An ``rfq.new`` written on a connection
that then drops is logged (``mqtt.rfq_unacknowledged``): the dealer may have it and quote,
or stay silent until the deadline, which the engine handles as any silent dealer.

``query_execution`` (docs/dealer-protocol.md, "Execution queries"): first from what the
dealer has already said. The adapter remembers the first verified ``execution.confirm``
(or else ``execution.reject``) per execution id, and answers CONFIRMED / REJECTED (NOT_FOUND
for a reject marked ``not_found``) from it without asking. Why it remembers: after an
engine restart, the persistent session delivers what the dealer published while the
engine was down as soon as the adapter connects, which is before recovery has rebuilt the
RFQs, so the engine itself drops such a confirm as "unknown rfq_id"; recovery then asks
``query_execution`` and gets it here. Otherwise, for a dealer whose latest ``status``
lists ``execution.query`` in ``features``, it publishes an ``execution.query`` on the
dealer's ``award`` topic and waits (``query_timeout_ms``) for the dealer's answer, an
``execution.confirm`` / ``execution.reject`` for that id, which is handed to the engine
like any other. Anything else is UNKNOWN: no feature, dealer offline, no connection, the
query could not be sent, no answer in time, the connection dropped while waiting.
``lookup_policy`` follows the feature: can_query and not_found_proves_absent (the dealer
fences an id it answered "not found") only for a dealer that advertises it. The adapter
reports the dealer's words; whether they match the award is the engine's call.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import aiomqtt
import structlog

from dealer_adapters.common import not_served, reachable
from dealer_adapters.mqtt.config import DEFAULT_ENGINE_USER, MqttBrokerConfig, MqttDealerConfig
from dealer_adapters.mqtt.connection import MqttLink, NotConnected
from dealer_adapters.mqtt.envelope import (
    FEATURE_EXECUTION_QUERY,
    EngineMessage,
    ExecutionQuery,
    Topics,
    encode_message,
    message_body_text,
    verify_inbound_ext,
)
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
    DealerStatus,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    InboundRejected,
    RfqClosed,
    RfqId,
    RfqNew,
    new_id,
)

__all__ = ["MQTT_LOOKUP", "MQTT_QUERY_LOOKUP", "QUERY_UNKNOWN_REASON", "MqttDealers"]

_log = structlog.get_logger(__name__)

MQTT_LOOKUP = LookupPolicy(
    key="execution_id",
    can_query=False,
    not_found_proves_absent=False,
    note="the desk does not advertise execution.query: only the confirm or reject it already sent",
)
"""A dealer whose ``status`` does not list ``execution.query`` (or sent no status yet)."""
MQTT_QUERY_LOOKUP = LookupPolicy(
    key="execution_id",
    can_query=True,
    not_found_proves_absent=True,
    note=("execution.query on the desk's award topic; a desk that answers 'not found' fences the id "
          "(an award for it later is rejected, never executed)"),
)
"""A dealer whose latest ``status`` lists ``execution.query`` in ``features``."""

QUERY_UNKNOWN_REASON = (
    "no confirm or reject from the dealer for this execution has reached this process, and the "
    "dealer does not advertise execution.query, so it cannot be asked"
)
_EXECUTIONS_MAX = 100_000
_BODIES_MAX = 256
"""Rendered message bodies kept (``_body_text``): the RFQs being opened at one time."""
_QueryKey = tuple[DealerId, ExecutionId]


@dataclass(frozen=True, slots=True)
class _Dealer:
    dealer_id: DealerId
    secret: bytes


class MqttDealers:
    """The engine's side of the MQTT protocol for several dealers on one connection.

    Secrets (and the broker password) are read from the environment when the adapter is
    built; a missing variable is a ``ValueError`` naming the dealer and the variable.
    """

    def __init__(
        self,
        broker: MqttBrokerConfig,
        dealers: Mapping[DealerId, MqttDealerConfig],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not dealers:
            raise ValueError("MqttDealers needs at least one dealer")
        env = os.environ if environ is None else environ
        self._config = broker
        self._topics = Topics(broker.prefix)
        self._dealers = {
            DealerId(d): _Dealer(DealerId(d), cfg.secret(d, env)) for d, cfg in dealers.items()
        }
        self._username = broker.username or DEFAULT_ENGINE_USER
        self._password = broker.password(env)
        self._client_id = broker.client_id or self._username
        self._sync_topic = f"{broker.prefix}/engine/{self._client_id}/sync"
        self._sync_waiters: dict[str, asyncio.Future[None]] = {}
        self._status: dict[DealerId, DealerStatus] = {}
        self._changed = asyncio.Event()
        self._answers: OrderedDict[_QueryKey, ExecutionConfirm | ExecutionReject] = OrderedDict()
        self._not_found: set[_QueryKey] = set()
        """Held rejects that were the dealer's "not found" answer."""
        self._features: dict[DealerId, tuple[str, ...]] = {}
        self._queries: dict[_QueryKey, list[asyncio.Future[ExecutionLookup | None]]] = {}
        self._award_rfqs: OrderedDict[_QueryKey, RfqId] = OrderedDict()
        """The RFQ of each award sent from this process (an ``execution.query`` names it)."""
        self._bodies: OrderedDict[int, tuple[EngineMessage, str]] = OrderedDict()
        self._sink: InboundSink | None = None
        self._link: MqttLink | None = None
        self._closed = False

    # ------------------------------------------------------------------ DealerAdapter

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(self._dealers)

    async def start(self, sink: InboundSink) -> None:
        """Connect and wait (up to ``connect_timeout_s``) for the first connection and the
        dealers' retained statuses; if the broker is not reachable it keeps trying in the
        background and every send fails with ``DealerUnavailable`` until it is."""
        if self._link is not None or self._closed:
            raise RuntimeError("MqttDealers can be started once")
        self._sink = sink
        subscriptions = [
            self._topics.topic(d, kind) for d in self._dealers for kind in ("quote", "execution", "status")
        ]
        subscriptions.append(self._sync_topic)
        self._link = MqttLink(
            self._config,
            username=self._username,
            password=self._password,
            client_id=self._client_id,
            subscriptions=subscriptions,
            on_message=self._on_message,
            on_connect=self._sync,
            on_disconnect=self._disconnected,
            name="engine",
        )
        connected = await self._link.start()
        if not connected:
            _log.warning("mqtt.start_not_connected", host=self._config.host, port=self._config.port,
                         error=self._link.last_error)

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            await self._link.close()

    def is_online(self, dealer_id: DealerId) -> bool:
        status = self._status.get(dealer_id)
        return self.connected and status is not None and status.online

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        """Queue ``rfq.new`` on the connection and return without waiting for the PUBACK
        (see the module doc, "Send outcomes")."""
        self._send_nowait(dealer_id, message)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        self._award_rfqs[(dealer_id, award.execution_id)] = award.rfq_id
        while len(self._award_rfqs) > _EXECUTIONS_MAX:
            self._award_rfqs.popitem(last=False)
        await self._send(dealer_id, award, need_online=True)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        await self._send(dealer_id, message, need_online=False)

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        """``MQTT_QUERY_LOOKUP`` for a dealer whose latest status advertises
        ``execution.query``, else ``MQTT_LOOKUP``."""
        return MQTT_QUERY_LOOKUP if self.supports_query(dealer_id) else MQTT_LOOKUP

    def supports_query(self, dealer_id: DealerId) -> bool:
        """Whether the dealer's latest verified ``status`` lists ``execution.query``."""
        return FEATURE_EXECUTION_QUERY in self._features.get(dealer_id, ())

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId, *,
                              rfq_id: RfqId | None = None, timeout: float | None = None) -> ExecutionLookup:
        """What became of ``execution_id`` at ``dealer_id`` (see the module doc).

        CONFIRMED (with the confirm) / REJECTED / NOT_FOUND from the answer the dealer already
        sent or sends to the query; UNKNOWN when it cannot be asked or did not answer within
        ``timeout`` seconds (default ``query_timeout_ms``). ``rfq_id`` goes into the query
        (default: the RFQ of the award, when this process sent it). Never raises.
        """
        key = (dealer_id, execution_id)
        held = self._held(key)
        if held is not None:
            return held
        if dealer_id not in self._dealers:
            return not_served()
        if not self.supports_query(dealer_id):
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=QUERY_UNKNOWN_REASON)
        if not self.is_online(dealer_id):
            why = "not connected to the MQTT broker" if not self.connected else "the dealer is offline"
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=f"cannot ask: {why}")
        wait = self._config.query_timeout_ms / 1000 if timeout is None else timeout
        future: asyncio.Future[ExecutionLookup | None] = asyncio.get_running_loop().create_future()
        waiters = self._queries.setdefault(key, [])
        waiters.append(future)
        try:
            query = ExecutionQuery(execution_id, rfq_id or self._award_rfqs.get(key))
            try:
                await self._send(dealer_id, query, need_online=True)
            except (DealerUnavailable, ConnectionError, TimeoutError) as exc:
                early = future.result() if future.done() else None
                if early is not None:  # answered all the same
                    return early
                return ExecutionLookup(ExecutionState.UNKNOWN,
                                       reason=f"the execution.query could not be sent: {exc}")
            try:
                async with asyncio.timeout(wait):
                    answer = await future
            except TimeoutError:
                return ExecutionLookup(ExecutionState.UNKNOWN,
                                       reason=f"no answer to execution.query within {wait:g}s")
        finally:
            waiters.remove(future)
            if not waiters and self._queries.get(key) is waiters:
                del self._queries[key]
        if answer is None:
            return ExecutionLookup(ExecutionState.UNKNOWN,
                                   reason="the connection to the broker dropped before the dealer answered")
        return answer

    def _held(self, key: _QueryKey) -> ExecutionLookup | None:
        """The lookup the dealer's held answer for ``key`` gives, None when there is none."""
        answer = self._answers.get(key)
        if isinstance(answer, ExecutionConfirm):
            return ExecutionLookup(ExecutionState.CONFIRMED, confirm=answer)
        if isinstance(answer, ExecutionReject):
            if key in self._not_found:
                return ExecutionLookup(ExecutionState.NOT_FOUND,
                                       reason=answer.reason or "the dealer has no record of this execution")
            return ExecutionLookup(ExecutionState.REJECTED, reason=answer.reason or "rejected by the dealer")
        return None

    # ------------------------------------------------------------------ observability

    @property
    def connected(self) -> bool:
        """Connected to the broker and the retained statuses have been read."""
        return self._link is not None and self._link.ready

    @property
    def link(self) -> MqttLink | None:
        return self._link

    def status(self, dealer_id: DealerId) -> DealerStatus | None:
        """The dealer's latest verified ``status`` (None before it sent one)."""
        return self._status.get(dealer_id)

    async def wait_online(self, dealers: Iterable[DealerId], *, online: bool = True,
                          timeout: float = 10.0) -> None:
        """Wait until each of ``dealers`` is online (or, with ``online=False``, offline).

        Raises ``TimeoutError`` naming the dealers still in the other state.
        """
        wanted = list(dealers)

        def pending() -> list[DealerId]:
            return [d for d in wanted if self.is_online(d) != online]

        try:
            async with asyncio.timeout(timeout):
                while pending():
                    await self._changed.wait()
        except TimeoutError:
            state = "online" if online else "offline"
            raise TimeoutError(f"not {state} after {timeout}s: {', '.join(pending())}") from None

    # ------------------------------------------------------------------ internals

    async def _send(self, dealer_id: DealerId, message: EngineMessage, *, need_online: bool) -> None:
        await self._publish(dealer_id, message, need_online=need_online)

    def _publish(self, dealer_id: DealerId, message: EngineMessage, *,
                 need_online: bool) -> asyncio.Future[None]:
        """Sign and queue ``message`` on the connection; the future of its PUBACK.
        ``DealerUnavailable`` when it cannot be sent at all (nothing left this process)."""
        dealer = reachable(self._dealers, dealer_id, closed=self._closed, started=self._link is not None)
        link = self._link
        assert link is not None
        if not link.ready:
            raise DealerUnavailable(dealer_id, f"not connected to the MQTT broker ({link.last_error})")
        if need_online and not self.is_online(dealer_id):
            status = self._status.get(dealer_id)
            why = "no status received from the dealer" if status is None else "the dealer's status is offline"
            raise DealerUnavailable(dealer_id, f"dealer offline: {why}")
        _msg_id, payload = encode_message(message, dealer_id=dealer_id, secret=dealer.secret,
                                         body_text=self._body_text(message))
        topic = self._topics.topic(dealer_id, "award" if isinstance(message, Award | ExecutionQuery)
                                   else "rfq")
        try:
            acked = link.publish_nowait(topic, payload)
        except NotConnected as exc:
            raise DealerUnavailable(dealer_id, str(exc)) from None
        return acked  # no log line per message: rfq.sent and award.sent record the sends

    def _body_text(self, message: EngineMessage) -> str:
        """The canonical body of ``message``, rendered once for all the dealers it goes to (the
        engine sends one ``RfqNew`` object to each of an RFQ's dealers)."""
        key = id(message)
        cached = self._bodies.get(key)
        if cached is not None and cached[0] is message:
            return cached[1]
        text = message_body_text(message)
        self._bodies[key] = (message, text)  # holding the message keeps its id from being reused
        while len(self._bodies) > _BODIES_MAX:
            self._bodies.popitem(last=False)
        return text

    def _send_nowait(self, dealer_id: DealerId, message: RfqNew) -> None:
        acked = self._publish(dealer_id, message, need_online=True)

        def done(future: asyncio.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:  # the dealer may or may not have it: it answers, or stays silent
                _log.warning("mqtt.rfq_unacknowledged", dealer_id=dealer_id, rfq_id=message.rfq_id,
                             error=str(error))

        acked.add_done_callback(done)

    async def _sync(self) -> None:
        """After (re)subscribing: a round trip through our own topic, which the broker
        delivers after the retained statuses it queued for us, so they are all read."""
        link = self._link
        assert link is not None
        token = new_id()
        waiter = asyncio.get_running_loop().create_future()
        self._sync_waiters[token] = waiter
        try:
            await link.publish(self._sync_topic, token.encode())
            async with asyncio.timeout(self._config.connect_timeout_s):
                await waiter
        except TimeoutError:
            _log.warning("mqtt.sync_timeout", topic=self._sync_topic)
        finally:
            self._sync_waiters.pop(token, None)
        self._notify()

    def _on_message(self, message: aiomqtt.Message, received_at: datetime) -> None:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        if topic == self._sync_topic:
            waiter = self._sync_waiters.get(bytes(payload).decode(errors="replace"))
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        parsed = self._topics.parse(topic)
        dealer = None if parsed is None else self._dealers.get(parsed[0])
        if parsed is None or dealer is None:
            _log.warning("mqtt.unexpected_topic", topic=topic)
            return
        inbound, extensions = verify_inbound_ext(
            bytes(payload), topic_dealer=dealer.dealer_id, kind=parsed[1], secret=dealer.secret,
            received_at=received_at, max_bytes=self._config.max_message_bytes)
        if isinstance(inbound, InboundRejected):
            _log.warning("mqtt.inbound_rejected", dealer_id=dealer.dealer_id, topic=topic,
                         reason=inbound.reason, msg_id=inbound.msg_id)
        elif isinstance(inbound, DealerStatus):
            current = self._status.get(dealer.dealer_id)
            if current is not None and current.msg_id == inbound.msg_id:
                # the retained copy of the status we hold, sent again on re-subscribe: not news
                return
            self._status[dealer.dealer_id] = inbound
            self._features[dealer.dealer_id] = extensions.features
            _log.info("mqtt.dealer_status", dealer_id=dealer.dealer_id, online=inbound.online,
                      features=list(extensions.features))
            self._notify()
        elif isinstance(inbound, ExecutionConfirm | ExecutionReject):
            self._hold(dealer.dealer_id, inbound, not_found=extensions.not_found)
        if self._sink is not None:
            self._sink(inbound)

    def _hold(self, dealer_id: DealerId, answer: ExecutionConfirm | ExecutionReject, *,
              not_found: bool) -> None:
        """Remember the dealer's answer for its execution id and wake the queries waiting on it."""
        key = (dealer_id, answer.execution_id)
        held = self._answers.get(key)
        # the first confirm wins (a confirm is a trade); a reject is kept until one comes
        if held is None or (isinstance(answer, ExecutionConfirm) and isinstance(held, ExecutionReject)):
            self._answers[key] = answer
            if not_found and isinstance(answer, ExecutionReject):
                self._not_found.add(key)
            else:
                self._not_found.discard(key)
            while len(self._answers) > _EXECUTIONS_MAX:
                evicted, _ = self._answers.popitem(last=False)
                self._not_found.discard(evicted)
        waiters = self._queries.get(key)
        if waiters:
            lookup = self._held(key)
            for future in waiters:
                if not future.done():
                    future.set_result(lookup)

    def _disconnected(self) -> None:
        for waiters in self._queries.values():  # their answer may never come: UNKNOWN
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._notify()

    def _notify(self) -> None:
        """Wake everything waiting in ``wait_online`` (online states may have changed)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

