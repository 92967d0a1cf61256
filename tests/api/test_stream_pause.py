"""The live stream keeps a healthy reader across a pause of the server itself.

The stall watchdog drops a reader to which nothing could be sent for ``[api]
stream_stall_s`` while messages waited. When the server's own process did not run (a
virtual machine paused, a disk stall that blocked the event loop, here SIGSTOP for three
times ``stream_stall_s``), no reader could be sent anything: that is not the reader's
fault. The 10-minute soak lost all four of its readers (close 1013) this way after a
38 s stall. The reader here reads all along; it must still be connected after the pause
and receive the events of RFQs that ran after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests import serve_kit
from tests.api.conftest import TOKENS, auth, rfq_body
from tests.api.test_serve import write_config

pytestmark = pytest.mark.slow

STALL_S = 1.0


async def test_a_reader_that_reads_survives_a_pause_of_the_server(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("port = 0\n", f"port = 0\nstream_stall_s = {STALL_S}\n"))
    with open(tmp_path / "serve.err", "wb") as err:  # noqa: ASYNC230 - the child writes it
        proc = await serve_kit.start_serve(config, stderr=err)
    try:
        base = await serve_kit.listening_on(proc)
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=30)) as http:
            ws = await http.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}")
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            seen: dict[str, set[str]] = {}
            closed: list[object] = []

            async def read() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = msg.json()
                        if "rfq_id" in data:
                            seen.setdefault(data["rfq_id"], set()).add(data["type"])
                closed.append(ws.close_code)

            reader = asyncio.ensure_future(read())

            async def post() -> str:
                async with http.post("/api/v1/rfqs", json=rfq_body(window_ms=500),
                                     headers=auth("alice")) as resp:
                    assert resp.status == 201, await resp.text()
                    return str((await resp.json())["rfq_id"])

            before = [await post() for _ in range(3)]  # their windows end during the pause
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(STALL_S * 3)  # the pause itself: nothing to await
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            after = await post()

            async def finished(rfq_id: str) -> None:
                while "rfq.state_changed" not in seen.get(rfq_id, ()) or closed:
                    assert not closed, f"the stream was closed: {closed}"
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(asyncio.gather(*(finished(r) for r in [*before, after])), 20)
            await asyncio.sleep(STALL_S * 2)  # past the watchdog's next looks
            assert not closed and not ws.closed, (closed, ws.close_code)
            reader.cancel()
            await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
