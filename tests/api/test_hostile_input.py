"""Hostile input (issue 14): unknown fields are 422s naming the field, no input reaches a
500, and every decimal that enters is bounded in digits and exponent before anything is
stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rfq_engine.domain import DealerId, ValidationError, parse_body
from tests.api.conftest import EXPIRY, Api, auth, rfq_body

OPTION = {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": EXPIRY,
          "strike": "35000", "option_type": "put"}
FUTURE_SCENARIO = {"strategy": "future", "spot": "40000", "prices": ["30000", "50000"]}
NDF_SCENARIO = {"strategy": "ndf", "unit_price": "60", "hashrate_ph": "50", "days": 30,
                "settle_rates": ["45", "60"]}
# Every POST: (path with {id}, the user allowed to call it, a valid body).
POSTS = [
    ("/api/v1/rfqs", "alice", rfq_body()),
    ("/api/v1/hedge/scenario", "alice", FUTURE_SCENARIO),
    ("/api/v1/rfqs/{id}/cancel", "alice", {"reason": "x"}),
    ("/api/v1/rfqs/{id}/approve", "carol", {}),
    ("/api/v1/rfqs/{id}/refuse", "carol", {"reason": "x"}),
    ("/api/v1/admin/halt", "erin", {"reason": "x"}),
    ("/api/v1/admin/resume", "erin", {}),
]
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("nested arrays 200k deep", b"[" * 200_000 + b"]" * 200_000),
    ("nested objects 100k deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("nested objects 200k deep: over the size limit", b'{"a":' * 200_000 + b"1" + b"}" * 200_000),
    ("nested 40 deep", b'{"reason":' + b"[" * 40 + b"]" * 40 + b"}"),
    ("5,000-digit integer", b'{"quantity": ' + b"7" * 5000 + b', "reason": "x"}'),
    ("5,000-digit float", b'{"quantity": 1.' + b"7" * 5000 + b"}"),
    ("malformed JSON", b'{"reason": '),
    ("invalid UTF-8", b'{"reason": "\xff\xfe"}'),
    ("NaN", b'{"reason": NaN}'),
    ("not an object", b'["reason"]'),
    ("a bare string", b'"reason"'),
]


@pytest.fixture
async def live(api: Api) -> AsyncIterator[str]:
    """An RFQ that stays live (pending approval) through the test."""
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(require_approval=True),
                                 headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    rfq_id: str = (await resp.json())["rfq_id"]
    await api.wait_state(rfq_id, "pending_approval")
    yield rfq_id


async def stored_rfqs(api: Api) -> list[dict[str, Any]]:
    listed = await (await api.client.get("/api/v1/rfqs", headers=auth("dave"))).json()
    rfqs: list[dict[str, Any]] = listed["rfqs"]
    return rfqs


async def expect_error(resp: Any, status: int | tuple[int, ...], field: str | None = None) -> str:
    statuses = (status,) if isinstance(status, int) else status
    text = await resp.text()
    assert resp.status in statuses, (resp.status, text[:500])
    assert resp.content_type == "application/json"
    data = await resp.json()
    assert set(data) <= {"error", "reason", "field"} and data["error"] and data["reason"]
    if field is not None:
        assert data.get("field") == field, data
    reason: str = data["reason"]
    return reason


async def assert_healthy(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    report = await (await api.client.get("/api/v1/audit/verify", headers=auth("dave"))).json()
    assert report["ok"], report


# --- unknown fields ----------------------------------------------------------------------

def _leg(**extra: Any) -> dict[str, Any]:
    return {"instrument": {**OPTION}, "side": "buy", **extra}


@pytest.mark.parametrize(("body", "field"), [
    (rfq_body(limit_prce="50000"), "limit_prce"),
    (rfq_body(legs=[{**_leg(), "sde": "sell"}]), "legs[0].sde"),
    (rfq_body(legs=[_leg(), {"instrument": {**OPTION, "strik": "1"}, "side": "sell"}]),
     "legs[1].instrument.strik"),
    (rfq_body(legs=[{"instrument": {"kind": "spot", "underlying": "BTC", "quote_ccy": "USD",
                                    "expiry": EXPIRY}, "side": "sell"}]),
     "legs[0].instrument.expiry"),  # a key of another kind of instrument
    (rfq_body(hedge={"forecast_quantity": "100", "perod": "2026-12"}), "hedge.perod"),
])
async def test_an_unknown_rfq_field_is_a_422_naming_it(api: Api, body: dict[str, Any],
                                                       field: str) -> None:
    resp = await api.client.post("/api/v1/rfqs", json=body, headers=auth("alice"))
    reason = await expect_error(resp, 422, field)
    assert "unknown field" in reason
    assert await stored_rfqs(api) == []  # nothing stored, nothing traded


async def test_a_key_given_twice_is_a_422(api: Api) -> None:
    text = ('{"legs": [{"instrument": {"kind": "spot", "underlying": "BTC", "quote_ccy": "USD"},'
            ' "side": "sell"}], "direction": "sell", "quantity": "1", "quantity": "1000",'
            ' "quantity_unit": "BTC", "dealers": ["d1"], "mandate": "treasury"}')
    resp = await api.client.post("/api/v1/rfqs", data=text, headers=auth("alice"))
    assert "twice" in await expect_error(resp, 422, "quantity")
    assert await stored_rfqs(api) == []


@pytest.mark.parametrize(("body", "field"), [
    ({**FUTURE_SCENARIO, "spto": "1"}, "spto"),
    ({**NDF_SCENARIO, "spot": "40000"}, "spot"),  # a field of the other kind of scenario
    ({**NDF_SCENARIO, "sied": "long"}, "sied"),
])
async def test_an_unknown_scenario_field_is_a_422(api: Api, body: dict[str, Any],
                                                  field: str) -> None:
    resp = await api.client.post("/api/v1/hedge/scenario", json=body, headers=auth("alice"))
    assert "unknown field" in await expect_error(resp, 422, field)


@pytest.mark.parametrize(("action", "user", "body", "field"), [
    ("cancel", "alice", {"reason": "x", "force": True}, "force"),
    ("approve", "carol", {"comment": "ok"}, "comment"),
    ("refuse", "carol", {"reason": "no", "resaon": "typo"}, "resaon"),
])
async def test_an_unknown_field_on_an_rfq_action_is_a_422_and_nothing_happens(
        api: Api, live: str, action: str, user: str, body: dict[str, Any], field: str) -> None:
    resp = await api.client.post(f"/api/v1/rfqs/{live}/{action}", json=body, headers=auth(user))
    assert "unknown field" in await expect_error(resp, 422, field)
    run = api.app.engine.live(live)
    assert run is not None and run.state.value == "pending_approval"
    await api.app.store.flush()
    events = await (await api.client.get(f"/api/v1/audit/events?rfq_id={live}",
                                         headers=auth("dave"))).json()
    assert not {e["type"] for e in events["events"]} & {
        "rfq.cancel_requested", "approval.granted", "approval.refused"}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/admin/halt", {"reason": "outage", "cancel_open": False}, "cancel_open"),
    ("/api/v1/admin/resume", {"force": True}, "force"),
])
async def test_an_unknown_field_on_the_kill_switch_is_a_422(api: Api, path: str,
                                                            body: dict[str, Any],
                                                            field: str) -> None:
    resp = await api.client.post(path, json=body, headers=auth("erin"))
    assert "unknown field" in await expect_error(resp, 422, field)
    assert api.app.engine.halted is None


# --- no input reaches a 500 --------------------------------------------------------------

@pytest.mark.parametrize(("path", "user", "valid"), POSTS)
async def test_hostile_bodies_get_a_4xx_on_every_endpoint(api: Api, live: str, path: str,
                                                          user: str, valid: Any) -> None:
    url = path.replace("{id}", live)
    for name, raw in HOSTILE_BODIES:
        resp = await api.client.post(url, data=raw, headers={
            **auth(user), "Content-Type": "application/json"})
        reason = await expect_error(resp, (400, 413, 422))
        assert reason != "internal error; see the server log", name
    # the endpoint still works, and nothing hostile was stored
    assert [r["rfq_id"] for r in await stored_rfqs(api)] == [live]
    assert api.app.engine.halted is None
    await assert_healthy(api)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"quantity": "1e999999"}, "quantity"),
    ({"quantity": "1e-999999"}, "quantity"),
    ({"quantity": "0E-999999"}, "quantity"),
    ({"quantity": int("7" * 4000)}, None),  # a JSON number of 4,000 digits: 400
    ({"quantity": "7" * 5000}, "quantity"),
    ({"quantity": "1" * 29}, "quantity"),  # 29 significant digits
    ({"quantity": "1e-31"}, "quantity"),
    ({"quantity": "1e31"}, "quantity"),
    ({"limit_price": "1e999999"}, "limit_price"),
    ({"limit_price": "-1e999999"}, "limit_price"),
    ({"limit_price": "NaN"}, "limit_price"),
    ({"legs": [_leg(ratio="1e999999")]}, "legs[0].ratio"),
    ({"legs": [_leg(ratio="1e-999999")]}, "legs[0].ratio"),
    ({"legs": [{"instrument": {**OPTION, "strike": "1e999999"}, "side": "buy"}]},
     "legs[0].instrument.strike"),
    ({"hedge": {"forecast_quantity": "1e999999"}}, "hedge.forecast_quantity"),
    ({"hedge": {"forecast_quantity": "100", "hedged_quantity": "1e-999999"}},
     "hedge.hedged_quantity"),
    ({"window_ms": int("9" * 90)}, "window_ms"),
    ({"tags": ["x" * 100_000]}, "tags"),
    ({"quantity_unit": "x" * 100_000}, "quantity_unit"),
    ({"client_rfq_id": "k" * 100_000}, "client_rfq_id"),
    ({"legs": [{**_leg(), "side": "sideways"}]}, "legs[0].side"),
    ({"direction": ["sell"] * 100_000}, "direction"),
])
async def test_unbounded_values_are_refused_before_anything_is_stored(
        api: Api, overrides: dict[str, Any], field: str | None) -> None:
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(**overrides), headers=auth("alice"))
    await expect_error(resp, 400 if field is None else 422, field)
    assert await stored_rfqs(api) == []
    await api.app.store.flush()
    head = await (await api.client.get("/api/v1/audit/verify", headers=auth("dave"))).json()
    assert head["ok"] and head["events"] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({**FUTURE_SCENARIO, "spot": "1e999999"}, "spot"),
    ({**FUTURE_SCENARIO, "quantity": "1e999999"}, "quantity"),
    ({**FUTURE_SCENARIO, "hedge_ratio": "1e999999"}, "hedge_ratio"),
    ({**FUTURE_SCENARIO, "prices": ["1e-999999"]}, "prices[0]"),
    ({**FUTURE_SCENARIO, "quantity": int("9" * 99)}, "quantity"),
    ({"strategy": "collar", "spot": "40000", "prices": ["1"], "put": "1e999999%",
      "call": "50000"}, "put"),
    ({"strategy": "collar", "spot": "40000", "prices": ["1"], "put": "35000",
      "call": ["50000"]}, "call"),
    ({**NDF_SCENARIO, "side": "sideways"}, "side"),
    ({**NDF_SCENARIO, "side": ["short"]}, "side"),
    ({**NDF_SCENARIO, "days": int("9" * 99)}, "days"),
    ({**NDF_SCENARIO, "opex_only": "yes"}, "opex_only"),
    ({**NDF_SCENARIO, "unit_price": "1e999999"}, "unit_price"),
    # each within the bounds, but far enough apart that a result needs > 50 digits
    ({**NDF_SCENARIO, "unit_price": "1e-30", "hashrate_ph": "1", "power_mw": "9e30",
      "power_price": "9e30", "opex_only": True}, None),
    ({**NDF_SCENARIO, "unit_price": "9e30", "hashrate_ph": "9e30", "power_mw": "1e-30",
      "power_price": "1e-30"}, None),
    ({"strategy": "collar", "spot": "9e30", "cost": "1e-30", "quantity": "9e30",
      "prices": ["1e-30", "9e30"], "put": "1e-30", "call": "9e30", "premium": "-9e30",
      "hedge_ratio": "0.1234567890123456789012345678"}, None),
])
async def test_hostile_scenarios_are_4xx(api: Api, body: dict[str, Any],
                                         field: str | None) -> None:
    resp = await api.client.post("/api/v1/hedge/scenario", json=body, headers=auth("alice"))
    if resp.status == 200:  # computable exactly: fine, as long as it is not a 500
        assert field is None, await resp.text()
        return
    await expect_error(resp, 422, field)


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/audit/events?after_seq=99999999999999999999999", "after_seq"),
    ("/api/v1/audit/events?after_seq=9223372036854775808", "after_seq"),
    ("/api/v1/audit/events?after_seq=-1", "after_seq"),
    ("/api/v1/audit/events?after_seq=1_0", "after_seq"),
    ("/api/v1/audit/events?limit=%EF%BC%91", "limit"),  # a full-width digit one
    ("/api/v1/audit/export?format=jsonl&after_seq=99999999999999999999999", "after_seq"),
    ("/api/v1/audit/events?since=9999-12-31T23:59:59-23:59", "since"),
    ("/api/v1/audit/events?until=0001-01-01T00:00:00%2B23:59", "until"),
    ("/api/v1/dealers?since=9999-12-31T23:59:59-23:59", "since"),
    ("/api/v1/rfqs?limit=99999999999999999999999", "limit"),
])
async def test_hostile_query_parameters_are_422(api: Api, url: str, field: str) -> None:
    resp = await api.client.get(url, headers=auth("erin"))
    await expect_error(resp, 422, field)
    ok = await api.client.get("/api/v1/audit/events?after_seq=9223372036854775807",
                              headers=auth("erin"))
    assert ok.status == 200 and (await ok.json())["events"] == []


# --- the bounds admit every real value ---------------------------------------------------

async def test_real_values_pass_the_bounds_unchanged(api: Api) -> None:
    body = rfq_body(quantity="1000000000000", limit_price="0.00080", window_ms=50,
                    legs=[{"instrument": {**OPTION, "strike": "35000.25"}, "side": "buy",
                           "ratio": "0.5"}], direction="buy",
                    hedge={"forecast_quantity": "1E+12", "hedged_quantity": "0.00000001"})
    resp = await api.client.post("/api/v1/rfqs", json=body, headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    spec = (await resp.json())["spec"]
    assert spec["quantity"] == "1000000000000" and spec["limit_price"] == "0.0008"
    assert spec["legs"][0]["ratio"] == "0.5"
    assert spec["legs"][0]["instrument"]["strike"] == "35000.25"
    assert spec["hedge"]["forecast_quantity"] == "1000000000000"
    # the edges of the bounds: 28 significant digits, 1E-30 and just below 1E+31
    for quantity, stored in [("1234567890.123456789012345678", "1234567890.123456789012345678"),
                             ("1e-30", "0." + "0" * 29 + "1"), ("9.99e30", "999" + "0" * 28)]:
        resp = await api.client.post("/api/v1/rfqs", json=rfq_body(quantity=quantity),
                                     headers=auth("alice"))
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["spec"]["quantity"] == stored
    ndf = await api.client.post("/api/v1/hedge/scenario", headers=auth("alice"), json={
        **NDF_SCENARIO, "unit_price": "0.00080", "power_mw": "1.5", "power_price": "75"})
    assert ndf.status == 200, await ndf.text()
    await assert_healthy(api)


# --- the same bounds for the config and the dealers' messages (no HTTP) ------------------

def test_the_config_and_dealer_messages_are_held_to_the_same_bounds(tmp_path: Any) -> None:
    from rfq_engine.config import ConfigError, parse_config
    from rfq_engine.domain.values import ENTRY_BOUNDS, parse_decimal
    from tests.api.conftest import config_data

    for hostile in ("1e999999", "1" * 29, "1e-31"):
        data = config_data(tmp_path)
        data["mandates"]["treasury"]["dealers"]["d1"]["credit_limit"] = hostile
        with pytest.raises(ConfigError, match="credit_limit"):
            parse_config(data)
    data = config_data(tmp_path)
    data["mandates"]["treasury"]["dealers"]["d1"]["credit_limit"] = "1E+12"
    parse_config(data)

    quote = {"rfq_id": "r1", "quote_id": "q1", "bid": "1e999999", "quantity": "1",
             "valid_until": "2030-01-01T00:00:00Z"}
    for key, value in [("bid", "1e999999"), ("bid", "1e-999999"), ("quantity", "9" * 5000)]:
        with pytest.raises(ValidationError) as info:
            parse_body("quote", {**quote, "bid": "0.00080", key: value}, dealer_id=DealerId("d1"),
                       msg_id="m1", received_at=datetime.now(UTC))
        assert info.value.field == f"body.{key}"
    assert parse_decimal("0.00080", "price", ENTRY_BOUNDS) == parse_decimal("8E-4", "p")


# --- the OpenAPI document says the same -------------------------------------------------

async def test_the_openapi_request_schemas_name_exactly_the_accepted_fields(api: Api) -> None:
    from rfq_engine.api.hedge import NDF_FIELDS, PRICE_FIELDS
    from rfq_engine.domain import InstrumentKind
    from rfq_engine.domain.instruments import FIELDS
    from rfq_engine.domain.rfq import HEDGE_FIELDS, LEG_FIELDS, SPEC_FIELDS
    from tests.api.test_openapi import validator_for

    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["CreateRfq"]["properties"]) == SPEC_FIELDS
    assert set(schemas["CreateRfq"]["properties"]["hedge"]["properties"]) == HEDGE_FIELDS
    assert set(schemas["Leg"]["properties"]) == LEG_FIELDS
    kinds = {v["properties"]["kind"]["const"]: set(v["properties"])
             for v in schemas["Instrument"]["oneOf"]}
    assert kinds == {k.value: set(FIELDS[k]) for k in InstrumentKind}
    assert set(schemas["PriceScenario"]["properties"]) == PRICE_FIELDS
    assert set(schemas["NdfScenario"]["properties"]) == NDF_FIELDS
    create = validator_for(doc, {"$ref": "#/components/schemas/CreateRfq"})
    assert create.is_valid(rfq_body(legs=[_leg(ratio="0.5")], limit_price="1E-30"))
    assert not create.is_valid(rfq_body(limit_prce="50000"))
    assert not create.is_valid(rfq_body(legs=[{**_leg(), "sde": "sell"}]))
    for path, user, _ in POSTS:
        responses = doc["paths"][path.replace("{id}", "{rfq_id}")]["post"]["responses"]
        assert {"400", "413", "422"} <= set(responses), (path, user)
