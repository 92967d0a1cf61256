"""``/api/v1/stream``: a WebSocket of every RFQ, quote, award and fill event as it happens.

Each client has a bounded queue filled by an engine listener (which never blocks); a
client that falls behind by more than the bound is disconnected (close code 1013) rather
than slowing the engine. Browsers authenticate with ``?token=`` (no headers on WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSCloseCode, web

from rfq_engine.api.auth import require
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.domain import format_ts, to_jsonable, utc_now
from rfq_engine.engine import EngineEvent

__all__ = ["QUEUE_KEY", "routes"]

routes = web.RouteTableDef()
QUEUE_KEY: web.AppKey[int] = web.AppKey("stream_queue", int)
_OVERFLOW = object()


@routes.get("/api/v1/stream")
@require("stream:read")
async def stream(request: web.Request) -> web.StreamResponse:
    app = request.app[APP_KEY]
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=request.app[QUEUE_KEY])

    def listen(event: EngineEvent) -> None:
        message = {"rfq_id": event.rfq_id, "type": event.type, "actor": event.actor,
                   "at": format_ts(utc_now()), "payload": to_jsonable(dict(event.payload))}
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            app.engine.remove_listener(listen)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(_OVERFLOW)

    app.engine.add_listener(listen)
    reader = asyncio.ensure_future(ws.receive())  # notices the client going away
    try:
        await ws.send_json({"type": "hello", "halted": app.engine.halted})
        while not ws.closed:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            item = getter.result()
            if item is _OVERFLOW:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"client too slow")
                break
            await ws.send_json(item)
    finally:
        app.engine.remove_listener(listen)
        reader.cancel()
        await ws.close()
    return ws
