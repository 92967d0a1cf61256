"""Pipelined publishing over a real Mosquitto: nothing waits one broker round trip per message.

The broker is paused (SIGSTOP) to hold every PUBACK back, which shows what waits for one:
``send_rfq`` does not (the engine stamps ``rfq.sent`` when the RFQ opens), a publish in
flight fails as *uncertain* when the connection then dies, and the reference desk sends an
answer the broker never acknowledged again, same ``msg_id``, on the next connection.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket

import pytest

from dealer_adapters.mqtt.connection import DeliveryUncertain
from dealer_adapters.mqtt.envelope import (
    build_envelope,
    build_payload,
    encode_envelope,
    encode_message,
    message_body_text,
)
from rfq_engine.domain import Quote
from tests.mqtt.conftest import MakeWorld
from tests.mqtt.kit import READY_TIMEOUT_S, World, bot_events, next_event
from tests.mqtt.test_envelope import NOW, SECRET
from tests.mqtt.test_query import DESK, connected, rfq_new


def test_one_rendering_of_the_envelope_is_its_canonical_json() -> None:
    bodies = [{}, {"rfq_id": "r-1", "bid": "39950.5", "nested": {"z": [1, "ü", None], "a": True}},
              {"type": "not the envelope's", "sig": "nor this", "v": 2, "text": 'quote " \\ \n'}]
    for body in bodies:
        made = build_envelope("quote", body, dealer_id="desk-ä", secret=SECRET, msg_id="m-1", sent_at=NOW)
        msg_id, payload = build_payload("quote", body, dealer_id="desk-ä", secret=SECRET, msg_id="m-1",
                                        sent_at=NOW)
        assert (msg_id, payload) == ("m-1", encode_envelope(made))
    rfq = rfq_new()
    text = message_body_text(rfq)
    _, once = encode_message(rfq, dealer_id="desk-a", secret=SECRET, body_text=text)
    _, again = encode_message(rfq, dealer_id="desk-a", secret=SECRET)
    strip = ("msg_id", "sent_at", "sig")
    assert {k: v for k, v in json.loads(once).items() if k not in strip} == \
        {k: v for k, v in json.loads(again).items() if k not in strip}


def pause(world: World) -> None:
    assert world.broker.process is not None
    world.broker.process.send_signal(signal.SIGSTOP)


def resume(world: World) -> None:
    assert world.broker.process is not None
    world.broker.process.send_signal(signal.SIGCONT)


@pytest.mark.slow
async def test_rfq_new_leaves_without_waiting_for_the_brokers_ack(make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    events = bot_events(await world.bot("desk-a", latency_ms=0))
    adapter, inbox = await connected(world)
    link = adapter.link
    assert link is not None and link.nodelay() is True
    sock = link._client._client.socket() if link._client is not None else None
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    pause(world)
    try:
        rfqs = [rfq_new() for _ in range(20)]
        async with asyncio.timeout(1.0):  # twenty RFQs, no PUBACK can come: none waits for one
            for rfq in rfqs:
                await adapter.send_rfq(DESK, rfq)
        assert link.in_flight == 20
    finally:
        resume(world)
    for _ in rfqs:
        await next_event(events, "received", "rfq.new")
    for rfq in rfqs:
        await inbox.next(Quote, lambda q, rfq=rfq: q.rfq_id == rfq.rfq_id)
    async with asyncio.timeout(READY_TIMEOUT_S):
        while link.in_flight:  # noqa: ASYNC110 - a count with no event to wait on
            await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_publishes_in_flight_are_uncertain_when_the_connection_dies(make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    adapter = await world.adapter(lambda message: None, dealers=("desk-a",))
    link = adapter.link
    assert link is not None and link.ready
    pause(world)
    acks = [link.publish_nowait(world.topics().topic("desk-a", "rfq"), b"{}") for _ in range(50)]
    await asyncio.sleep(0.05)
    assert not any(a.done() for a in acks) and link.in_flight == 50
    await world.broker.kill()  # SIGKILL works on a stopped process: the connection is reset
    results = await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), READY_TIMEOUT_S)
    assert all(isinstance(r, DeliveryUncertain) for r in results), results
    assert link.in_flight == 0


@pytest.mark.slow
async def test_past_max_inflight_messages_wait_in_order_and_leave_as_acks_come(
        make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    topic = world.topics().topic("desk-a", "rfq")
    watcher = await world.raw("desk-a")  # the desk reads its rfq topic
    await watcher.subscribe(topic, qos=1)
    adapter = await world.adapter(lambda message: None, dealers=("desk-a",), max_inflight=3)
    link = adapter.link
    assert link is not None and link.ready
    pause(world)
    acks = [link.publish_nowait(topic, b'{"n": %d}' % n) for n in range(40)]
    await asyncio.sleep(0.05)
    assert link.in_flight == 40 and len(link._pending) == 3  # three on the wire, 37 held here
    resume(world)
    await asyncio.wait_for(asyncio.gather(*acks), READY_TIMEOUT_S)
    assert link.in_flight == 0
    seen = []
    async with asyncio.timeout(READY_TIMEOUT_S):
        async for message in watcher.messages:
            seen.append(json.loads(bytes(message.payload))["n"])  # type: ignore[arg-type]
            if len(seen) == 40:
                break
    assert seen == list(range(40))  # every one, once, in order


@pytest.mark.slow
async def test_held_messages_are_uncertain_too_when_the_connection_dies(make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    adapter = await world.adapter(lambda message: None, dealers=("desk-a",), max_inflight=2)
    link = adapter.link
    assert link is not None and link.ready
    pause(world)
    acks = [link.publish_nowait(world.topics().topic("desk-a", "rfq"), b"{}") for _ in range(10)]
    await world.broker.kill()
    results = await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), READY_TIMEOUT_S)
    assert all(isinstance(r, DeliveryUncertain) for r in results), results
    assert link.in_flight == 0


@pytest.mark.slow
async def test_the_desk_sends_an_unacknowledged_answer_again_on_the_next_connection(
        make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    bot = await world.bot("desk-a", latency_ms=300)
    events = bot_events(bot)
    adapter, inbox = await connected(world)
    # a snapshot with both sessions in it: the broker then comes back knowing the engine's
    # subscription, and queues the quote for it even before the engine is back
    await world.broker.saved(b"rfq-engine")
    rfq = rfq_new()
    await adapter.send_rfq(DESK, rfq)
    await next_event(events, "received", "rfq.new")
    pause(world)  # the quote goes out in 0.3 s, and its PUBACK cannot come
    assert bot.link is not None
    async with asyncio.timeout(READY_TIMEOUT_S):
        while bot.link.in_flight == 0:  # noqa: ASYNC110 - a count with no event to wait on
            await asyncio.sleep(0.01)
    await world.broker.kill()
    await world.broker.start()
    published = await next_event(events, "published", "quote")
    quote = await inbox.next(Quote, lambda q: q.rfq_id == rfq.rfq_id)
    assert quote.msg_id == published.msg_id


def test_waiting_packets_are_joined_into_one_write_unless_one_needs_its_own() -> None:
    from collections import deque
    from types import SimpleNamespace

    import paho.mqtt.client as mqtt_client

    from dealer_adapters.mqtt.pahoio import coalesce

    def packet(command: int, data: bytes, qos: int = 1, pos: int = 0) -> dict[str, object]:
        return {"command": command, "mid": 1, "qos": qos, "pos": pos, "to_process": len(data) - pos,
                "packet": data, "info": None}

    paho = SimpleNamespace(_out_packet=deque([packet(mqtt_client.PUBLISH | 2, b"p1"),
                                              packet(mqtt_client.PUBACK, b"a1"),
                                              packet(mqtt_client.PUBLISH | 2, b"p2")]))
    coalesce(paho)  # type: ignore[arg-type]
    assert [(p["packet"], p["to_process"], p["pos"]) for p in paho._out_packet] == [(b"p1a1p2", 6, 0)]
    for odd in (packet(mqtt_client.PUBLISH, b"q0", qos=0), packet(mqtt_client.DISCONNECT, b"d"),
                packet(mqtt_client.PUBACK, b"half", pos=2)):
        paho._out_packet = deque([packet(mqtt_client.PUBACK, b"a1"), odd])
        coalesce(paho)  # type: ignore[arg-type]
        assert len(paho._out_packet) == 2  # left to paho, one by one
