"""The API of an engine that does not lead: the standby's app, and the leader's middleware
once it is deposed (a real aiohttp server on a local port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.leader import leader_middleware, standby_app
from rfq_engine.store.leader import Candidate, LeaderRecord

LEADER = LeaderRecord(7, "engine-a", "https://a.example:8443",
                      datetime(2026, 12, 2, 18, 0, 0, 123456, tzinfo=UTC))


@pytest.fixture
async def client_of() -> AsyncIterator[object]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(app: web.Application) -> TestClient[web.Request, web.Application]:
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_the_standby_refuses_everything_naming_the_leader(client_of: object) -> None:
    candidate = Candidate("engine-b", "https://b.example:8443")
    candidate.observed(LEADER)
    client = await client_of(standby_app(candidate))  # type: ignore[operator]
    for method, path in (("POST", "/api/v1/rfqs"), ("GET", "/api/v1/rfqs"), ("GET", "/")):
        resp = await client.request(method, path)
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        body = await resp.json()
        assert body["error"] == "not_leader" and body["role"] == "standby"
        assert body["leader"] == {"epoch": 7, "name": "engine-a",
                                  "address": "https://a.example:8443",
                                  "since": "2026-12-02T18:00:00.123456Z"}
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["role"] == "standby"
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["role"] == "standby"


async def test_elected_and_recovering_says_so(client_of: object) -> None:
    candidate = Candidate("engine-b")
    candidate.elected(LeaderRecord(8, "engine-b", None, LEADER.since))
    client = await client_of(standby_app(candidate))  # type: ignore[operator]
    resp = await client.post("/api/v1/rfqs")
    assert resp.status == 503 and (await resp.json())["error"] == "not_ready"


async def test_the_leader_says_its_epoch_then_refuses_once_deposed(client_of: object) -> None:
    candidate = Candidate("engine-a")
    candidate.elected(LEADER)

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    async def rfqs(request: web.Request) -> web.Response:
        return web.json_response({"rfqs": []})

    app = web.Application(middlewares=[leader_middleware(candidate)])
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", readyz)
    app.router.add_get("/api/v1/rfqs", rfqs)
    client = await client_of(app)  # type: ignore[operator]
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"ready": True, "role": "leader", "epoch": 7}
    assert (await client.get("/api/v1/rfqs")).status == 200
    candidate.deposed("fenced: this writer's epoch is 7, the store's is 8")
    refused = await client.get("/api/v1/rfqs")
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    body = await refused.json()
    assert body["role"] == "deposed" and "epoch is 7" in body["reason"]
    assert body["leader"] is None  # it knows only that it no longer leads
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
