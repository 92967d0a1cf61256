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

``query_execution``: the wire protocol has no query message, so the adapter answers from
what the dealer has already said. It remembers the first verified ``execution.confirm``
and ``execution.reject`` per execution id; a confirm it holds is CONFIRMED, a reject
REJECTED, anything else UNKNOWN (recovery then listens for the answer until
``confirm_by``). Why it remembers: after an engine restart, the persistent session
delivers what the dealer published while the engine was down as soon as the adapter
connects, which is before recovery has rebuilt the RFQs, so the engine itself drops such
a confirm as "unknown rfq_id"; recovery then asks ``query_execution`` and gets it here.
The adapter reports the dealer's words; whether they match the award is the engine's call.
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

from dealer_adapters.mqtt.config import DEFAULT_ENGINE_USER, MqttBrokerConfig, MqttDealerConfig
from dealer_adapters.mqtt.connection import MqttLink, NotConnected
from dealer_adapters.mqtt.envelope import Topics, encode_message, verify_inbound
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
    Outbound,
    RfqClosed,
    RfqNew,
    new_id,
)

__all__ = ["QUERY_UNKNOWN_REASON", "MqttDealers"]

_log = structlog.get_logger(__name__)

MQTT_LOOKUP = LookupPolicy(
    key="execution_id",
    can_query=False,
    not_found_proves_absent=False,
    note="the wire has no lookup: only the confirm or reject the desk already sent",
)

QUERY_UNKNOWN_REASON = (
    "no confirm or reject from the dealer for this execution has reached this process (the MQTT "
    "protocol has no query message); listen for it until confirm_by"
)
_EXECUTIONS_MAX = 100_000


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
        self._answers: OrderedDict[tuple[DealerId, ExecutionId], ExecutionConfirm | ExecutionReject] = (
            OrderedDict())
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
        await self._send(dealer_id, message, need_online=True)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        await self._send(dealer_id, award, need_online=True)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        await self._send(dealer_id, message, need_online=False)

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        return MQTT_LOOKUP

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """What the dealer said about ``execution_id`` on the wire (see the module doc)."""
        answer = self._answers.get((dealer_id, execution_id))
        if isinstance(answer, ExecutionConfirm):
            return ExecutionLookup(ExecutionState.CONFIRMED, confirm=answer)
        if isinstance(answer, ExecutionReject):
            return ExecutionLookup(ExecutionState.REJECTED, reason=answer.reason or "rejected by the dealer")
        return ExecutionLookup(ExecutionState.UNKNOWN, reason=QUERY_UNKNOWN_REASON)

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

    async def _send(self, dealer_id: DealerId, message: Outbound, *, need_online: bool) -> None:
        dealer = self._dealers.get(dealer_id)
        if dealer is None:
            raise DealerUnavailable(dealer_id, "not served by this adapter")
        link = self._link
        if self._closed or link is None:
            raise DealerUnavailable(dealer_id, "adapter closed" if self._closed else "adapter not started")
        if not link.ready:
            raise DealerUnavailable(dealer_id, f"not connected to the MQTT broker ({link.last_error})")
        if need_online and not self.is_online(dealer_id):
            status = self._status.get(dealer_id)
            why = "no status received from the dealer" if status is None else "the dealer's status is offline"
            raise DealerUnavailable(dealer_id, f"dealer offline: {why}")
        msg_id, payload = encode_message(message, dealer_id=dealer_id, secret=dealer.secret)
        topic = self._topics.topic(dealer_id, "award" if isinstance(message, Award) else "rfq")
        try:
            await link.publish(topic, payload)
        except NotConnected as exc:
            raise DealerUnavailable(dealer_id, str(exc)) from None
        _log.debug("mqtt.sent", dealer_id=dealer_id, topic=topic, msg_id=msg_id)

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
        inbound = verify_inbound(bytes(payload), topic_dealer=dealer.dealer_id, kind=parsed[1],
                                 secret=dealer.secret, received_at=received_at,
                                 max_bytes=self._config.max_message_bytes)
        if isinstance(inbound, InboundRejected):
            _log.warning("mqtt.inbound_rejected", dealer_id=dealer.dealer_id, topic=topic,
                         reason=inbound.reason, msg_id=inbound.msg_id)
        elif isinstance(inbound, DealerStatus):
            current = self._status.get(dealer.dealer_id)
            if current is not None and current.msg_id == inbound.msg_id:
                # the retained copy of the status we hold, sent again on re-subscribe: not news
                return
            self._status[dealer.dealer_id] = inbound
            _log.info("mqtt.dealer_status", dealer_id=dealer.dealer_id, online=inbound.online)
            self._notify()
        elif isinstance(inbound, ExecutionConfirm | ExecutionReject):
            key = (dealer.dealer_id, inbound.execution_id)
            held = self._answers.get(key)
            # the first confirm wins (a confirm is a trade); a reject is kept until one comes
            if held is None or (isinstance(inbound, ExecutionConfirm) and isinstance(held, ExecutionReject)):
                self._answers[key] = inbound
                while len(self._answers) > _EXECUTIONS_MAX:
                    self._answers.popitem(last=False)
        if self._sink is not None:
            self._sink(inbound)

    def _disconnected(self) -> None:
        self._notify()

    def _notify(self) -> None:
        """Wake everything waiting in ``wait_online`` (online states may have changed)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

