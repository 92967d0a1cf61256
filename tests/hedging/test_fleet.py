"""The fleet-aware forecast: deployments, retirements and curtailment by date, power from
J/TH, energy cost, the operating-expense ratio that sizes an NDF hedge of the operating
cost, and the uptime band; worked examples to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.hedging.fleet import FleetConfig, fleet_period, power_mw, uptime_band
from rfq_engine.hedging.forecast import Period, forecast_period
from rfq_engine.hedging.program import ForecastConfig, check_programs, resolve_fleet, resolve_forecast
from rfq_engine.hedging.scheduler import prepare_plan
from tests.hedging.kit import DIFFICULTY, program, snapshot

D = Decimal
APRIL = Period(2027, 4)  # 30 days


def inputs_and_fleet(hashrate: str = "50 PH/s", uptime: str = "1", **fleet: Any) -> tuple[Any, FleetConfig]:
    config = ForecastConfig.model_validate({
        "hashrate": hashrate, "difficulty": DIFFICULTY, "uptime": uptime,
        "fleet": {"efficiency": "30", "power_price": "75", **fleet}})
    inputs = resolve_forecast(config, None)
    fleet_config = resolve_fleet(config, None)
    assert fleet_config is not None
    return inputs, fleet_config


def test_worked_example_b_from_the_fleet() -> None:
    """50 PH/s at 30 J/TH = 1.5 MW; 30 days at 75 USD/MWh = 81,000 USD; revenue at 60 USD per
    PH/s per day 90,000 USD; OER 90%: sell 1,350 contracts."""
    inputs, fleet = inputs_and_fleet()
    assert power_mw(inputs, fleet, APRIL.start) == D("1.5")
    april = fleet_period(inputs, fleet, APRIL.start, APRIL.end, hashprice_usd=D(60))
    assert (april.ph_days, april.mwh, april.energy_cost, april.revenue) == (
        D(1500), D(1080), D("81000.00"), D("90000.00"))
    assert april.oer == D("0.9")
    shown = april.to_dict()
    assert shown["opex_contracts"] == "1350" and shown["average_mw"] == "1.5"
    assert (shown["energy_cost"], shown["revenue"]) == ("81000.00", "90000.00")  # to the cent


def test_a_deployment_a_curtailment_and_a_retirement_move_power_and_cost_day_by_day() -> None:
    inputs, fleet = inputs_and_fleet(changes=[
        {"date": date(2027, 4, 16), "kind": "deploy", "hashrate": "50 PH/s", "efficiency": "20"}])
    # days 1-15: 50 PH/s at 1.5 MW; days 16-30: 100 PH/s at 1.5 + 1.0 = 2.5 MW
    assert power_mw(inputs, fleet, date(2027, 4, 15)) == D("1.5")
    assert power_mw(inputs, fleet, date(2027, 4, 16)) == D("2.5")
    april = fleet_period(inputs, fleet, APRIL.start, APRIL.end, hashprice_usd=D(60))
    assert (april.ph_days, april.mwh) == (D(2250), D(1440))  # 540 + 900 MWh
    assert (april.energy_cost, april.revenue, april.oer) == (D("108000.00"), D("135000.00"), D("0.8"))
    assert april.to_dict()["opex_contracts"] == "1800"

    # 20 PH/s curtailed 5-7 April, at the fleet's average that day (30 J/TH): 0.6 MW off
    inputs, fleet = inputs_and_fleet(changes=[
        {"date": date(2027, 4, 16), "kind": "deploy", "hashrate": "50 PH/s", "efficiency": "20"},
        {"date": date(2027, 4, 5), "kind": "curtail", "hashrate": "20 PH/s", "until": date(2027, 4, 8)}])
    assert power_mw(inputs, fleet, date(2027, 4, 5)) == D("0.9")
    assert power_mw(inputs, fleet, date(2027, 4, 8)) == D("1.5")
    april = fleet_period(inputs, fleet, APRIL.start, APRIL.end, hashprice_usd=D(60))
    assert (april.ph_days, april.mwh) == (D(2190), D("1396.8"))
    assert (april.energy_cost, april.revenue) == (D("104760.00"), D("131400.00"))
    assert april.oer == D("0.7972602740")  # 104,760 / 131,400 = 0.797260273972...

    # retiring 10 PH/s of 40 J/TH machines (0.4 MW) on 21 April; the rest draws 1.1 MW
    inputs, fleet = inputs_and_fleet(efficiency="30", changes=[
        {"date": date(2027, 4, 21), "kind": "retire", "hashrate": "10 PH/s", "efficiency": "40"}])
    assert power_mw(inputs, fleet, date(2027, 4, 21)) == D("1.1")
    april = fleet_period(inputs, fleet, APRIL.start, APRIL.end, hashprice_usd=D(60))
    assert april.ph_days == D(50 * 20 + 40 * 10)
    assert april.energy_cost == (D("1.5") * 24 * 20 + D("1.1") * 24 * 10) * 75  # 70,200.00


def test_production_follows_the_schedule() -> None:
    config = ForecastConfig.model_validate({
        "hashrate": "1 EH/s", "difficulty": DIFFICULTY,
        "fleet": {"efficiency": "20", "power_price": "50", "changes": [
            {"date": "2027-04-16", "kind": "deploy", "hashrate": "1 EH/s"}]}})
    april = forecast_period(resolve_forecast(config, None), APRIL.start, APRIL.end)
    # 15 days at 1 EH/s and 15 at 2 EH/s: 45 days' worth of 0.628642737865447998046875 BTC
    assert april.btc == D("28.288923203945159912109375")
    assert april.effective_hashrate_ph == D(1500)  # the month's average


def test_the_uptime_band() -> None:
    inputs, fleet = inputs_and_fleet(uptime="0.95", uptime_band=["0.90", "0.98"])
    low, base, high = uptime_band(inputs, fleet, APRIL.start, APRIL.end, hashprice_usd=D(60))
    assert [p.uptime for p in (low, base, high)] == [D("0.90"), D("0.95"), D("0.98")]
    assert (low.ph_days, low.mwh, low.energy_cost, low.revenue) == (
        D(1350), D(972), D("72900.00"), D("81000.00"))
    assert (high.ph_days, high.energy_cost) == (D(1470), D("79380.00"))
    assert low.oer == base.oer == high.oer == D("0.9")  # power follows uptime


def test_an_ndf_program_sizes_its_hedge_by_the_forecasts_operating_expense_ratio() -> None:
    import asyncio

    fleet = {"efficiency": "30", "power_price": "75"}
    forecast = {"hashrate": "50 PH/s", "difficulty": DIFFICULTY, "fleet": fleet}

    def plan(ratio: str) -> Any:
        p = program(strategy="ndf_short", hedge_ratio=ratio, opex_hedge=True, forecast=forecast)
        return asyncio.run(prepare_plan(name="p", program=p, store=None, snapshot=snapshot(),
                                        forecast_defaults=None, mandate_max_ratio=None, period=APRIL,
                                        today=date(2027, 3, 26)))

    # 2,700 USD of power a day against 50 x 55 = 2,750 USD of hashprice: OER 98.18...%
    full = plan("1")
    assert full.hedge_ratio == D("0.9818181818") and full.target == D(49)
    assert full.reasons[0].startswith("hedging the operating cost: the ratio is the fleet forecast's")
    capped = plan("0.5")
    assert capped.hedge_ratio == D("0.5") and capped.target == D(25)
    assert "capped at the program's hedge ratio 50%" in capped.reasons[0]


@pytest.mark.parametrize(("fleet", "message"), [
    ({"efficiency": "30", "power_price": "75", "colour": "red"}, "Extra inputs"),
    ({"efficiency": 30.0, "power_price": "75"}, ""),
    ({"efficiency": "30", "power_price": "75",
      "changes": [{"date": "2027-04-05", "kind": "curtail", "hashrate": "1 PH/s"}]}, "until"),
    ({"efficiency": "30", "power_price": "75",
      "changes": [{"date": "2027-04-05", "kind": "deploy", "hashrate": "1 PH/s",
                   "until": "2027-04-09"}]}, "only a curtailment"),
    ({"efficiency": "30", "power_price": "75",
      "changes": [{"date": "2027-04-05", "kind": "deploy", "hashrate": "1 kH/s"}]}, "unit"),
    ({"efficiency": "1e40", "power_price": "75"}, ""),
    ({"efficiency": "30", "power_price": "75", "uptime_band": ["0.99", "0.9"]}, "low <= high"),
])
def test_fleet_config_is_strict(fleet: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ForecastConfig.model_validate({"hashrate": "50 PH/s", "difficulty": DIFFICULTY, "fleet": fleet})
    assert message in str(caught.value)


def test_fleet_errors_name_the_field() -> None:
    config = ForecastConfig.model_validate({
        "hashrate": "50 PH/s", "difficulty": DIFFICULTY, "fleet": {
            "efficiency": "30", "power_price": "75",
            "changes": [{"date": "2027-04-05", "kind": "retire", "hashrate": "60 PH/s"}]}})
    with pytest.raises(ValidationError, match=r"fleet\.changes: the retirements dated up to 2027-04-05"):
        resolve_forecast(config, None)
    with pytest.raises(pydantic.ValidationError, match="opex_hedge: only an ndf_short"):
        program(opex_hedge=True)
    ndf = program(strategy="ndf_short", opex_hedge=True)
    from rfq_engine.mandate import MandateConfig

    mandate = MandateConfig.model_validate({"underlyings": ["HASHPRICE"], "instruments": ["hashprice_ndf"],
                                            "max_tenor_days": 100,
                                            "dealers": {d: {"credit_limit": "1"} for d in ndf.dealers}})
    with pytest.raises(ValueError, match=r"programs\.p\.opex_hedge: needs a fleet"):
        check_programs({"p": ndf}, {"treasury": mandate}, ndf.dealers, None)


def test_rfq_hedge_forecast_shows_the_fleet_band(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rfq_engine.cli.main import main
    from tests.cli.clikit import config_text, write

    config = write(tmp_path / "rfq.toml", config_text("hedge.db") + f"""
[forecast]
hashrate = "50 PH/s"
difficulty = "{DIFFICULTY}"
uptime = "0.95"

[forecast.fleet]
efficiency = "30"
power_price = "75"
uptime_band = ["0.9", "1"]
""")
    assert main(["hedge", "forecast", "--config", str(config), "--period", "2027-04", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["uptime"]: row for row in report["fleet"]}
    assert list(rows) == ["0.9", "0.95", "1"]
    assert (rows["1"]["period"], rows["1"]["mwh"], rows["1"]["energy_cost"]) == (
        "2027-04", "1080", "81000.00")
    assert rows["0.9"]["energy_cost"] == "72900.00" and rows["0.9"]["ph_days"] == "1350"
    assert rows["1"]["oer"] == rows["0.9"]["oer"] is not None
    assert main(["hedge", "forecast", "--config", str(config), "--period", "2027-04"]) == 0
    assert "opex NDF contracts" in capsys.readouterr().out
