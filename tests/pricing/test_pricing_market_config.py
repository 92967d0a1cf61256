"""The [market] config section: strict parsing, decimals as strings, the snapshot it makes."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import ValidationError

from rfq_engine.pricing.config import MarketConfig

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

TOML = """
[market]
spot = { BTC = "40000" }
vol = { BTC = "0.55" }
rate = "0.05"
basis = { BTC = "0.06" }
hashprice = "55"
max_age_s = 30
"""


def parse(**over: Any) -> MarketConfig:
    data: dict[str, Any] = tomllib.loads(TOML)["market"]
    data.update(over)
    return MarketConfig.model_validate(data)


def locs(exc: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_parses_the_documented_section() -> None:
    config = parse()
    assert config.spot == {"BTC": D("40000")}
    assert config.vol == {"BTC": D("0.55")}
    assert config.rate == D("0.05")
    assert config.basis == {"BTC": D("0.06")}
    assert config.hashprice == D("55")
    assert config.max_age == timedelta(seconds=30)


def test_to_snapshot() -> None:
    snapshot = parse().to_snapshot(NOW)
    assert snapshot.as_of == NOW
    assert snapshot.spot["BTC"] == D("40000")
    assert snapshot.carry("BTC") == D("0.06")
    assert snapshot.hashprice == D("55")


def test_optional_fields_and_lower_case_codes() -> None:
    config = MarketConfig.model_validate({"spot": {"btc": "40000"}, "rate": "0.05"})
    assert config.spot == {"BTC": D("40000")}
    assert config.hashprice is None and config.basis == {} and config.vol == {}
    assert config.max_age_s == 30
    assert config.to_snapshot(NOW).carry("BTC") == D("0.05")


def test_duration_may_be_a_float() -> None:
    assert parse(max_age_s=2.5).max_age == timedelta(seconds=2.5)


@pytest.mark.parametrize(
    ("override", "loc"),
    [
        ({"rate": 0.05}, ("rate",)),
        ({"spot": {"BTC": 40000.5}}, ("spot", "BTC")),
        ({"hashprice": 55.0}, ("hashprice",)),
        ({"spot": {"BTC": "0"}}, ("spot", "BTC")),
        ({"vol": {"BTC": "-0.1"}}, ("vol",)),
        ({"max_age_s": 0}, ("max_age_s",)),
        ({"max_age_s": "30"}, ("max_age_s",)),
        ({"max_age_s": True}, ("max_age_s",)),
        ({"spots": {"BTC": "1"}}, ("spots",)),
    ],
)
def test_errors_name_the_field(override: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(**override)
    assert loc in locs(caught.value)


def test_float_price_error_says_to_quote_it() -> None:
    with pytest.raises(ValidationError, match="quoted decimal string"):
        parse(rate=0.05)


def test_rate_is_required() -> None:
    with pytest.raises(ValidationError) as caught:
        MarketConfig.model_validate({"spot": {"BTC": "1"}})
    assert ("rate",) in locs(caught.value)
