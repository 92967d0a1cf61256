"""POST /api/v1/hedge/scenario reproduces DOMAIN.md's worked examples A and B."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, auth


async def test_collar_scenario_worked_example_a(api: Api) -> None:
    resp = await api.client.post("/api/v1/hedge/scenario", headers=auth("dave"), json={
        "strategy": "collar", "spot": "40000", "cost": "30000", "put": "35000", "call": "50000",
        "premium": "0", "quantity": "100", "prices": ["25000", "40000", "60000"]})
    assert resp.status == 200
    data = await resp.json()
    got = [(r["price"], r["unhedged_revenue"], r["unhedged_pnl"], r["hedged_revenue"], r["hedged_pnl"])
           for r in data["rows"]]
    assert got == [("25000", "25000", "-5000", "35000", "5000"),
                   ("40000", "40000", "10000", "40000", "10000"),
                   ("60000", "60000", "30000", "50000", "20000")]
    assert data["chart"]["hedged_revenue"] == ["3500000", "4000000", "5000000"]


async def test_ndf_scenario_worked_example_b(api: Api) -> None:
    resp = await api.client.post("/api/v1/hedge/scenario", headers=auth("alice"), json={
        "strategy": "ndf", "unit_price": "60", "hashrate_ph": "50", "days": 30,
        "power_mw": "1.5", "power_price": "75", "settle_rates": ["45", "75"]})
    assert resp.status == 200
    data = await resp.json()
    assert (data["contracts"], data["locked_value"]) == ("1500", "90000")
    assert data["chart"]["hedged"] == ["90000", "90000"]


@pytest.mark.parametrize(("body", "field"), [
    ({"strategy": "straddle", "spot": "1", "prices": ["1"]}, "strategy"),
    ({"strategy": "collar", "spot": "40000", "prices": ["1"], "call": "50000"}, "put"),
    ({"strategy": "future", "spot": 40000.5, "prices": ["1"]}, "spot"),
    ({"strategy": "future", "spot": "40000", "prices": []}, "prices"),
    ({"strategy": "ndf", "unit_price": "60", "hashrate_ph": "50", "days": "30",
      "settle_rates": ["45"]}, "days"),
])
async def test_scenario_validation_names_the_field(api: Api, body: dict[str, object],
                                                   field: str) -> None:
    resp = await api.client.post("/api/v1/hedge/scenario", headers=auth("alice"), json=body)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["field"] == field
