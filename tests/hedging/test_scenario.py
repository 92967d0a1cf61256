"""Scenarios: DOMAIN.md's worked examples A and B to the cent, and more cases."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.hedging.scenario import (
    Strike,
    ndf_settlement,
    ndf_table,
    outcome_per_unit,
    scenario_table,
)

D = Decimal


def test_worked_example_a_collar_table_to_the_cent() -> None:
    table = scenario_table(strategy="collar", spot=D(40000), cost=D(30000), quantity=D(100),
                           prices=[D(25000), D(40000), D(60000)], put_strike="35000",
                           call_strike="50000", premium=D(0))
    got = [(r["price"], r["unhedged_revenue"], r["unhedged_pnl"], r["hedged_revenue"], r["hedged_pnl"])
           for r in table["rows"]]
    assert got == [
        ("25000", "25000", "-5000", "35000", "5000"),
        ("40000", "40000", "10000", "40000", "10000"),
        ("60000", "60000", "30000", "50000", "20000"),
    ]
    # totals for 100 BTC of production
    assert [r["hedged_pnl_total"] for r in table["rows"]] == ["500000", "1000000", "2000000"]
    assert [r["unhedged_pnl_total"] for r in table["rows"]] == ["-500000", "1000000", "3000000"]
    assert table["chart"]["hedged_revenue"] == ["3500000", "4000000", "5000000"]
    assert table["terms"] == {"premium": "0", "put_strike": "35000", "call_strike": "50000"}


def test_collar_strikes_as_percent_of_spot_and_premium() -> None:
    table = scenario_table(strategy="collar", spot=D(40000), cost=D(30000), quantity=D(1),
                           prices=[D(20000), D(45000), D(90000)], put_strike="87.5%",
                           call_strike="125%", premium=D("-150.25"))
    # put 35000, call 50000; a negative net premium (received) adds to revenue
    assert [r["hedged_revenue"] for r in table["rows"]] == ["35150.25", "45150.25", "50150.25"]


@pytest.mark.parametrize(("strategy", "price", "expected"), [
    ("unhedged", "31000.5", "31000.5"),
    ("future", "25000", "41200"),
    ("future", "60000", "41200"),
    ("put", "25000", "33800"),        # max(S, 35000) - 1200
    ("put", "60000", "58800"),
    ("collar", "100000", "50000"),
])
def test_outcome_per_unit(strategy: str, price: str, expected: str) -> None:
    value = outcome_per_unit(strategy, D(price), future_price=D(41200), put_strike=D(35000),
                             call_strike=D(50000), premium=D(1200) if strategy == "put" else D(0))
    assert value == D(expected)


def test_partial_hedge_ratio_blends_hedged_and_spot() -> None:
    table = scenario_table(strategy="future", spot=D(40000), cost=D(30000), quantity=D(100),
                           prices=[D(25000)], hedge_ratio=D("0.6"))
    row = table["rows"][0]
    assert row["hedged_revenue"] == "34000"  # 0.6 * 40000 + 0.4 * 25000
    assert row["hedge_pnl_total"] == "900000"  # (34000 - 25000) * 100


def test_scenario_validation_names_fields() -> None:
    with pytest.raises(ValidationError, match="call: the call strike 30000 must be above the put"):
        scenario_table(strategy="collar", spot=D(40000), cost=D(0), quantity=D(1), prices=[D(1)],
                       put_strike="35000", call_strike="30000")
    with pytest.raises(ValidationError, match="put: a put needs a put strike"):
        scenario_table(strategy="put", spot=D(40000), cost=D(0), quantity=D(1), prices=[D(1)])
    with pytest.raises(ValidationError, match=r"prices\[1\]: must be a positive price"):
        scenario_table(strategy="unhedged", spot=D(40000), cost=D(0), quantity=D(1), prices=[D(1), D(-1)])
    with pytest.raises(ValidationError, match="hedge_ratio"):
        scenario_table(strategy="future", spot=D(1), cost=D(0), quantity=D(1), prices=[D(1)],
                       hedge_ratio=D("1.5"))


def test_strike_parsing() -> None:
    assert Strike.parse("87.5%", "put").resolve(D(40000)) == D(35000)
    assert Strike.parse("87.3%", "put").resolve(D(40000), D(500)) == D(35000)  # 34920 -> 35000
    assert Strike.parse("35000", "put").resolve(D(1)) == D(35000)
    with pytest.raises(ValidationError, match="put: must be a positive price"):
        Strike.parse("-1", "put")


def test_worked_example_b_ndf_short_hedge() -> None:
    table = ndf_table(unit_price=D(60), hashrate_ph=D(50), days=30, settle_rates=[D(45), D(75)],
                      power_mw=D("1.5"), power_price=D(75))
    assert table["contracts"] == "1500"
    assert table["locked_value"] == "90000"
    assert table["power"]["cost"] == "81000"
    assert table["power"]["mwh"] == "1080"
    assert table["profit_floor"] == "9000"
    assert table["profit_floor_per_mwh"] == "8.33"
    r45, r75 = table["rows"]
    assert (r45["exposure"], r45["ndf_settlement"], r45["total"]) == ("67500", "22500", "90000")
    assert (r75["exposure"], r75["ndf_settlement"], r75["total"]) == ("112500", "-22500", "90000")
    assert r45["profit"] == r75["profit"] == "9000"


def test_worked_example_b_operating_cost_only() -> None:
    table = ndf_table(unit_price=D(60), hashrate_ph=D(50), days=30, settle_rates=[D(0), D(45), D(75)],
                      power_mw=D("1.5"), power_price=D(75), opex_only=True)
    assert table["power"]["opex_ratio_pct"] == "90"
    assert table["hedge_ratio"] == "0.9"
    assert table["contracts"] == "1350"
    assert table["revenue_floor"] == "81000"
    # the floor holds at any settlement: total = 81,000 + R x 150
    assert [r["total"] for r in table["rows"]] == ["81000", "87750", "92250"]


def test_ndf_long_hedge_caps_the_cost_of_hashrate_owed() -> None:
    table = ndf_table(unit_price=D(60), hashrate_ph=D(50), days=30, settle_rates=[D(45), D(75)],
                      side="long")
    assert [r["total"] for r in table["rows"]] == ["-90000", "-90000"]
    assert table["cost_cap"] == "90000" and table["revenue_floor"] is None


def test_ndf_settlement_direction() -> None:
    # R above U: the seller pays the buyer (R - U) x contracts
    assert ndf_settlement("short", D(60), D(1500), D(75)) == D(-22500)
    assert ndf_settlement("long", D(60), D(1500), D(75)) == D(22500)
    assert ndf_settlement("short", D(60), D(1500), D(45)) == D(22500)


def test_ndf_validation() -> None:
    with pytest.raises(ValidationError, match="hashrate_ph: an NDF is at least 1 PH/s"):
        ndf_table(unit_price=D(60), hashrate_ph=D("0.5"), days=30, settle_rates=[D(1)])
    with pytest.raises(ValidationError, match="power_mw: hedging the operating cost only needs"):
        ndf_table(unit_price=D(60), hashrate_ph=D(50), days=30, settle_rates=[D(1)], opex_only=True)
    with pytest.raises(ValidationError, match="days"):
        ndf_table(unit_price=D(60), hashrate_ph=D(50), days=0, settle_rates=[D(1)])
