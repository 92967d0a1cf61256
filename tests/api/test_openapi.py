"""The OpenAPI document is served, covers every API route, and live responses match it."""

from __future__ import annotations

from typing import Any

import jsonschema
from referencing import Registry, Resource

from tests.api.conftest import Api, auth, rfq_body


def validator_for(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource("urn:api", Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **doc}))
    rooted = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **{k: v for k, v in schema.items()}}
    text = str(rooted).replace("'#/components", "'urn:api#/components")
    import ast

    return jsonschema.Draft202012Validator(ast.literal_eval(text), registry=registry)


async def check(api: Api, doc: dict[str, Any], method: str, template: str, url: str,
                user: str = "dave", body: Any = None, headers: dict[str, str] | None = None) -> Any:
    resp = await api.client.request(method, url, json=body, headers={**auth(user), **(headers or {})})
    status = str(resp.status)
    spec = doc["paths"][template][method.lower()]["responses"]
    assert status in spec, f"{method} {template} answered {status}, not documented"
    content = spec[status].get("content", {}).get("application/json")
    data = await resp.json()
    if content is not None:
        validator_for(doc, content["schema"]).validate(data)
    return data


async def test_openapi_matches_live_responses(api: Api) -> None:
    resp = await api.client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    routes = {(r.method, r.resource.canonical) for r in api.client.app.router.routes()  # type: ignore[union-attr]
              if r.resource is not None and r.resource.canonical.startswith("/api/v1/")
              and r.method != "HEAD"}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes - {("GET", "/api/v1/openapi.json")} == documented

    created = await check(api, doc, "POST", "/api/v1/rfqs", "/api/v1/rfqs", "alice",
                          rfq_body(), {"Idempotency-Key": "k1"})
    await check(api, doc, "POST", "/api/v1/rfqs", "/api/v1/rfqs", "alice", rfq_body(),
                {"Idempotency-Key": "k1"})
    await check(api, doc, "POST", "/api/v1/rfqs", "/api/v1/rfqs", "alice", rfq_body(quantity=1.5))
    await check(api, doc, "POST", "/api/v1/rfqs", "/api/v1/rfqs", "dave", rfq_body())
    rfq_id = created["rfq_id"]
    await api.wait_terminal(rfq_id)
    one = f"/api/v1/rfqs/{rfq_id}"
    await check(api, doc, "GET", "/api/v1/rfqs/{rfq_id}", one)
    await check(api, doc, "GET", "/api/v1/rfqs/{rfq_id}", "/api/v1/rfqs/nope")
    await check(api, doc, "GET", "/api/v1/rfqs", "/api/v1/rfqs?limit=5")
    await check(api, doc, "POST", "/api/v1/rfqs/{rfq_id}/cancel", one + "/cancel", "alice", {})
    await check(api, doc, "POST", "/api/v1/rfqs/{rfq_id}/approve", one + "/approve", "carol", {})
    await check(api, doc, "GET", "/api/v1/audit/events", f"/api/v1/audit/events?rfq_id={rfq_id}")
    await check(api, doc, "GET", "/api/v1/audit/verify", "/api/v1/audit/verify")
    await check(api, doc, "GET", "/api/v1/dealers", "/api/v1/dealers")
    await check(api, doc, "GET", "/api/v1/me", "/api/v1/me", "carol")
    await check(api, doc, "GET", "/api/v1/mandates", "/api/v1/mandates")
    await check(api, doc, "GET", "/api/v1/admin/halt", "/api/v1/admin/halt")
    await check(api, doc, "POST", "/api/v1/admin/halt", "/api/v1/admin/halt", "erin",
                {"reason": "test"})
    await check(api, doc, "POST", "/api/v1/admin/resume", "/api/v1/admin/resume", "erin", {})
    await check(api, doc, "POST", "/api/v1/admin/resume", "/api/v1/admin/resume", "alice", {})
    await check(api, doc, "POST", "/api/v1/hedge/scenario", "/api/v1/hedge/scenario", "alice",
                {"strategy": "future", "spot": "40000", "prices": ["30000", "50000"]})
    await check(api, doc, "POST", "/api/v1/hedge/scenario", "/api/v1/hedge/scenario", "alice",
                {"strategy": "future", "spot": "x", "prices": ["1"]})
    await check(api, doc, "GET", "/api/v1/hedge/risk", "/api/v1/hedge/risk", "dave")
    await check(api, doc, "GET", "/api/v1/hedge/risk/alerts", "/api/v1/hedge/risk/alerts", "dave")
