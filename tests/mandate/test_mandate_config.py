"""MandateConfig: the [mandates.<name>] TOML section, strict, with errors naming the field."""

from __future__ import annotations

import tomllib
from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import ValidationError

from rfq_engine.domain.instruments import InstrumentKind
from rfq_engine.mandate import MandateConfig

TOML = """
[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future", "option"]
max_tenor_days = 190
max_notional_per_rfq = "10000000"
max_notional_per_day = "20000000"
max_notional_per_month = "60000000"
min_quotes = 2
price_tolerance_bps = "200"
approval_threshold = "5000000"
max_hedge_ratio = "0.8"
approval_timeout_s = 600

[mandates.treasury.dealers]
desk-a = { credit_limit = "5000000" }
desk-b = { credit_limit = "8000000" }
"""


def raw() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(TOML)["mandates"]["treasury"]
    return data


def parse(**over: Any) -> MandateConfig:
    data = raw()
    data.update(over)
    return MandateConfig.model_validate(data)


def error_locs(**over: Any) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse(**over)
    return [tuple(e["loc"]) for e in caught.value.errors()]


def test_parses_the_documented_section() -> None:
    config = parse()
    assert config.underlyings == ["BTC"]
    assert config.instruments == [InstrumentKind.FUTURE, InstrumentKind.OPTION]
    assert config.max_tenor_days == 190
    assert config.max_notional_per_rfq == D("10000000")
    assert config.max_notional_per_day == D("20000000")
    assert config.max_notional_per_month == D("60000000")
    assert config.dealers["desk-a"].credit_limit == D("5000000")
    assert config.min_quotes == 2
    assert config.price_tolerance_bps == D("200")
    assert config.approval_threshold == D("5000000")
    assert config.max_hedge_ratio == D("0.8")
    assert config.approval_timeout_s == 600
    assert config.currency == "USD"


def test_minimal_section_has_the_documented_defaults() -> None:
    config = MandateConfig.model_validate(
        {
            "underlyings": ["btc"],
            "instruments": ["spot"],
            "max_tenor_days": 0,
            "dealers": {"desk-a": {"credit_limit": "1"}},
        }
    )
    assert config.underlyings == ["BTC"]
    assert config.min_quotes == 1
    assert config.approval_timeout_s == 900
    assert config.max_notional_per_rfq is None
    assert config.price_tolerance_bps is None
    assert config.reference_required is False


def test_reference_required_defaults_to_whether_a_tolerance_is_set() -> None:
    assert parse().reference_required is True
    assert parse(require_reference=False).reference_required is False
    assert parse(price_tolerance_bps=None).reference_required is False
    assert parse(price_tolerance_bps=None, require_reference=True).reference_required is True


@pytest.mark.parametrize(
    ("override", "loc"),
    [
        ({"max_notional_per_rfq": 10000000.0}, ("max_notional_per_rfq",)),
        ({"approval_threshold": 1.5}, ("approval_threshold",)),
        ({"max_notional_per_dya": "1"}, ("max_notional_per_dya",)),
        ({"min_quotes": 0}, ("min_quotes",)),
        ({"min_quotes": 3}, ("min_quotes",)),
        ({"min_quotes": 2.0}, ("min_quotes",)),
        ({"max_tenor_days": -1}, ("max_tenor_days",)),
        ({"max_tenor_days": "190"}, ("max_tenor_days",)),
        ({"instruments": ["future", "swap"]}, ("instruments", 1)),
        ({"instruments": []}, ("instruments",)),
        ({"underlyings": []}, ("underlyings",)),
        ({"underlyings": ["BTC", "btc"]}, ("underlyings",)),
        ({"max_hedge_ratio": "1.2"}, ("max_hedge_ratio",)),
        ({"max_hedge_ratio": "0"}, ("max_hedge_ratio",)),
        ({"price_tolerance_bps": "-5"}, ("price_tolerance_bps",)),
        ({"require_reference": "yes"}, ("require_reference",)),
        ({"approval_timeout_s": 0}, ("approval_timeout_s",)),
        ({"approval_timeout_s": "900"}, ("approval_timeout_s",)),
        ({"dealers": {}}, ("dealers",)),
        ({"dealers": {"desk-a": {"credit_limit": 5e6}}}, ("dealers", "desk-a", "credit_limit")),
        (
            {"dealers": {"desk-a": {"credit_limit": "5", "limit": "1"}}},
            ("dealers", "desk-a", "limit"),
        ),
        ({"dealers": {"desk-a": {}}}, ("dealers", "desk-a", "credit_limit")),
    ],
)
def test_errors_name_the_field(override: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    assert loc in error_locs(**override)


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ValidationError) as caught:
        MandateConfig.model_validate({})
    missing = {e["loc"][0] for e in caught.value.errors()}
    assert missing == {"underlyings", "instruments", "max_tenor_days", "dealers"}


def test_float_money_error_says_to_quote_it() -> None:
    with pytest.raises(ValidationError, match="quoted decimal string"):
        parse(max_notional_per_day=2e7)


def test_min_quotes_above_the_dealer_count_explains_why() -> None:
    with pytest.raises(ValidationError, match="no RFQ could ever be awarded"):
        parse(min_quotes=3)


def test_config_is_frozen() -> None:
    config = parse()
    with pytest.raises(ValidationError):
        config.min_quotes = 1
