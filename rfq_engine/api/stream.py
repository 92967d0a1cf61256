"""``/api/v1/stream``: a WebSocket of every RFQ, quote, award and fill event as it happens.

A healthy reader is never dropped:
- Each client has an outbox, filled by an engine listener that never blocks.
- While the outbox holds fewer than ``[api] stream_queue`` messages, every event is sent as
  it is.
- Past that, the client is behind: each RFQ's pending events are coalesced into one
  ``{"type": "rfq.changed", "rfq_id", "coalesced": n}`` message, which tells the client to
  reload that RFQ (``GET /api/v1/rfqs/{id}``). The outbox then holds at most one message
  per RFQ that changed, plus engine-wide events.
- Full events resume once the client has caught up.
- Only a client that stops reading is disconnected: nothing sent for
  ``[api] stream_stall_s`` while messages wait. It gets close code 1013 with the reason.
  The time counts from the later of the last send and the arrival of the oldest message
  waiting (``Outbox.stalled``), and not across a pause of the server's own process.

Browsers authenticate with ``?token=`` (no headers on WebSocket).

Each event becomes one JSON text, rendered once for every reader: the JSON encoder walks
the payload in C and asks back only for the domain values (Decimal, datetime, date, Enum);
the readers send that same text. A reader's frames of one loop turn leave in one ``send``
(``wsbatch.coalesce_writes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from aiohttp import WSCloseCode, web

from rfq_engine.api.auth import require
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.wsbatch import coalesce_writes
from rfq_engine.domain import decimal_str, format_ts, to_jsonable, utc_now
from rfq_engine.engine import EngineEvent

__all__ = ["QUEUE_KEY", "STALL_KEY", "Outbox", "Rendered", "render", "routes"]

routes = web.RouteTableDef()
QUEUE_KEY: web.AppKey[int] = web.AppKey("stream_queue", int)
STALL_KEY: web.AppKey[float] = web.AppKey("stream_stall_s", float)


class Outbox:
    """One client's pending messages: in order, coalesced per RFQ when the client is behind."""

    def __init__(self, coalesce_at: int) -> None:
        self.coalesce_at = coalesce_at
        self.items: deque[dict[str, Any]] = deque()
        self._coalesced: dict[str, dict[str, Any]] = {}  # rfq_id -> its rfq.changed marker
        self.ready = asyncio.Event()
        self.coalesced_total = 0
        self.waiting_since = 0.0
        """``time.monotonic()`` when the oldest message still waiting was put (the outbox was
        empty before it): a reader is only behind for as long as something waited for it."""

    def __len__(self) -> int:
        return len(self.items)

    def put(self, message: dict[str, Any]) -> None:
        if not self.items:
            self.waiting_since = time.monotonic()
        rfq_id = message.get("rfq_id")
        marker = self._coalesced.get(rfq_id) if rfq_id is not None else None
        if marker is not None:  # already waiting as one "rfq.changed": count it in
            marker["coalesced"] += 1
            self.coalesced_total += 1
        elif rfq_id is not None and len(self.items) >= self.coalesce_at:
            self._coalesce(rfq_id, message)
        else:
            self.items.append(message)
        self.ready.set()

    def _coalesce(self, rfq_id: str, message: dict[str, Any]) -> None:
        kept: deque[dict[str, Any]] = deque()
        dropped = 0
        for item in self.items:
            if item.get("rfq_id") == rfq_id and item.get("type") != "rfq.changed":
                dropped += 1
            else:
                kept.append(item)
        marker = {"type": "rfq.changed", "rfq_id": rfq_id, "at": message.get("at"),
                  "coalesced": dropped + 1,
                  "reason": "this client fell behind: reload the RFQ for its current state"}
        kept.append(marker)
        self.items = kept
        self._coalesced[rfq_id] = marker
        self.coalesced_total += dropped + 1

    def stalled(self, last_sent: float, now: float, stall_s: float) -> bool:
        """Whether the reader stopped reading: messages have waited, with nothing sent, for
        more than ``stall_s``. Counted from the later of the last send and the moment the
        oldest waiting message arrived: a stream quiet for an hour (or an audit store that
        made nothing durable for a minute) followed by a message is not a reader that
        stopped, however long ago its last send was (the 10-minute soak lost every reader
        that way after a 38 s disk stall)."""
        return bool(self.items) and now - max(last_sent, self.waiting_since) > stall_s

    def take(self) -> dict[str, Any] | None:
        if not self.items:
            self.ready.clear()
            return None
        item = self.items.popleft()
        if item.get("type") == "rfq.changed":
            self._coalesced.pop(str(item["rfq_id"]), None)
        return item


class Rendered(dict[str, Any]):
    """A stream message with its JSON text, rendered once and sent as is to every reader."""

    __slots__ = ("text",)

    def __init__(self, message: dict[str, Any], text: str) -> None:
        super().__init__(message)
        self.text = text


def _leaf(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_leaf, separators=(",", ":"), ensure_ascii=False)


def render(message: dict[str, Any]) -> str:
    """``message`` as JSON, domain values as the API renders them (``to_jsonable``)."""
    try:
        return _ENCODER.encode(message)
    except (TypeError, ValueError):  # keys that are not strings: the general path
        return _ENCODER.encode(to_jsonable(message))


_LAST: list[tuple[EngineEvent, Rendered]] = []


def _message(event: EngineEvent) -> Rendered:
    """The stream message of ``event``, built and rendered once for every reader (listeners
    are called one after another with the same event object). Readers never modify it."""
    if _LAST and _LAST[0][0] is event:
        return _LAST[0][1]
    message = {"rfq_id": event.rfq_id, "type": event.type, "actor": event.actor,
               "at": format_ts(utc_now()), "payload": dict(event.payload)}
    rendered = Rendered(message, render(message))
    _LAST[:] = [(event, rendered)]
    return rendered


@routes.get("/api/v1/stream")
@require("stream:read")
async def stream(request: web.Request) -> web.StreamResponse:
    app = request.app[APP_KEY]
    stall_s = request.app.get(STALL_KEY, 30.0)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    coalesce_writes(ws)  # one send per loop turn for the frames of that turn (wsbatch.py)
    outbox = Outbox(request.app[QUEUE_KEY])

    def listen(event: EngineEvent) -> None:
        outbox.put(_message(event))

    last_progress = time.monotonic()

    async def watchdog() -> None:
        """Give up on a client that stopped reading (its sends make no progress): stop
        queueing for it, queue the close frame with the reason behind what it has not read,
        and close the connection once that is flushed."""
        nonlocal last_progress
        interval = min(stall_s / 4, 5.0)
        while not ws.closed:
            asked = time.monotonic()
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - asked > interval + stall_s / 2:
                # This process did not run meanwhile (paused, or its loop blocked): nothing
                # could be sent to anyone, which is not the reader's doing. It gets a fresh
                # stall_s from now.
                last_progress = now
                continue
            if outbox.stalled(last_progress, now, stall_s):
                app.engine.remove_listener(listen)
                outbox.items.clear()
                with contextlib.suppress(TimeoutError, ConnectionError):
                    await asyncio.wait_for(ws.close(
                        code=WSCloseCode.TRY_AGAIN_LATER,
                        message=f"client stopped reading for {stall_s:g} s".encode()), 2.0)
                if request.transport is not None:
                    request.transport.close()  # after the buffered frames, as it reads
                return

    app.engine.add_listener(listen)
    reader = asyncio.ensure_future(ws.receive())  # notices the client going away
    guard = asyncio.ensure_future(watchdog())
    try:
        await ws.send_json({"type": "hello", "halted": app.engine.halted})
        while not ws.closed:
            item = outbox.take()
            if item is None:
                waiter = asyncio.ensure_future(outbox.ready.wait())
                done, _ = await asyncio.wait({waiter, reader, guard},
                                             return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if reader in done or guard in done:
                    break
                continue
            await ws.send_str(item.text if isinstance(item, Rendered) else render(item))
            last_progress = time.monotonic()
    except ConnectionResetError:
        pass
    finally:
        app.engine.remove_listener(listen)
        reader.cancel()
        guard.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
