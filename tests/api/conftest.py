from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.api.auth import hash_token
from rfq_engine.config import parse_config
from rfq_engine.wiring import App, open_app

USERS = {"alice": "trader", "bob": "trader", "carol": "approver", "dave": "compliance",
         "erin": "admin"}
TOKENS = {name: f"{name}-secret-token-0123456789" for name in USERS}
DEALERS = ["d1", "d2", "d3"]
EXPIRY = (date.today() + timedelta(days=40)).isoformat()


def config_data(tmp_path: Path, **mandate: Any) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path}/api.db"},
        "engine": {"confirm_timeout_ms": 1000},
        "market": {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.5"}, "rate": "0.05"},
        "mandates": {"treasury": {
            "underlyings": ["BTC"], "instruments": ["future", "option", "spot"],
            "max_tenor_days": 200, "min_quotes": 1, "approval_threshold": "10000000",
            "dealers": {d: {"credit_limit": "100000000"} for d in DEALERS}, **mandate}},
        "dealers": [{"id": d, "kind": "simulated",
                     "simulated": {"latency_ms": 5 + 5 * i, "latency_jitter_ms": 0, "seed": i,
                                   "spread_bps": str(10 + 5 * i)}}
                    for i, d in enumerate(DEALERS)],
        "api": {"users": [{"name": n, "roles": [r], "token_sha256": hash_token(TOKENS[n])}
                          for n, r in USERS.items()]},
    }


def rfq_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": EXPIRY}, "side": "sell"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC", "dealers": DEALERS,
        "mandate": "treasury", "window_ms": 300}
    body.update(overrides)
    return body


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


class Api:
    def __init__(self, app: App, client: TestClient[Any, Any]) -> None:
        self.app = app
        self.client = client

    async def wait_state(self, rfq_id: str, state: str) -> None:
        """Await the RFQ reaching ``state`` through the engine's event stream."""
        from rfq_engine.engine import EngineEvent

        reached = asyncio.Event()

        def listen(event: EngineEvent) -> None:
            if event.rfq_id == rfq_id and event.payload.get("to") == state:
                reached.set()

        self.app.engine.add_listener(listen)
        try:
            run = self.app.engine.live(rfq_id)
            if run is None or run.state.value != state:
                await asyncio.wait_for(reached.wait(), 10)
        finally:
            self.app.engine.remove_listener(listen)

    async def wait_terminal(self, rfq_id: str) -> dict[str, Any]:
        await asyncio.wait_for(self.app.engine.wait(rfq_id), 10)
        await self.app.store.flush()
        resp = await self.client.get(f"/api/v1/rfqs/{rfq_id}", headers=auth("dave"))
        data: dict[str, Any] = await resp.json()
        return data


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    config = parse_config(config_data(tmp_path))
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        yield Api(app, client)
    finally:
        await client.close()
        await app.close()
