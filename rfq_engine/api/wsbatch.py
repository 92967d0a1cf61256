"""One ``send`` per 2 ms for a WebSocket's frames, not one per frame.

aiohttp writes every frame with its own ``transport.write``, and with the transport's
buffer empty each is a ``send`` system call at once; on loopback a ``send`` also runs the
receiver's side of TCP. The live stream sends one frame per event per reader (about 25
events an RFQ): at 64 RFQs in flight those writes were 13% of ``rfq serve``'s event loop
with a single reader (py-spy). ``coalesce_writes`` puts a thin transport in front of the
real one for a prepared ``WebSocketResponse``: frames written during a turn of the loop
are joined and written together ``FLUSH_AFTER_S`` (2 ms) after the first of them, in order:
under load a turn of the loop is well under a millisecond, and one ``send`` a turn was
still 12% of the loop's time at 64 RFQs in flight over MQTT (py-spy, 2026-12-04). A stream
event reaches its reader at most 2 ms later than it would have. Flow control
is unchanged: at most 64 KiB wait here, so aiohttp's drain still waits when the real
transport's buffer is full and a reader that stopped reading is still noticed; a close
frame, and a close of the transport, write what is buffered at once (aiohttp may close
the real transport straight after its close frame). It reaches into aiohttp's writer
(``WebSocketResponse._writer``, version pinned in constraints.txt); without one it does
nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

__all__ = ["coalesce_writes"]

_FLUSH_AT = 64 * 1024  # aiohttp's own write limit before it drains
FLUSH_AFTER_S = 0.002  # frames written within this are joined into one ``send``
_CLOSE_FRAME = b"\x88"  # FIN and opcode 8 (RFC 6455, 5.2): a write starting a close frame


class _Coalescing:
    """What aiohttp's WebSocket writer uses of a transport, writes joined per loop turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self.flushes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)
        if not self._pending:
            self._loop.call_later(FLUSH_AFTER_S, self.flush)
        self._pending.append(chunk)
        self._size += len(chunk)
        # past _FLUSH_AT the real transport must see the bytes now: its buffer filling is what
        # pauses the protocol, so aiohttp's drain waits and a reader that stopped reading is
        # noticed; and aiohttp may close the real transport right after a close frame
        if self._size > _FLUSH_AT or chunk[:1] == _CLOSE_FRAME:
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        self.flushes += 1
        if not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


def coalesce_writes(ws: web.WebSocketResponse) -> bool:
    """Join the frames ``ws`` writes per loop turn (module doc); whether it could."""
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    if writer is None or not isinstance(transport, asyncio.Transport):
        return False
    writer.transport = _Coalescing(transport, asyncio.get_running_loop())
    return True
