"""The live stream keeps every healthy reader: a reader that falls behind gets its events
coalesced per RFQ (``rfq.changed``) instead of being dropped; only a client that stops
reading is disconnected, with the reason."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.api.stream import Outbox
from rfq_engine.config import parse_config
from rfq_engine.engine import EngineEvent
from rfq_engine.wiring import open_app
from tests.api.conftest import TOKENS, Api, config_data


def _event(rfq_id: str | None, n: int, size: int = 10) -> EngineEvent:
    return EngineEvent(rfq_id, "quote.received", "d1", {"n": n, "pad": "x" * size})


def test_the_outbox_coalesces_per_rfq_once_behind_and_keeps_engine_wide_events() -> None:
    box = Outbox(coalesce_at=3)
    for n in range(3):
        box.put({"rfq_id": "r1", "type": "quote.received", "n": n})
    box.put({"rfq_id": None, "type": "engine.kill_switch"})  # engine-wide: always kept
    for n in range(5):
        box.put({"rfq_id": "r1", "type": "quote.received", "n": 10 + n})
    box.put({"rfq_id": "r2", "type": "rfq.state_changed"})
    taken = [box.take() for _ in range(len(box))]
    assert [(m["type"], m.get("rfq_id")) for m in taken if m] == [
        ("engine.kill_switch", None), ("rfq.changed", "r1"), ("rfq.state_changed", "r2")]
    assert taken[1] and taken[1]["coalesced"] == 8
    assert box.take() is None
    box.put({"rfq_id": "r1", "type": "fill.recorded"})  # caught up: full events again
    assert box.take() == {"rfq_id": "r1", "type": "fill.recorded"}


def test_a_reader_is_behind_only_for_as_long_as_something_waited_for_it() -> None:
    """A stream quiet for far longer than ``stall_s`` (or an audit store that made nothing
    durable for a minute), then a message: the reader has not stopped reading. It has once
    that message waited ``stall_s`` with nothing sent."""
    box = Outbox(coalesce_at=100)
    last_sent = time.monotonic() - 3600  # the last send was an hour ago
    assert not box.stalled(last_sent, time.monotonic(), 30)  # nothing waits
    box.put({"rfq_id": "r1", "type": "quote.received"})
    arrived = box.waiting_since
    assert not box.stalled(last_sent, arrived + 0.01, 30)
    box.put({"rfq_id": "r1", "type": "quote.received"})  # a second one does not reset it
    assert box.waiting_since == arrived
    assert not box.stalled(last_sent, arrived + 29.9, 30)
    assert box.stalled(last_sent, arrived + 30.1, 30)
    assert not box.stalled(arrived + 20, arrived + 30.1, 30)  # a send since: still reading
    while box.take() is not None:
        pass
    assert not box.stalled(last_sent, arrived + 99, 30)


@pytest.fixture
async def small_stream(tmp_path: Path) -> AsyncIterator[Api]:
    data: dict[str, Any] = config_data(tmp_path)
    data["api"]["stream_queue"] = 20
    data["api"]["stream_stall_s"] = 1.0
    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        yield Api(app, client)
    finally:
        await client.close()
        await app.close()


def _emit(api: Api, events: list[EngineEvent]) -> None:
    for event in events:
        for listener in tuple(api.app.engine.services.listeners):
            listener(event)


async def test_a_reader_far_behind_stays_connected_and_gets_coalesced_updates(
        small_stream: Api) -> None:
    api = small_stream
    ws = await api.client.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}")
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    # 100 RFQs x 30 events arrive at once: 150 times the per-client bound
    _emit(api, [_event(f"r{i}", n) for n in range(30) for i in range(100)])
    received: list[dict[str, Any]] = []
    while len({m["rfq_id"] for m in received if m["type"] == "rfq.changed"}
              | {m["rfq_id"] for m in received if m["type"] != "rfq.changed"}) < 100 \
            or not any(m["type"] == "rfq.changed" for m in received):
        received.append(await ws.receive_json(timeout=5))
    assert not ws.closed  # never dropped for being slow
    assert len(received) < 3000 // 10  # coalesced: far fewer messages than events
    _emit(api, [_event("r-late", 1)])  # caught up: the next event comes as itself
    while True:
        message = await ws.receive_json(timeout=5)
        if message["rfq_id"] == "r-late":
            break
    assert message["type"] == "quote.received" and message["payload"]["n"] == 1
    await ws.close()


async def test_a_client_that_stops_reading_is_closed_with_the_reason(small_stream: Api) -> None:
    api = small_stream
    host, port = api.client.host, api.client.port
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /api/v1/stream?token={TOKENS['bob']} HTTP/1.1\r\nHost: {host}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    assert b"101" in await reader.readline()
    head = b""
    while b'"hello"' not in head:  # the hello frame: the server is listening for us now
        head += await asyncio.wait_for(reader.read(4096), 5)
    # never read again: 20 events of 1 MB (the per-client bound) fill the socket buffers and
    # sends stop progressing, with more waiting behind them
    engine = api.app.engine
    given_up = asyncio.Event()
    remove = engine.remove_listener

    def removed(listener: Any) -> None:  # observes the server giving up on this client
        remove(listener)
        given_up.set()

    engine.remove_listener = removed  # type: ignore[method-assign]
    _emit(api, [_event(f"r{n}", n, size=1_000_000) for n in range(40)])
    await asyncio.wait_for(given_up.wait(), 15)  # the client stays silent
    tail = b""
    async with asyncio.timeout(30):
        while chunk := await reader.read(1 << 20):  # what was buffered, then the close frame
            tail = (tail + chunk)[-4096:]
    writer.close()
    assert b"client stopped reading for 1 s" in tail


async def test_the_stream_still_carries_a_whole_rfq(small_stream: Api) -> None:
    ws = await small_stream.client.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}")
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    _emit(small_stream, [_event("r1", n) for n in range(5)])
    got = [await ws.receive_json(timeout=5) for _ in range(5)]
    assert [m["payload"]["n"] for m in got] == [0, 1, 2, 3, 4]
    await ws.close()


def test_a_message_renders_domain_values_as_the_api_does() -> None:
    import json as json_
    from datetime import UTC, date, datetime
    from decimal import Decimal
    from enum import Enum

    from rfq_engine.api.stream import render
    from rfq_engine.domain import to_jsonable

    class Colour(Enum):
        RED = "red"

    message = {"rfq_id": "r1", "type": "quote.received", "payload": {
        "bid": Decimal("40123.450"), "ask": None, "tiny": Decimal("1E-8"),
        "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "day": date(2026, 1, 2),
        "colour": Colour.RED, "legs": ({"ratio": Decimal("2")}, ["x", 1, True]), "name": "désk"}}
    assert json_.loads(render(message)) == to_jsonable(message)
    assert json_.loads(render({"payload": {1: Decimal("1")}})) == {"payload": {"1": "1"}}


async def test_every_reader_gets_the_same_text_rendered_once(small_stream: Api) -> None:
    from decimal import Decimal

    api = small_stream
    readers = [await api.client.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}")
               for _ in range(3)]
    for ws in readers:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
    _emit(api, [EngineEvent("r1", "quote.received", "d1", {"bid": Decimal("1.50"), "n": 1})])
    texts = [await ws.receive_str(timeout=5) for ws in readers]
    assert len(set(texts)) == 1
    assert '"bid":"1.5"' in texts[0] and '"rfq_id":"r1"' in texts[0]
    for ws in readers:
        await ws.close()
