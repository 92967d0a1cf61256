"""One resilient MQTT connection on aiomqtt, shared by the engine's adapter and the dealer bot.

What it guarantees:

- **Persistent session, QoS 1.** A fixed client id and ``clean_session=false``, so the
  broker keeps the subscriptions and queues QoS 1 messages while we are away; every
  subscription and publish is QoS 1.
- **Acknowledged means handed on.** Incoming messages are acknowledged (PUBACK) by
  hand, only after ``on_message`` has taken them, not when the library reads them off
  the socket. The incoming queue is bounded (``queue_bound``); if it is ever full, the
  message is not acknowledged and the connection is re-made, so the broker delivers it
  again. (With the broker's in-flight window far below the bound this never happens.)
- **Reconnect** with capped, jittered exponential backoff; every connection
  re-subscribes (cheap, and right even if the broker lost the session).
- **Publish outcomes are exact.** ``publish`` returns once the broker acknowledged the
  message (PUBACK). It raises ``NotConnected`` when the message was certainly not handed
  to the broker (no connection), and ``DeliveryUncertain`` (a ``ConnectionError``) when
  the connection dropped after the message was written: the broker may have it. Each
  connection is a fresh client, so a message refused while disconnected is never sent
  later behind the caller's back.
- **Pipelined.** ``publish_nowait`` queues the message on the socket at once and returns
  the future of its PUBACK, so a sender never waits one round trip per message: up to
  ``max_inflight`` messages are in flight on the connection; the rest wait here, in order,
  each sent when a PUBACK frees its place. ``publish`` is that future, awaited. Neither
  goes through aiomqtt's ``publish`` (see ``on_publish`` in ``_client_for_session``), and
  paho's own limit is off: paho rescans every message in flight at each PUBACK to find
  one to send (``_update_inflight``), which at 640 in flight was the largest item of the
  PUBACK's cost.
- **TCP_NODELAY** on the socket (see ``_NODELAY``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt_client
import structlog

from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_adapters.mqtt.pahoio import read_buffered, write_soon
from rfq_engine.domain import utc_now
from rfq_engine.domain.errors import Unavailable, WireError

__all__ = ["DeliveryUncertain", "MqttLink", "NotConnected"]

_log = structlog.get_logger(__name__)

_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
"""Why: paho writes each MQTT packet with its own ``send``. With Nagle's algorithm on, a
small packet (a PUBACK, a quote) waits until the previous segment is acknowledged, and
the peer delays that ACK (40 ms on Linux): a QoS 1 round trip then takes ~88 ms on
loopback instead of ~0.5 ms (bench/mqtt_roundtrip.py, docs/performance.md). Neither paho
nor aiomqtt disables Nagle, but aiomqtt applies ``socket_options`` to the socket right
after ``connect()``, before the session starts; ``nodelay()`` reads it back."""

OnMessage = Callable[[aiomqtt.Message, datetime], None]


class NotConnected(Unavailable):
    """The message was not handed to the broker: there is no connection right now."""


class DeliveryUncertain(WireError, ConnectionError):
    """The connection dropped after the message was written; the broker may or may not have it."""


@dataclass(frozen=True, slots=True)
class _Held:
    """A message waiting for a place in flight, and the future of its PUBACK."""

    topic: str
    payload: bytes
    retain: bool
    future: asyncio.Future[None]


class _Overflow(Exception):
    """The incoming queue was full: re-connect so the broker redelivers what we could not take."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiomqtt.MqttError) and cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def _failed(code: Any) -> bool:
    if hasattr(code, "is_failure"):
        return bool(code.is_failure)
    return int(code) >= 0x80


class MqttLink:
    """A connection to one broker that keeps itself up until ``close()``.

    ``on_message(message, received_at)`` runs on the event loop for every message, in
    order; it must not block (it may schedule work). ``on_connect`` runs after every
    (re)connection once the subscriptions are acknowledged, while messages already flow.
    ``will`` builds the will message ``(topic, payload)`` afresh for each connection
    (published retained, QoS 1, if the connection dies without a DISCONNECT).
    """

    def __init__(
        self,
        config: MqttBrokerConfig,
        *,
        username: str,
        password: str | None,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: OnMessage,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        will: Callable[[], tuple[str, bytes]] | None = None,
        name: str = "mqtt",
    ) -> None:
        self._config = config
        self._username = username
        self._password = password
        self._client_id = client_id
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._will = will
        self._name = name
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        """PUBACK futures of the current connection, by message id."""
        self._held: collections.deque[_Held] = collections.deque()
        """Messages waiting for a place in flight (past ``max_inflight``), in order."""
        self._up = asyncio.Event()
        self._ready = asyncio.Event()
        self._state_changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._overflowed = False
        self._last_error = "not connected yet"
        self.connections = 0
        """Successful connections so far (the first one included)."""
        self.refused_subscriptions: tuple[str, ...] = ()
        """Topics the broker refused on the latest connection (its ACL)."""

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """The session is up (publishing works); ``on_connect`` may still be running."""
        return self._up.is_set()

    @property
    def ready(self) -> bool:
        """Connected and ``on_connect`` has finished."""
        return self._ready.is_set()

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def client_id(self) -> str:
        return self._client_id

    def nodelay(self) -> bool | None:
        """Whether the current socket has TCP_NODELAY set; None when not connected."""
        client = self._client
        sock = None if client is None else client._client.socket()  # paho's socket (no public accessor)
        if not isinstance(sock, socket.socket):
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def wait_state_change(self) -> None:
        """Return at the next change of ``ready`` (a connection became ready or went away)."""
        await self._state_changed.wait()

    def _set_ready(self, ready: bool) -> None:
        if ready == self._ready.is_set():
            return
        if ready:
            self._ready.set()
        else:
            self._ready.clear()
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """True once connected and ``on_connect`` has run; False if ``timeout`` passes first."""
        if self._ready.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait: bool = True) -> bool:
        """Start connecting in the background; with ``wait``, wait up to ``connect_timeout_s``
        for the first connection to be ready. Returns whether it is (it keeps trying if not)."""
        if self._task is not None:
            raise RuntimeError("MqttLink already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-link")
        if not wait:
            return self.ready
        return await self.wait_ready(2 * self._config.connect_timeout_s)

    async def close(self) -> None:
        """Disconnect cleanly (a DISCONNECT, so no will message) and stop reconnecting."""
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # ------------------------------------------------------------------ publishing

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and return once the broker acknowledged it (see the module doc)."""
        await self.publish_nowait(topic, payload, retain=retain)

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Hand a QoS 1 message to the connection at once and return a future of its PUBACK.

        The message is queued on the connection now (paho writes it on the socket in this
        loop turn, behind the messages queued before it, in order) without waiting for
        anything, so many messages can be in flight (up to ``max_inflight``; paho holds
        the rest, in order). Raises ``NotConnected`` when there is no connection (nothing
        was sent). The future resolves when the broker acknowledged the message, or fails
        with ``DeliveryUncertain`` when the connection is lost first. A caller that does
        not await it must retrieve its exception (``future.exception()`` in a callback)."""
        client, lost, pending = self._client, self._lost, self._pending
        if client is None or lost is None or lost.done() or not self._up.is_set():
            raise NotConnected(f"not connected to the MQTT broker ({self._last_error})")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(pending) >= self._config.max_inflight or self._held:
            self._held.append(_Held(topic, payload, retain, future))
            return future
        info = client._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt_client.MQTT_ERR_SUCCESS:  # paho refused it (no socket): it never left
            raise NotConnected(f"not connected to the MQTT broker ({mqtt_client.error_string(info.rc)})")
        pending[info.mid] = future
        return future

    def _send_held(self, paho: mqtt_client.Client) -> None:
        """Send held messages while there is room in flight (after a PUBACK)."""
        pending, held, limit = self._pending, self._held, self._config.max_inflight
        while held and len(pending) < limit:
            item = held.popleft()
            info = paho.publish(item.topic, item.payload, qos=1, retain=item.retain)
            if info.rc != mqtt_client.MQTT_ERR_SUCCESS:  # the socket is gone: the session ends
                held.appendleft(item)
                return
            pending[info.mid] = item.future

    @property
    def in_flight(self) -> int:
        """Messages published on this connection that the broker has not acknowledged yet."""
        return len(self._pending) + len(self._held)

    # ------------------------------------------------------------------ internals

    async def _run(self) -> None:
        initial = self._config.reconnect_initial_ms / 1000
        cap = self._config.reconnect_max_ms / 1000
        delay = initial
        while not self._closing.is_set():
            before = self.connections
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of one connection leads to a retry
                self._last_error = _describe(exc)
                event = "mqtt.connection_lost" if self.connections > before else "mqtt.connect_failed"
                _log.warning(event, link=self._name, host=self._config.host, port=self._config.port,
                             error=self._last_error)
            if self._closing.is_set():
                return
            if self.connections > before:
                delay = initial
            pause = random.uniform(delay / 2, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._closing.wait()
            delay = min(delay * 2, cap)

    def _client_for_session(self) -> aiomqtt.Client:
        config = self._config
        will = None
        if self._will is not None:
            topic, payload = self._will()
            will = aiomqtt.Will(topic, payload, qos=1, retain=True)
        tls_params = None
        tls_insecure = None
        if config.tls is not None:
            tls = config.tls
            tls_params = aiomqtt.TLSParameters(
                ca_certs=None if tls.ca_file is None else str(tls.ca_file),
                certfile=None if tls.cert_file is None else str(tls.cert_file),
                keyfile=None if tls.key_file is None else str(tls.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
            )
            tls_insecure = not tls.verify_hostname
        link = self

        class _BoundedQueue(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                try:
                    super().put_nowait(item)
                except asyncio.QueueFull:
                    link._overflowed = True  # not acknowledged: redelivered after the reconnect
                    raise

        client = aiomqtt.Client(
            config.host,
            config.port,
            username=self._username,
            password=self._password,
            identifier=self._client_id,
            clean_session=False,
            keepalive=config.keepalive_s,
            will=will,
            timeout=config.connect_timeout_s,
            socket_options=(_NODELAY,) if config.tcp_nodelay else (),
            max_queued_incoming_messages=config.queue_bound,
            max_inflight_messages=0,  # no limit in paho: ours is in publish_nowait
            queue_type=_BoundedQueue,
            tls_params=tls_params,
            tls_insecure=tls_insecure,
        )
        paho = client._client  # aiomqtt has no public switch for these paho settings
        paho.manual_ack_set(True)
        paho.connect_timeout = config.connect_timeout_s
        pending = self._pending = {}
        self._held = collections.deque()

        def on_publish(_client: Any, _userdata: Any, mid: int, _code: Any, _properties: Any) -> None:
            # publishes go through publish_nowait, not aiomqtt's publish (a task, a timeout and
            # a linear scan of every pending call per message, and a warning per message past
            # ten in flight): the PUBACK resolves our own future (on the loop's thread)
            future = pending.pop(mid, None)
            if future is not None and not future.done():
                future.set_result(None)
            if self._held:
                self._send_held(paho)

        paho.on_publish = on_publish
        write_soon(client, asyncio.get_running_loop())
        read_buffered(client, asyncio.get_running_loop())
        return client

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._overflowed = False
        client = self._client_for_session()
        lost: asyncio.Future[None] = loop.create_future()
        self._lost = lost
        try:
            async with client:
                self._client = client
                consumer = loop.create_task(self._consume(client), name=f"{self._name}-consume")
                try:
                    if self._subscriptions:
                        codes = await client.subscribe([(topic, 1) for topic in self._subscriptions],
                                                       timeout=self._config.connect_timeout_s)
                        self.refused_subscriptions = tuple(
                            t for t, c in zip(self._subscriptions, codes, strict=False) if _failed(c)
                        )
                        if self.refused_subscriptions:
                            _log.error("mqtt.subscription_refused", link=self._name,
                                       topics=list(self.refused_subscriptions))
                    self.connections += 1
                    self._last_error = ""
                    self._up.set()
                    _log.info("mqtt.connected", link=self._name, host=self._config.host,
                              port=self._config.port, client_id=self._client_id,
                              nodelay=self.nodelay(), connections=self.connections)
                    if self._on_connect is not None:
                        await self._on_connect()
                    self._set_ready(True)
                    await consumer
                finally:
                    self._up.clear()
                    self._set_ready(False)
                    if not consumer.done():
                        consumer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await consumer
                    if not lost.done():
                        lost.set_result(None)
        finally:
            # aiomqtt keeps the reason of an unexpected disconnect in a future that only its
            # message iterator reads; read it here too, or asyncio logs "never retrieved"
            gone = client._disconnected
            if gone.done() and not gone.cancelled():
                gone.exception()
            was_up = self.connections > 0 and self._client is not None
            unacknowledged, self._pending = self._pending, {}
            held, self._held = self._held, collections.deque()
            for future in (*unacknowledged.values(), *(item.future for item in held)):
                if not future.done():
                    future.set_exception(DeliveryUncertain(
                        "the connection to the broker was lost before it acknowledged the message"))
            self._up.clear()
            self._set_ready(False)
            self._client = None
            if not lost.done():
                lost.set_result(None)
            if was_up and self._on_disconnect is not None:
                self._on_disconnect()

    async def _consume(self, client: aiomqtt.Client) -> None:
        paho = client._client
        async for message in client.messages:
            try:
                self._on_message(message, utc_now())
            except Exception:  # a handler bug must not stop the connection (the message is acked)
                _log.exception("mqtt.handler_failed", link=self._name, topic=str(message.topic))
            if message.qos > 0:
                paho.ack(message.mid, message.qos)
            if self._overflowed:
                raise _Overflow(f"incoming queue full ({self._config.queue_bound}); reconnecting")
