"""``rfq serve`` as a real process (started by ``tests/serve_kit.py``): it serves, and
SIGTERM ends cleanly with every open RFQ closed by an audit event saying why."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest

from rfq_engine.store import EventFilter, open_store
from tests.api.conftest import TOKENS, USERS, auth, rfq_body
from tests.serve_kit import listening_on, start_serve, users_toml

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path) -> Path:
    users = users_toml(USERS, TOKENS)
    dealers = "".join(
        f'[[dealers]]\nid = "d{i}"\nkind = "simulated"\n[dealers.simulated]\nlatency_ms = 5\n'
        f'seed = {i}\n' for i in (1, 2, 3))
    path = tmp_path / "rfq.toml"
    path.write_text(f"""
[store]
url = "sqlite+aiosqlite:///{tmp_path}/serve.db"
[logging]
json = true
[api]
port = 0
{users}
[market]
spot = {{ BTC = "40000" }}
vol = {{ BTC = "0.5" }}
rate = "0.05"
[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future"]
max_tenor_days = 200
[mandates.treasury.dealers]
d1 = {{ credit_limit = "1e9" }}
d2 = {{ credit_limit = "1e9" }}
d3 = {{ credit_limit = "1e9" }}
{dealers}""")
    return path


async def test_serve_then_sigterm_closes_open_rfqs(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    proc = await start_serve(config)
    try:
        base = await listening_on(proc)
        assert base.startswith("http://"), base
        async with aiohttp.ClientSession(base) as http:
            async with http.get("/readyz") as resp:
                assert resp.status == 200
            async with http.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}") as ws:
                await ws.receive_json(timeout=5)  # hello
                async with http.post("/api/v1/rfqs", json=rfq_body(window_ms=60_000,
                                                                    dealers=["d1", "d2", "d3"]),
                                     headers=auth("alice")) as resp:
                    assert resp.status == 201
                    rfq_id = (await resp.json())["rfq_id"]
                while (await ws.receive_json(timeout=10))["type"] != "rfq.sent":
                    pass  # the RFQ is open at the dealers: now stop the server
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert not any(t in stderr for t in TOKENS.values())  # no secret in logs, ?token= too
        for line in stderr.splitlines():
            json.loads(line)  # JSON lines when not on a terminal
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    store = open_store(f"sqlite+aiosqlite:///{tmp_path}/serve.db", readonly=True)
    await store.open()
    try:
        row = await store.get_rfq(rfq_id)
        assert row is not None and row.state == "cancelled" and row.reason == "engine shutdown"
        cancelled = await store.events(EventFilter(rfq_id=rfq_id, types=["rfq.outcome_sent"]))
        assert cancelled and cancelled[0].payload["outcome"] == "cancelled"
        assert (await store.verify()).ok
    finally:
        await store.close()
