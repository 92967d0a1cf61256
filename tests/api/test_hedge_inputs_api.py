"""POST /api/v1/hedge/collateral and /production (operator inputs): roles, strict bodies, the
Idempotency-Key, the audit event written and the chain verifying, the risk monitor using the
posted figure and saying so; and the hostile sweep's corpus on both operations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.store import EventFilter
from tests.api.conftest import TOKENS, Api, auth, config_data
from tests.api.test_hostile_sweep import RAW_BODIES, Sweep, encode, mutations
from tests.hedging.kit import FORECAST, serve_api
from tests.hedging.test_cli_hedge import rfq
from tests.hedging.test_programs_api import PROGRAMS

MONTHLY = PROGRAMS["monthly"]

COLLATERAL = {"dealer": "d1", "amounts": {"USD": "80000", "BTC": "0.5"}, "note": "wire 88412"}
PRODUCTION = {"program": "monthly", "period": "2026-11", "quantity": "31.2", "note": "pool statement"}


@pytest.fixture
async def inputs_api(tmp_path: Path) -> AsyncIterator[Api]:
    data: dict[str, Any] = {**config_data(tmp_path), "forecast": FORECAST, "programs": {"monthly": MONTHLY},
                            "collateral": {"d1": {
                                "initial_margin": {"USD": "0.35", "BTC": "0.18"}, "minimum_transfer": "5000",
                                "eligible": {"USD": "0", "BTC": "0.2"}, "posted": {"USD": "63000"}}}}
    async with serve_api(data) as api:
        yield api


async def _events(api: Api, type_: str) -> list[Any]:
    await api.app.store.flush()
    return await api.app.store.events(EventFilter(types=[type_]))


async def test_a_trader_posts_collateral_audited_and_the_risk_monitor_uses_it(inputs_api: Api) -> None:
    api = inputs_api
    before = await (await api.client.get("/api/v1/hedge/risk", headers=auth("alice"))).json()
    (desk,) = before["risk"]["desks"]
    assert (desk["posted_value_usd"], desk["collateral_source"]) == ("63000", "config")
    resp = await api.client.post("/api/v1/hedge/collateral", headers=auth("alice"), json=COLLATERAL)
    assert resp.status == 201, await resp.text()
    event = await resp.json()
    assert (event["type"], event["actor"], event["rfq_id"]) == ("collateral.posted", "alice", None)
    assert event["payload"] == {"dealer": "d1", "account": "desk", "amounts": {"BTC": "0.5", "USD": "80000"},
                                "posted_by": "alice", "note": "wire 88412"}
    (stored,) = await _events(api, "collateral.posted")
    assert stored.seq == event["seq"] and stored.hash == event["hash"]
    # the route's report is evaluated again once an input is posted, however fresh it was
    after = await (await api.client.get("/api/v1/hedge/risk", headers=auth("dave"))).json()
    (desk,) = after["risk"]["desks"]
    # 80,000 USD + 0.5 BTC at 40,000 less a 20% haircut (16,000) = 96,000 after haircuts
    assert (desk["posted_value_usd"], desk["collateral_source"]) == ("96000", "posted")
    assert desk["posted_by"] == "alice"
    verify = await (await api.client.get("/api/v1/audit/verify", headers=auth("erin"))).json()
    assert verify["ok"] is True and verify["head_seq"] >= event["seq"]


async def test_production_is_recorded_and_only_traders_and_admins_may_write(inputs_api: Api) -> None:
    api = inputs_api
    for user in ("carol", "dave"):  # approver, compliance
        for path, body in (("collateral", COLLATERAL), ("production", PRODUCTION)):
            resp = await api.client.post(f"/api/v1/hedge/{path}", headers=auth(user), json=body)
            assert resp.status == 403 and "hedge:write" in (await resp.json())["reason"]
    resp = await api.client.post("/api/v1/hedge/production", headers=auth("erin"), json=PRODUCTION)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["payload"] == {"program": "monthly", "period": "2026-11", "quantity": "31.2",
                                              "unit": "BTC", "recorded_by": "erin", "note": "pool statement"}
    assert await _events(api, "collateral.posted") == []
    assert len(await _events(api, "production.realized")) == 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("collateral", {**COLLATERAL, "posted": "1"}, "posted"),
    ("collateral", {**COLLATERAL, "dealer": "d9"}, "dealer"),
    ("collateral", {**COLLATERAL, "amounts": {"USD": 80000.5}}, "amounts.USD"),
    ("collateral", {**COLLATERAL, "amounts": {"ETH": "1"}}, "amounts.ETH"),
    ("collateral", {**COLLATERAL, "amounts": {"USD": "1e31"}}, "amounts.USD"),
    ("collateral", {**COLLATERAL, "amounts": {"USD": "-1"}}, "amounts.USD"),
    ("collateral", {**COLLATERAL, "amounts": []}, "amounts"),
    ("collateral", {**COLLATERAL, "note": "x" * 1001}, "note"),
    ("production", {**PRODUCTION, "period": "2026-13"}, "period"),
    ("production", {**PRODUCTION, "program": "weekly"}, "program"),
    ("production", {**PRODUCTION, "quantity": "9" * 40}, "quantity"),
    ("production", {k: v for k, v in PRODUCTION.items() if k != "quantity"}, "quantity"),
])
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
        inputs_api: Api, path: str, body: dict[str, Any], field: str) -> None:
    resp = await inputs_api.client.post(f"/api/v1/hedge/{path}", headers=auth("alice"), json=body)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["field"] == field
    assert await _events(inputs_api, "collateral.posted") == []
    assert await _events(inputs_api, "production.realized") == []


async def test_an_idempotency_key_replays_the_event_and_refuses_another_body(inputs_api: Api) -> None:
    api = inputs_api
    headers = {**auth("alice"), "Idempotency-Key": "nov-close"}
    first = await api.client.post("/api/v1/hedge/production", headers=headers, json=PRODUCTION)
    again = await api.client.post("/api/v1/hedge/production", headers=headers, json=PRODUCTION)
    assert (first.status, again.status) == (201, 200) and again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["seq"] == (await again.json())["seq"]
    other = await api.client.post("/api/v1/hedge/production", headers=headers,
                                  json={**PRODUCTION, "quantity": "30"})
    assert other.status == 409 and (await other.json())["field"] == "Idempotency-Key"
    bob = await api.client.post("/api/v1/hedge/production",
                                headers={**auth("bob"), "Idempotency-Key": "nov-close"},
                                json={**PRODUCTION, "quantity": "30"})  # keys are per user
    assert bob.status == 201
    assert [e.payload["quantity"] for e in await _events(api, "production.realized")] == ["31.2", "30"]


async def test_the_hostile_corpus_on_both_operations(inputs_api: Api) -> None:
    api = inputs_api
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    sweep = Sweep(api)
    for path, sample in (("/api/v1/hedge/collateral", COLLATERAL), ("/api/v1/hedge/production", PRODUCTION)):
        schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        first = await sweep.send(f"{path}: the sample", "POST", path, body=encode(sample),
                                 headers=auth("erin"))
        assert first == 201
        for what, body in mutations(doc, schema, sample):
            await sweep.send(f"{path}: {what}", "POST", path, body=encode(body), headers=auth("erin"))
        for what, raw in RAW_BODIES:
            await sweep.send(f"{path}: body {what}", "POST", path, body=raw, headers=auth("erin"))
        for value in ("", " ", "k" * 201, "%ff"):
            await sweep.send(f"{path}: Idempotency-Key {value[:10]!r}", "POST", path, body=encode(sample),
                             headers={**auth("erin"), "Idempotency-Key": value})
        await sweep.send(f"{path}: no token", "POST", path, body=encode(sample), authed=False)
    await api.app.store.flush()
    assert (await api.app.store.verify()).ok
    assert not sweep.failures, "\n".join(sweep.failures[:40])
    assert sweep.count > 150 and set(sweep.statuses) <= {200, 201, 400, 401, 409, 413, 422}


async def test_the_cli_posts_through_a_running_server(inputs_api: Api, tmp_path: Path) -> None:
    api = inputs_api
    base = f"http://127.0.0.1:{api.client.server.port}"
    post = ["hedge", "collateral", "post", "--api", base, "--dealer", "d1", "--amount", "70000",
            "--currency", "USD", "--note", "wire", "--json"]
    done = await asyncio.to_thread(rfq, post, tmp_path, {"RFQ_API_TOKEN": TOKENS["alice"]})
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    assert (event["type"], event["actor"], event["payload"]["amounts"]) == ("collateral.posted", "alice",
                                                                          {"USD": "70000"})
    refused = await asyncio.to_thread(rfq, post, tmp_path, {"RFQ_API_TOKEN": TOKENS["carol"]})
    assert refused.returncode == 1 and "403" in refused.stderr and "hedge:write" in refused.stderr
    record = ["hedge", "production", "record", "--api", base, "--program", "monthly", "--period", "2026-13",
              "--quantity", "1"]
    bad = await asyncio.to_thread(rfq, record, tmp_path, {"RFQ_API_TOKEN": TOKENS["alice"]})
    assert bad.returncode == 1 and "422" in bad.stderr
    assert json.loads(bad.stderr.split(": ", 2)[2])["field"] == "period"
    assert [e.seq for e in await _events(api, "collateral.posted")] == [event["seq"]]
