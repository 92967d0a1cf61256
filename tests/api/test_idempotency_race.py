"""``Idempotency-Key`` under concurrency (issue 14): one key, many requests at the same
moment. Exactly one request creates (201); a different body is a 409, never a 201 carrying
another request's RFQ; an identical retry is a replay. The map of decided keys is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.config import parse_config
from rfq_engine.wiring import open_app
from tests.api.conftest import Api, auth, config_data, rfq_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """Holds every ``POST /api/v1/rfqs`` until ``expected`` of them have arrived, then lets
    them all go at once: the requests really are concurrent inside the server."""

    def __init__(self) -> None:
        self.expected = 0
        self.arrived = 0
        self.all_in = asyncio.Event()

    def expect(self, n: int) -> None:
        self.expected, self.arrived = n, 0
        self.all_in.clear()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.expected and request.method == "POST" and request.path == "/api/v1/rfqs":
            self.arrived += 1
            if self.arrived == self.expected:
                self.all_in.set()
            await self.all_in.wait()
        return await handler(request)


class RaceApi(Api):
    gate: Gate

    async def post_at_once(self, bodies: list[dict[str, Any]], key: str,
                           user: str = "alice") -> list[tuple[int, dict[str, str], Any]]:
        self.gate.expect(len(bodies))
        headers = {**auth(user), "Idempotency-Key": key}

        async def one(body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
            resp = await self.client.post("/api/v1/rfqs", json=body, headers=headers)
            return resp.status, dict(resp.headers), await resp.json()

        try:
            return list(await asyncio.gather(*(one(b) for b in bodies)))
        finally:
            self.gate.expect(0)

    async def rfqs_under(self, key: str) -> list[dict[str, Any]]:
        await self.app.store.flush()
        listed = await (await self.client.get("/api/v1/rfqs", headers=auth("dave"))).json()
        return [r for r in listed["rfqs"] if r["client_rfq_id"] == key]

    async def submitted_events(self) -> int:
        await self.app.store.flush()
        events = await (await self.client.get("/api/v1/audit/events?type=rfq.submitted",
                                              headers=auth("dave"))).json()
        return len(events["events"])


async def _race_api(tmp_path: Path, **api_config: Any) -> AsyncIterator[RaceApi]:
    data = config_data(tmp_path)
    data["api"].update(api_config)
    config = parse_config(data)
    app = await open_app(config)
    gate = Gate()
    web_app = create_web_app(app, config.api)
    web_app.middlewares.append(gate.middleware)  # innermost: after auth, before the handler
    client = TestClient(TestServer(web_app))
    await client.start_server()
    race = RaceApi(app, client)
    race.gate = gate
    try:
        yield race
    finally:
        await client.close()
        await app.close()


@pytest.fixture
async def race(tmp_path: Path) -> AsyncIterator[RaceApi]:
    async for api in _race_api(tmp_path):
        yield api


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[RaceApi]:
    async for api in _race_api(tmp_path, idempotency_keys=2, idempotency_ttl_s=60):
        yield api


async def test_different_bodies_under_one_key_exactly_one_wins(race: RaceApi) -> None:
    quantities = ["5", "6", "7", "5"]
    answers = await race.post_at_once([rfq_body(quantity=q, window_ms=5000) for q in quantities],
                                      "hedge-dec-race")
    created = [a for a in answers if a[0] == 201]
    assert len(created) == 1, [(s, b.get("quantity", b)) for s, _, b in answers]
    winner = created[0][2]
    for (status, headers, body), quantity in zip(answers, quantities, strict=True):
        if status in (200, 201):  # an RFQ in the answer is always this request's RFQ
            assert body["rfq_id"] == winner["rfq_id"] and body["quantity"] == quantity
            assert (headers.get("Idempotent-Replayed") == "true") == (status == 200)
        else:
            assert status == 409 and body["field"] == "Idempotency-Key", body
            assert quantity != winner["quantity"]
    assert [r["rfq_id"] for r in await race.rfqs_under("hedge-dec-race")] == [winner["rfq_id"]]
    assert await race.submitted_events() == 1


async def test_identical_concurrent_retries_create_one_rfq_and_replay(race: RaceApi) -> None:
    answers = await race.post_at_once([rfq_body(window_ms=5000)] * 6, "hedge-dec-retry")
    statuses = sorted(s for s, _, _ in answers)
    assert statuses == [200] * 5 + [201], statuses
    assert len({b["rfq_id"] for _, _, b in answers}) == 1
    for status, headers, _ in answers:
        assert (headers.get("Idempotent-Replayed") == "true") == (status == 200)
        assert headers["Location"].endswith(answers[0][2]["rfq_id"])
    assert len(await race.rfqs_under("hedge-dec-retry")) == 1
    assert await race.submitted_events() == 1


async def test_keys_are_per_user_also_concurrently(race: RaceApi) -> None:
    race.gate.expect(2)

    async def post(user: str) -> int:
        resp = await race.client.post("/api/v1/rfqs", json=rfq_body(), headers={
            **auth(user), "Idempotency-Key": "shared-name"})
        return resp.status

    try:
        assert await asyncio.gather(post("alice"), post("bob")) == [201, 201]
    finally:
        race.gate.expect(0)


async def test_a_failed_request_does_not_use_up_its_key(race: RaceApi) -> None:
    headers = {**auth("alice"), "Idempotency-Key": "retry-after-typo"}
    bad = await race.client.post("/api/v1/rfqs", json=rfq_body(mandate="tresury"), headers=headers)
    assert bad.status == 422 and (await bad.json())["field"] == "mandate"
    # a valid request and a failing one, at the same moment: the failure names nothing
    answers = await race.post_at_once([rfq_body(mandate="tresury"), rfq_body()],
                                      "retry-after-typo")
    assert sorted(s for s, _, _ in answers) in ([201, 409], [201, 422])
    good = next(b for s, _, b in answers if s == 201)
    assert good["mandate"] == "treasury"
    assert [r["rfq_id"] for r in await race.rfqs_under("retry-after-typo")] == [good["rfq_id"]]


async def test_the_map_of_decided_keys_is_bounded_and_a_forgotten_key_still_replays(
        small: RaceApi) -> None:
    from rfq_engine.api.rfqs import IDEMPOTENCY_KEY

    keys = small.client.app[IDEMPOTENCY_KEY]  # type: ignore[union-attr]
    ids = {}
    for i in range(5):
        resp = await small.client.post("/api/v1/rfqs", json=rfq_body(), headers={
            **auth("alice"), "Idempotency-Key": f"k{i}"})
        assert resp.status == 201
        ids[f"k{i}"] = (await resp.json())["rfq_id"]
        assert len(keys) <= 2
    # k0 was forgotten by the map; the store still knows it
    again = await small.client.post("/api/v1/rfqs", json=rfq_body(), headers={
        **auth("alice"), "Idempotency-Key": "k0"})
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["rfq_id"] == ids["k0"]
    other = await small.client.post("/api/v1/rfqs", json=rfq_body(quantity="11"), headers={
        **auth("alice"), "Idempotency-Key": "k0"})
    assert other.status == 409
    # and a decided key is forgotten after the TTL
    now = [time.monotonic()]
    keys.clock = lambda: now[0]
    resp = await small.client.post("/api/v1/rfqs", json=rfq_body(), headers={
        **auth("alice"), "Idempotency-Key": "ttl"})
    assert resp.status == 201 and len(keys) >= 1
    now[0] += 61
    answers = await small.post_at_once([rfq_body()] * 2, "ttl")
    assert sorted(s for s, _, _ in answers) == [200, 200]
    assert len(keys) == 1  # only "ttl", decided again from the store
