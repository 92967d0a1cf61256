"""The REST API: auth matrix, idempotency, validation (never a 500), cancel/approve, audit,
kill switch, live stream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import DEALERS, USERS, Api, auth, rfq_body

ROLE_OF = USERS
ALL = set(USERS)
TRADERS = {"alice", "bob", "erin"}           # trader role + admin
APPROVERS = {"carol", "erin"}
COMPLIANCE = {"dave", "erin"}


async def create(api: Api, user: str = "alice", **overrides: Any) -> dict[str, Any]:
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(**overrides), headers=auth(user))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/api/v1/rfqs", ALL),
    ("GET", "/api/v1/rfqs/{id}", ALL),
    ("GET", "/api/v1/audit/events", COMPLIANCE),
    ("GET", "/api/v1/audit/verify", COMPLIANCE),
    ("GET", "/api/v1/audit/export?format=jsonl", COMPLIANCE),
    ("GET", "/api/v1/dealers", ALL),
    ("GET", "/api/v1/mandates", ALL),
    ("GET", "/api/v1/admin/halt", ALL),
    ("POST", "/api/v1/rfqs", TRADERS),
    ("POST", "/api/v1/rfqs/{id}/cancel", {"alice", "erin"}),  # the owner (alice) or an admin
    ("POST", "/api/v1/rfqs/{id}/approve", APPROVERS),
    ("POST", "/api/v1/rfqs/{id}/refuse", APPROVERS),
    ("POST", "/api/v1/admin/resume", {"erin"}),
    ("POST", "/api/v1/hedge/scenario", ALL),
])
async def test_auth_matrix(api: Api, method: str, path: str, allowed: set[str]) -> None:
    rfq = await create(api)
    await api.wait_terminal(rfq["rfq_id"])
    url = path.replace("{id}", rfq["rfq_id"])
    body: dict[str, Any] = rfq_body() if url == "/api/v1/rfqs" and method == "POST" else {"reason": "x"}
    if url == "/api/v1/hedge/scenario":
        body = {"strategy": "future", "spot": "40000", "prices": ["30000"]}
    if url.endswith(("/approve", "/resume")):
        body = {}  # these take no fields: a "reason" would be a 422 (unknown field)
    resp = await api.client.request(method, url, json=body if method == "POST" else None)
    assert resp.status == 401 and "unauthorized" in await resp.text()
    resp = await api.client.request(method, url, json=body if method == "POST" else None,
                                    headers={"Authorization": "Bearer wrong-token-000000000"})
    assert resp.status == 401
    for user in USERS:
        resp = await api.client.request(method, url, json=body if method == "POST" else None,
                                        headers=auth(user))
        if user in allowed:
            # allowed to try: the RFQ is already filled, so state errors (409) are fine
            assert resp.status in (200, 201, 202, 409), (user, resp.status, await resp.text())
        else:
            assert resp.status == 403, (user, resp.status, await resp.text())
            reason = (await resp.json())["reason"]
            assert "needs one of" in reason or "only their own" in reason


async def test_kill_switch_is_admin_only_and_blocks_new_rfqs(api: Api) -> None:
    for user in ("alice", "carol", "dave"):
        resp = await api.client.post("/api/v1/admin/halt", json={"reason": "x"}, headers=auth(user))
        assert resp.status == 403
    slow = await create(api, window_ms=5000)
    resp = await api.client.post("/api/v1/admin/halt", json={"reason": "venue outage"},
                                 headers=auth("erin"))
    assert resp.status == 200 and (await resp.json())["cancelled"] == [slow["rfq_id"]]
    assert (await api.wait_terminal(slow["rfq_id"]))["state"] == "cancelled"
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(), headers=auth("alice"))
    assert resp.status == 503 and "venue outage" in (await resp.json())["reason"]
    assert (await api.client.post("/api/v1/admin/resume", headers=auth("erin"))).status == 200
    await create(api)
    events = await (await api.client.get("/api/v1/audit/events?type=engine.kill_switch",
                                         headers=auth("dave"))).json()
    assert [(e["actor"], e["payload"]["halted"]) for e in events["events"]] == [
        ("erin", True), ("erin", False)]


async def test_create_fills_and_the_record_is_complete(api: Api) -> None:
    rfq = await create(api)
    assert rfq["requester"] == "alice" and rfq["state"] in ("created", "open")
    done = await api.wait_terminal(rfq["rfq_id"])
    assert done["state"] == "filled" and done["filled_quantity"] == "10"
    assert len(done["quotes"]) == 3 and len(done["fills"]) == 1
    assert done["decision"]["ranking"][0]["dealer_id"] == done["fills"][0]["dealer_id"]
    assert isinstance(done["fills"][0]["price"], str)


async def test_idempotency_key_returns_the_same_rfq(api: Api) -> None:
    headers = {**auth("alice"), "Idempotency-Key": "hedge-dec-1"}
    first = await api.client.post("/api/v1/rfqs", json=rfq_body(), headers=headers)
    again = await api.client.post("/api/v1/rfqs", json=rfq_body(), headers=headers)
    assert first.status == 201 and again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["rfq_id"] == (await again.json())["rfq_id"]
    other = await api.client.post("/api/v1/rfqs", json=rfq_body(quantity="11"), headers=headers)
    assert other.status == 409 and (await other.json())["field"] == "Idempotency-Key"
    bob = await api.client.post("/api/v1/rfqs", json=rfq_body(),
                                headers={**auth("bob"), "Idempotency-Key": "hedge-dec-1"})
    assert bob.status == 201  # keys are per requester
    listed = await (await api.client.get("/api/v1/rfqs", headers=auth("dave"))).json()
    assert len(listed["rfqs"]) == 2


@pytest.mark.parametrize(("body", "status", "field"), [
    ("not json", 400, None),
    ([1, 2], 400, None),
    (rfq_body(quantity=10.5), 422, "quantity"),
    (rfq_body(quantity="-3"), 422, "quantity"),
    (rfq_body(legs=[]), 422, "legs"),
    (rfq_body(dealers=["d1", "ghost"]), 422, "dealers"),
    (rfq_body(mandate="other"), 422, "mandate"),
    (rfq_body(direction="hold"), 422, "direction"),
    (rfq_body(requester="bob"), 403, "requester"),
    ({k: v for k, v in rfq_body().items() if k != "legs"}, 422, "legs"),
])
async def test_validation_errors_name_the_field(api: Api, body: Any, status: int,
                                                field: str | None) -> None:
    if isinstance(body, str):
        resp = await api.client.post("/api/v1/rfqs", data=body, headers=auth("alice"))
    else:
        resp = await api.client.post("/api/v1/rfqs", json=body, headers=auth("alice"))
    assert resp.status == status, await resp.text()
    data = await resp.json()
    assert data.get("field") == field
    listed = await (await api.client.get("/api/v1/rfqs", headers=auth("dave"))).json()
    assert listed["rfqs"] == []  # nothing half-created


async def test_cancel_own_only_and_approval_by_someone_else(api: Api) -> None:
    slow = await create(api, window_ms=5000)
    resp = await api.client.post(f"/api/v1/rfqs/{slow['rfq_id']}/cancel", headers=auth("bob"))
    assert resp.status == 403
    resp = await api.client.post(f"/api/v1/rfqs/{slow['rfq_id']}/cancel", json={"reason": "oops"},
                                 headers=auth("alice"))
    assert resp.status == 202
    assert (await api.wait_terminal(slow["rfq_id"]))["state"] == "cancelled"
    big = await create(api, quantity="500")  # 20M notional > 10M approval threshold
    await api.wait_state(big["rfq_id"], "pending_approval")
    resp = await api.client.post(f"/api/v1/rfqs/{big['rfq_id']}/approve", headers=auth("erin"),
                                 json={})
    assert resp.status == 202  # erin (admin) is not the requester
    assert (await api.wait_terminal(big["rfq_id"]))["state"] == "filled"
    own = await create(api, user="erin", quantity="500")
    await api.wait_state(own["rfq_id"], "pending_approval")
    resp = await api.client.post(f"/api/v1/rfqs/{own['rfq_id']}/approve", headers=auth("erin"))
    assert resp.status == 403 and "other than its requester" in (await resp.json())["reason"]
    resp = await api.client.post(f"/api/v1/rfqs/{own['rfq_id']}/refuse", headers=auth("carol"),
                                 json={"reason": "too big"})
    assert resp.status == 202
    assert (await api.wait_terminal(own["rfq_id"]))["state"] == "rejected"


async def test_audit_query_verify_and_export(api: Api) -> None:
    rfq = await create(api)
    await api.wait_terminal(rfq["rfq_id"])
    h = auth("dave")
    events = (await (await api.client.get(f"/api/v1/audit/events?rfq_id={rfq['rfq_id']}",
                                          headers=h)).json())["events"]
    assert events[0]["type"] == "rfq.submitted" and events[0]["actor"] == "alice"
    fills = (await (await api.client.get("/api/v1/audit/events?type=fill.recorded",
                                         headers=h)).json())["events"]
    assert len(fills) == 1
    bad = await api.client.get("/api/v1/audit/events?since=yesterday", headers=h)
    assert bad.status == 422 and (await bad.json())["field"] == "since"
    report = await (await api.client.get("/api/v1/audit/verify", headers=h)).json()
    assert report["ok"] is True and report["events"] >= len(events)
    jsonl = await (await api.client.get("/api/v1/audit/export?format=jsonl", headers=h)).text()
    csv_text = await (await api.client.get("/api/v1/audit/export?format=csv", headers=h)).text()
    assert len(jsonl.strip().splitlines()) == report["events"]
    assert len(csv_text.strip().splitlines()) == report["events"] + 1


async def test_dealers_scorecards_mandates_health_metrics(api: Api) -> None:
    rfq = await create(api)
    await api.wait_terminal(rfq["rfq_id"])
    dealers = (await (await api.client.get("/api/v1/dealers", headers=auth("bob"))).json())["dealers"]
    assert [d["dealer_id"] for d in dealers] == DEALERS and all(d["online"] for d in dealers)
    card = dealers[0]["scorecard"]
    assert card["asked"] == 1 and card["response_rate"] == "1"
    assert sum(d["scorecard"]["wins"] for d in dealers) == 1
    mandates = await (await api.client.get("/api/v1/mandates", headers=auth("bob"))).json()
    assert mandates["mandates"]["treasury"]["min_quotes"] == 1
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert ready.status == 200 and await ready.json() == {"ready": True}
    ready = await api.client.get("/api/v1/readiness", headers=auth("dave"))
    assert ready.status == 200 and (await ready.json())["checks"]["dealers_online"] == 3
    metrics = await (await api.client.get("/metrics", headers=auth("dave"))).text()
    assert 'rfq_outcomes_total{state="filled"} 1.0' in metrics
    assert "rfq_quote_response_seconds_count" in metrics and "rfq_audit_queue_depth" in metrics


async def test_me_names_the_caller_and_what_the_roles_allow(api: Api) -> None:
    assert (await api.client.get("/api/v1/me")).status == 401
    for user, role in ROLE_OF.items():
        me = await (await api.client.get("/api/v1/me", headers=auth(user))).json()
        assert me["name"] == user and me["roles"] == [role]
        assert ("rfq:create" in me["may"]) == (user in TRADERS)
        assert ("rfq:approve" in me["may"]) == (user in APPROVERS)
        assert ("audit:read" in me["may"]) == (user in COMPLIANCE)
        assert ("admin:halt" in me["may"]) == (user == "erin")


async def test_live_stream_over_websocket(api: Api) -> None:
    bad = await api.client.get("/api/v1/stream?token=nope")
    assert bad.status == 401
    ws = await api.client.ws_connect(f"/api/v1/stream?token={auth('bob')['Authorization'][7:]}")
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    rfq = await create(api)
    seen: list[str] = []
    while "fill.recorded" not in seen:
        message = await ws.receive_json(timeout=5)
        assert message["rfq_id"] == rfq["rfq_id"]
        seen.append(message["type"])
    await ws.close()
    assert seen.index("quote.received") < seen.index("award.decided") < seen.index("fill.recorded")
