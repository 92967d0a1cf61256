"""Program and forecast config: strict, validated on load, every error names its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.config import ConfigError, parse_config
from rfq_engine.hedging.program import ForecastConfig, Strategy, resolve_forecast
from rfq_engine.hedging.scenario import Strike
from tests.hedging.kit import DESKS


def config(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market": {"spot": {"BTC": "40000"}, "rate": "0.05"},
        "mandates": {"treasury": {"underlyings": ["BTC"], "instruments": ["future"], "max_tenor_days": 190,
                                  "dealers": {d: {"credit_limit": "1000000"} for d in DESKS},
                                  "max_hedge_ratio": "0.8"}},
        "dealers": [{"id": d, "kind": "simulated"} for d in DESKS],
        "forecast": {"hashrate": "1.2 EH/s", "difficulty": "110000000000000", "uptime": "0.95"},
    }
    base.update(sections)
    return base


def prog(**overrides: Any) -> dict[str, Any]:
    data = {"strategy": "collar", "mandate": "treasury", "dealers": ["desk-a", "desk-b"],
            "hedge_ratio": "0.5", "schedule": "0 14 * * 5L", "timezone": "Europe/London",
            "put_strike": "87.5%", "call_strike": "50000"}
    data.update(overrides)
    return data


def test_a_full_program_loads() -> None:
    app = parse_config(config(programs={"monthly": prog(forecast={"hashrate": "1.5 EH/s"})}))
    p = app.programs["monthly"]
    assert p.strategy is Strategy.COLLAR and p.code == "BTC"
    assert p.put_strike == Strike(Decimal("87.5"), True)
    assert p.call_strike == Strike(Decimal(50000), False)
    assert p.cron.zone_name == "Europe/London"
    inputs = resolve_forecast(app.forecast, p.forecast)
    assert inputs.hashrate == Decimal("1.5E18") and inputs.uptime == Decimal("0.95")
    assert inputs.difficulty == Decimal("110000000000000")


def test_a_config_without_programs_still_loads() -> None:
    app = parse_config(config())
    assert app.programs == {}


@pytest.mark.parametrize(("override", "message"), [
    ({"schedule": "0 14 * *"}, "programs.p.schedule: '0 14 \\* \\*' has 4 fields"),
    ({"timezone": "Mars/Olympus"}, "programs.p.timezone: unknown IANA time zone"),
    ({"hedge_ratio": "1.5"}, "programs.p.hedge_ratio: must be a fraction"),
    ({"hedge_ratio": 0.5}, "programs.p.hedge_ratio: must be a quoted decimal"),
    ({"put_strike": None}, "put_strike: a collar program needs a put strike"),
    ({"call_strike": "30000", "put_strike": "35000"}, "call_strike: 30000 must be above the put strike"),
    ({"strategy": "future"}, "call_strike: only a collar or a future_call has a call strike"),
    ({"mandate": "nope"}, "programs.p.mandate: unknown mandate 'nope'"),
    ({"dealers": ["desk-z"]}, "programs.p.dealers: desk-z not configured"),
    ({"hedge_rato": "0.5"}, "programs.p.hedge_rato: Extra inputs are not permitted"),
    ({"forecast": {"hashrate": "5 GH/s"}}, "programs.p.forecast.hashrate: must be a number with a unit"),
    ({"forecast": {"uptime": "1.5"}}, "programs.p.forecast.uptime: must be a fraction of time in \\(0, 1\\]"),
    ({"put_strike": "-5"}, "programs.p.put_strike: must be a positive price"),
])
def test_errors_name_the_field(override: dict[str, Any], message: str) -> None:
    data = prog(**override)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        parse_config(config(programs={"p": data}), "rfq.toml")


def test_a_missing_forecast_input_names_the_program() -> None:
    with pytest.raises(ConfigError, match=r"programs\.p\.forecast\.difficulty: is required"):
        parse_config(config(forecast={"hashrate": "1 EH/s"}, programs={"p": prog()}))


def test_a_program_name_must_be_usable_in_ids() -> None:
    with pytest.raises(ConfigError, match=r"programs\.a:b: a program name is letters"):
        parse_config(config(programs={"a:b": prog()}))


def test_forecast_override_is_field_by_field() -> None:
    defaults = ForecastConfig.model_validate({"hashrate": "1 EH/s", "difficulty": "1000",
                                              "fees_per_block": "0.1"})
    override = ForecastConfig.model_validate({"difficulty": "2000"})
    inputs = resolve_forecast(defaults, override)
    assert (inputs.hashrate, inputs.difficulty, inputs.fees_per_block) == (Decimal("1E18"), Decimal(2000),
                                                                           Decimal("0.1"))


def test_ndf_program_defaults_to_hashprice_and_whole_ph_lots() -> None:
    ndf = {"strategy": "ndf_short", "mandate": "treasury", "dealers": ["desk-a"], "hedge_ratio": "0.9",
           "schedule": "0 14 * * 5L"}
    p = parse_config(config(programs={"ndf": ndf})).programs["ndf"]
    assert p.code == "HASHPRICE" and p.lot == 1
