"""Resolving an unresolved award through the API: a REST desk (tests/rest/fake_desk.py)
executes, loses its reply and answers every lookup 503; the RFQ waits ``unresolved``; an
approver records the decision; concurrent decisions: one wins, the other gets 409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.config import parse_config
from rfq_engine.store import EventFilter
from rfq_engine.wiring import open_app
from tests.api.conftest import Api, auth, config_data, rfq_body
from tests.rest.fake_desk import TOKEN, FakeDesk


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Api, FakeDesk]]:
    monkeypatch.setenv("DESK_R_TOKEN", TOKEN)
    desk = FakeDesk(bid="40500")
    await desk.start()
    desk.lose_order_reply = True
    desk.fail_gets_for(600)
    data: dict[str, Any] = config_data(tmp_path)
    data["engine"] = {"confirm_timeout_ms": 300, "reconcile_timeout_ms": 300,
                      "reconcile_backoff_ms": 50, "reconcile_slow_interval_ms": 200,
                      "lookup_timeout_ms": 500}
    data["mandates"]["treasury"]["dealers"]["desk-r"] = {"credit_limit": "100000000"}
    data["dealers"].append({"id": "desk-r", "kind": "rest", "rest": {
        "base_url": desk.base_url, "auth": {"scheme": "bearer", "token_env": "DESK_R_TOKEN"},
        "state_dir": str(tmp_path / "rest"), "reconcile_interval_ms": 50,
        "reconcile_grace_ms": 200,
        "instruments": {"future": "{underlying}-{expiry_day}{expiry:%b%y}"}}})
    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        yield Api(app, client), desk
    finally:
        await client.close()
        await app.close()
        await desk.stop()


async def _unresolved(api: Api) -> tuple[str, str]:
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(dealers=["desk-r", "d1"]),
                                 headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    rfq_id = (await resp.json())["rfq_id"]
    await api.wait_state(rfq_id, "unresolved")
    await api.app.store.flush()  # the listener hears it as it is queued; the GET reads the store
    resp = await api.client.get(f"/api/v1/rfqs/{rfq_id}", headers=auth("dave"))
    view = await resp.json()
    assert view["state"] == "unresolved"
    [award] = view["awards"]
    assert (award["dealer_id"], award["status"]) == ("desk-r", "unresolved")
    return rfq_id, award["execution_id"]


async def test_an_approver_resolves_an_unresolved_award(world: tuple[Api, FakeDesk]) -> None:
    api, desk = world
    rfq_id, eid = await _unresolved(api)
    url = f"/api/v1/rfqs/{rfq_id}/executions/{eid}/resolve"
    body = {"executed": True, "dealer_trade_id": "R-9", "evidence": "desk-r blotter #7"}
    assert (await api.client.post(url, json=body, headers=auth("alice"))).status == 403  # role
    typo = await api.client.post(url, json={**body, "evidense": "x"}, headers=auth("carol"))
    assert typo.status == 422 and (await typo.json())["field"] == "evidense"
    resp = await api.client.post(url, json=body, headers=auth("carol"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["executed"] is True
    again = await api.client.post(url, json={"executed": False, "evidence": "no"},
                                  headers=auth("erin"))
    assert again.status == 409
    final = await api.wait_terminal(rfq_id)
    assert final["state"] == "filled"
    assert [f["dealer_trade_id"] for f in final["fills"]] == ["R-9"]
    assert len(final["fills"]) == desk.executed_count == 1
    assert [a["dealer_id"] for a in final["awards"]] == ["desk-r"]


async def test_two_concurrent_resolutions_one_wins(world: tuple[Api, FakeDesk]) -> None:
    api, _ = world
    rfq_id, eid = await _unresolved(api)
    url = f"/api/v1/rfqs/{rfq_id}/executions/{eid}/resolve"
    a, b = await asyncio.gather(
        api.client.post(url, json={"executed": False, "evidence": "call A"}, headers=auth("carol")),
        api.client.post(url, json={"executed": True, "dealer_trade_id": "X", "evidence": "call B"},
                        headers=auth("erin")))
    assert sorted([a.status, b.status]) == [200, 409]
    await api.wait_terminal(rfq_id)
    events = await api.app.store.events(EventFilter(rfq_id=rfq_id, types=["execution.resolved"]))
    assert len(events) == 1
