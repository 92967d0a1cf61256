"""The production forecast and hashprice (DOMAIN.md formulas), with units and validation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.hedging.forecast import (
    TWO_32,
    ForecastInputs,
    Period,
    btc_per_day,
    difficulty_on,
    forecast_period,
    format_hashrate,
    hashprice_btc,
    hashprice_usd,
    parse_hashrate,
)

D = Decimal
DIFFICULTY = D("100000000000000")  # 1e14


def test_two_to_the_32_is_exact() -> None:
    assert D(4294967296) == TWO_32


def test_one_eh_at_a_given_difficulty() -> None:
    inputs = ForecastInputs(hashrate=parse_hashrate("1 EH/s"), difficulty=DIFFICULTY)
    # 1e18 * 86400 * 3.125 / (1e14 * 2^32) = 2.7e9 / 2^32, a terminating decimal
    exact = Fraction(10**18 * 86400 * 3125, 1000) / (Fraction(10**14) * 2**32)
    assert btc_per_day(inputs) == D("0.628642737865447998046875")
    assert Fraction(btc_per_day(inputs)) == exact


def test_fees_and_uptime_scale_linearly() -> None:
    base = ForecastInputs(hashrate=parse_hashrate("1 EH/s"), difficulty=DIFFICULTY)
    more = ForecastInputs(hashrate=parse_hashrate("1 EH/s"), difficulty=DIFFICULTY,
                          fees_per_block=D("0.125"), uptime=D("0.95"))
    with localcontext() as ctx:
        ctx.prec = 28
        assert btc_per_day(more) == btc_per_day(base) * D("3.25") / D("3.125") * D("0.95")


def test_the_whole_network_mines_144_blocks_a_day() -> None:
    network = DIFFICULTY * TWO_32 / 600  # the hashrate that finds one block per 600 s
    inputs = ForecastInputs(hashrate=network, difficulty=DIFFICULTY, fees_per_block=D("0.2"))
    assert btc_per_day(inputs) == 144 * D("3.325")


def test_hashprice_btc_and_usd() -> None:
    btc = hashprice_btc(DIFFICULTY, D("3.125"))
    assert btc == D("0.000628642737865447998046875")  # 1 PH/s = 1/1000 EH/s
    assert hashprice_usd(DIFFICULTY, D("3.125"), D(100000)) == D("62.8642737865447998046875")
    inputs = ForecastInputs(hashrate=parse_hashrate("50 PH/s"), difficulty=DIFFICULTY)
    assert btc_per_day(inputs) == 50 * btc


@pytest.mark.parametrize(("text", "hashes"), [
    ("800 TH/s", D("8E14")), ("50 PH/s", D("5E16")), ("1.2 EH/s", D("1.2E18")), ("50ph/s", D("5E16")),
])
def test_hashrate_units(text: str, hashes: Decimal) -> None:
    assert parse_hashrate(text) == hashes


def test_hashrate_formatting() -> None:
    assert format_hashrate(D("5E16")) == "50 PH/s"
    assert format_hashrate(D("1.2E18")) == "1.2 EH/s"
    assert format_hashrate(D("8E14")) == "800 TH/s"


@pytest.mark.parametrize("text", ["50", "50 GH/s", "PH/s", "-5 PH/s", "x PH/s", 50])
def test_bad_hashrate_names_the_units(text: object) -> None:
    with pytest.raises(ValidationError, match=r"hashrate: .*(TH/s|PH/s)"):
        parse_hashrate(text)


@pytest.mark.parametrize(("field", "value", "unit"), [
    ("difficulty", D(0), "difficulty units"),
    ("uptime", D("1.2"), r"\(0, 1\]"),
    ("uptime", D(0), r"\(0, 1\]"),
    ("fees_per_block", D(-1), "BTC per block"),
    ("block_subsidy", D(-1), "BTC per block"),
    ("difficulty_change", D(-1), "per adjustment"),
    ("hashrate", D(0), "H/s"),
])
def test_inputs_are_validated_with_units(field: str, value: Decimal, unit: str) -> None:
    kwargs = {"hashrate": D("5E16"), "difficulty": DIFFICULTY, field: value}
    with pytest.raises(ValidationError, match=f"{field}: .*{unit}"):
        ForecastInputs(**kwargs)  # type: ignore[arg-type]


def test_a_month_without_difficulty_change() -> None:
    inputs = ForecastInputs(hashrate=parse_hashrate("1 EH/s"), difficulty=DIFFICULTY)
    period = Period(2026, 12)
    forecast = forecast_period(inputs, period.start, period.end)
    assert forecast.days == 31
    assert forecast.btc == 31 * D("0.628642737865447998046875")
    assert forecast.effective_hashrate_ph == D(1000)


def test_difficulty_steps_at_each_adjustment() -> None:
    inputs = ForecastInputs(hashrate=parse_hashrate("1 EH/s"), difficulty=DIFFICULTY,
                            difficulty_change=D("0.02"))
    as_of = date(2026, 12, 1)
    assert difficulty_on(inputs, date(2026, 12, 14), as_of) == DIFFICULTY
    assert difficulty_on(inputs, date(2026, 12, 15), as_of) == DIFFICULTY * D("1.02")
    assert difficulty_on(inputs, date(2026, 12, 29), as_of) == DIFFICULTY * D("1.0404")
    forecast = forecast_period(inputs, date(2026, 12, 1), date(2027, 1, 1), as_of=as_of)
    b = Fraction(2_700_000_000, 2**32)
    exact = 14 * b + 14 * b / Fraction("1.02") + 3 * b / Fraction("1.0404")
    assert abs(Fraction(forecast.btc) - exact) < Fraction(1, 10**24)
    assert forecast.difficulty_last == DIFFICULTY * D("1.0404")


def test_explicit_next_adjustment_date() -> None:
    inputs = ForecastInputs(hashrate=D("5E16"), difficulty=DIFFICULTY, difficulty_change=D("-0.1"),
                            next_adjustment=date(2026, 12, 3))
    assert difficulty_on(inputs, date(2026, 12, 2), date(2026, 11, 27)) == DIFFICULTY
    assert difficulty_on(inputs, date(2026, 12, 3), date(2026, 11, 27)) == DIFFICULTY * D("0.9")
    assert difficulty_on(inputs, date(2026, 12, 17), date(2026, 11, 27)) == DIFFICULTY * D("0.81")


def test_periods() -> None:
    assert str(Period(2026, 12).plus(1)) == "2027-01"
    assert Period(2027, 1).plus(-1) == Period(2026, 12)
    assert Period.parse("2028-02").days == 29
    assert Period.of(date(2026, 11, 27)) == Period(2026, 11)
    with pytest.raises(ValidationError, match="period: must be a month YYYY-MM"):
        Period.parse("2026-13")
