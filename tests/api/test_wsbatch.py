"""A WebSocket's frames written within 2 ms leave in one write (rfq_engine.api.wsbatch), over a
real asyncio transport on a socket pair: in order, all of them; past 64 KiB or at a close
frame at once, so backpressure and closing behave as without it."""

from __future__ import annotations

import asyncio
import socket

from rfq_engine.api.wsbatch import FLUSH_AFTER_S, _Coalescing


async def _pair() -> tuple[_Coalescing, asyncio.Transport, socket.socket]:
    ours, peer = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    assert isinstance(transport, asyncio.WriteTransport)
    peer.setblocking(False)
    return _Coalescing(transport, loop), transport, peer  # type: ignore[arg-type]


async def _read(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(5):
        while len(data) < size:
            data += await loop.sock_recv(peer, size - len(data))
    return data


async def test_the_frames_of_one_turn_are_one_write_in_order() -> None:
    batch, transport, peer = await _pair()
    frames = [b"\x81" + bytes([len(text)]) + text for text in (b"event %d" % n for n in range(100))]
    for frame in frames:
        batch.write(frame)
    assert batch.flushes == 0  # nothing left yet: the write waits for the next turn
    assert await _read(peer, sum(map(len, frames))) == b"".join(frames)
    assert batch.flushes == 1
    transport.close()
    peer.close()


async def test_frames_of_several_turns_within_the_flush_delay_are_one_write() -> None:
    """Under load a loop turn is far shorter than FLUSH_AFTER_S: the frames of many turns
    share one ``send``; the first of them waits at most the delay."""
    batch, transport, peer = await _pair()
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = [b"\x81\x01" + bytes([65 + n]) for n in range(5)]
    for frame in frames:
        batch.write(frame)
        await asyncio.sleep(0)  # another turn of the loop
    assert batch.flushes == 0 or loop.time() - started >= FLUSH_AFTER_S
    assert await _read(peer, 15) == b"".join(frames)
    assert batch.flushes == 1
    assert loop.time() - started < FLUSH_AFTER_S + 0.5
    transport.close()
    peer.close()


async def test_past_64_kib_and_at_a_close_frame_the_bytes_leave_at_once() -> None:
    batch, _transport, peer = await _pair()
    big = b"\x82\x7f" + (70_000).to_bytes(8, "big") + bytes(70_000)
    batch.write(big)
    assert batch.flushes == 1  # the real transport has it: its buffer governs the drain
    batch.write(b"\x81\x02hi")
    batch.write(b"\x88\x02\x03\xe8")  # close, 1000
    assert batch.flushes == 2
    assert await _read(peer, len(big) + 8) == big + b"\x81\x02hi\x88\x02\x03\xe8"
    batch.close()
    peer.close()
