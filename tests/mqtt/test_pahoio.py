"""paho's reads served from one large recv (dealer_adapters.mqtt.pahoio.read_buffered).

paho itself reads the socket (a real paho Client on one end of a socket pair; the other end
writes MQTT PUBLISH packets as a broker would, MQTT 3.1.1 section 3.3): every packet is
delivered, none waits for more bytes once the kernel handed them over, packets split
across reads or larger than one read arrive whole, and a burst costs one system call, not
three or four a packet."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from dealer_adapters.mqtt.pahoio import read_buffered


class CountingSocket(socket.socket):
    reads = 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        CountingSocket.reads += 1
        return super().recv(bufsize, flags)


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH: fixed header, remaining length (variable byte integer), topic, payload."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([0x30]) + bytes(encoded) + body


class _Aiomqtt:  # what read_buffered uses of aiomqtt.Client
    def __init__(self, paho: mqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = paho
        self._disconnected: asyncio.Future[None] = loop.create_future()


class Reader:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        ours, self.broker = socket.socketpair()
        self.sock = CountingSocket(fileno=ours.detach())
        self.sock.setblocking(False)
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.paho._sock = self.sock  # type: ignore[assignment]
        self.paho._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
        self.payloads: list[bytes] = []
        self.arrived = asyncio.Event()
        self.paho.on_message = self._on_message
        self.client = _Aiomqtt(self.paho, loop)
        read_buffered(self.client, loop)  # type: ignore[arg-type]
        self.fd = self.sock.fileno()
        loop.add_reader(self.fd, self.paho.loop_read)  # as aiomqtt's reader does
        CountingSocket.reads = 0

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.payloads.append(message.payload)
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.payloads) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.fd)
        self.sock.close()
        self.broker.close()


@pytest.fixture
async def reader() -> AsyncIterator[Reader]:
    loop = asyncio.get_running_loop()
    made = Reader(loop)
    yield made
    made.close(loop)


async def test_a_burst_is_delivered_whole_from_one_read(reader: Reader) -> None:
    sent = [b"quote %d" % i for i in range(200)]
    reader.broker.sendall(b"".join(publish_packet("rfq/dealers/d/quote", p) for p in sent))
    await reader.wait_for(len(sent))
    assert reader.payloads == sent
    assert CountingSocket.reads <= 3, CountingSocket.reads  # paho alone: about 600 (3 a packet)
    assert not reader.client._disconnected.done()


async def test_a_packet_split_across_reads_and_one_larger_than_a_read(reader: Reader) -> None:
    big = bytes(range(256)) * 400  # 102,400 bytes: more than one 64 KiB read
    first, second = publish_packet("t/a", b"split"), publish_packet("t/b", big)
    reader.broker.sendall(first[:3])
    reader.broker.sendall(first[3:] + second[:70_000])
    await reader.wait_for(1)
    assert reader.payloads == [b"split"]
    reader.broker.sendall(second[70_000:])
    await reader.wait_for(2)
    assert reader.payloads == [b"split", big]


async def test_the_broker_closing_ends_the_read(reader: Reader) -> None:
    reader.broker.sendall(publish_packet("t/a", b"last"))
    await reader.wait_for(1)
    reader.broker.close()
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    reader.paho.on_disconnect = lambda *_: closed.done() or closed.set_result(None)
    async with asyncio.timeout(5):
        await closed
    assert reader.payloads == [b"last"]
