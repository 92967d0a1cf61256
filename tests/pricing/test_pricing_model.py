"""The pure pricing models: normal CDF, Black-76, futures carry, package values and notionals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_engine.domain.errors import RfqError, ValidationError
from rfq_engine.domain.instruments import (
    Future,
    HashpriceNdf,
    Option,
    OptionType,
    Perpetual,
    Spot,
)
from rfq_engine.domain.pricing import (
    MarketSnapshot,
    PriceUnavailable,
    black76,
    fair_price,
    forward_price,
    leg_fair_prices,
    main_leg_index,
    norm_cdf,
    package_notional,
    package_value,
    reference_underlying_price,
    unit_notional,
    year_fraction,
)
from rfq_engine.domain.rfq import Direction, Leg, Package, RfqSpec, Side

TODAY = date(2026, 11, 21)
AS_OF = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
CALL, PUT = OptionType.CALL, OptionType.PUT


def snap(**over: Any) -> MarketSnapshot:
    fields: dict[str, Any] = {
        "spot": {"BTC": D("40000")},
        "vol": {"BTC": D("0.55")},
        "rate": D("0.05"),
        "as_of": AS_OF,
        "hashprice": D("60"),
    }
    fields.update(over)
    return MarketSnapshot(**fields)


def opt(strike: str, kind: OptionType, days: int = 91, underlying: str = "BTC") -> Option:
    return Option(underlying, "USD", TODAY + timedelta(days=days), D(strike), kind)


def close(a: D, b: D, tol: str) -> bool:
    return abs(a - b) <= D(tol)


# --- normal CDF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ("0", "0.5"),
        ("1.96", "0.97500210485177952"),
        ("-1", "0.15865525393145705"),
        ("3", "0.99865010196836990"),
        ("-10", "7.6198530241605260660E-24"),
        ("-40", "3.655893540915e-350"),
    ],
)
def test_norm_cdf_known_values(x: str, expected: str) -> None:
    value = norm_cdf(D(x))
    assert abs(value - D(expected)) <= abs(D(expected)) * D("1e-12")


@given(st.decimals(min_value=-12, max_value=12, places=6))
@settings(max_examples=60, deadline=None)
def test_norm_cdf_symmetric_and_monotone(x: D) -> None:
    assert close(norm_cdf(x) + norm_cdf(-x), D(1), "1e-26")
    assert norm_cdf(x + D("0.01")) >= norm_cdf(x)
    assert D(0) <= norm_cdf(x) <= D(1)


# --- Black-76 / Black-Scholes -----------------------------------------------------------------


def bs(spot: D, strike: D, vol: D, rate: D, t: D, kind: OptionType) -> D:
    """Black-Scholes as Black-76 on ``S e^{rt}`` discounted at ``e^{-rt}``."""
    return black76(spot * (rate * t).exp(), strike, vol, t, (-rate * t).exp(), kind)


def test_black_scholes_textbook_values() -> None:
    # S = K = 100, vol 20%, r = 5%, T = 1: call 10.4506, put 5.5735.
    atm = (D(100), D(100), D("0.2"), D("0.05"), D(1))
    assert close(bs(*atm, CALL), D("10.450583572185565"), "1e-14")
    assert close(bs(*atm, PUT), D("5.573526022256971"), "1e-14")
    # Hull, example 15.6: S = 42, K = 40, r = 10%, vol 20%, T = 0.5: call 4.76, put 0.81.
    hull = (D(42), D(40), D("0.2"), D("0.1"), D("0.5"))
    assert close(bs(*hull, CALL), D("4.759422392871532"), "1e-13")
    assert close(bs(*hull, PUT), D("0.808599372900092"), "1e-13")


def test_black76_without_variance_is_discounted_intrinsic() -> None:
    df = D("0.99")
    assert black76(D(110), D(100), D(0), D(1), df, CALL) == D("9.9")
    assert black76(D(110), D(100), D(0), D(1), df, PUT) == 0
    assert black76(D(90), D(100), D("0.3"), D(0), df, PUT) == D("9.9")


def test_black76_rejects_nonsense_inputs() -> None:
    with pytest.raises(ValueError, match="positive forward"):
        black76(D(0), D(100), D("0.2"), D(1), D(1), CALL)
    with pytest.raises(ValueError, match="vol >= 0"):
        black76(D(100), D(100), D("-0.2"), D(1), D(1), CALL)


@given(
    strike=st.decimals(min_value=5_000, max_value=200_000, places=0),
    days=st.integers(min_value=0, max_value=1000),
    vol=st.decimals(min_value="0.01", max_value="2.5", places=3),
    rate=st.decimals(min_value="-0.02", max_value="0.15", places=4),
)
@settings(max_examples=60, deadline=None)
def test_put_call_parity_against_the_future(strike: D, days: int, vol: D, rate: D) -> None:
    market = snap(vol={"BTC": vol}, rate=rate)
    call = fair_price(opt(str(strike), CALL, days), market, TODAY)
    put = fair_price(opt(str(strike), PUT, days), market, TODAY)
    forward = forward_price(opt(str(strike), CALL, days), market, TODAY)
    t = year_fraction(TODAY, TODAY + timedelta(days=days), floor_days=1)
    discount = (-rate * t).exp()
    assert close(call - put, discount * (forward - strike), "1e-18")


@given(
    spot=st.decimals(min_value=1_000, max_value=150_000, places=2),
    strike=st.decimals(min_value=1_000, max_value=150_000, places=0),
    vol=st.decimals(min_value="0.05", max_value="1.5", places=3),
    days=st.integers(min_value=1, max_value=730),
)
@settings(max_examples=60, deadline=None)
def test_option_values_are_monotone(spot: D, strike: D, vol: D, days: int) -> None:
    def price(kind: OptionType, s: D = spot, k: D = strike, v: D = vol) -> D:
        return fair_price(opt(str(k), kind, days), snap(spot={"BTC": s}, vol={"BTC": v}), TODAY)

    bump = D("1.01")
    # A call is worth more as spot rises or strike falls; a put the other way; both gain with vol.
    assert price(CALL, s=spot * bump) >= price(CALL)
    assert price(CALL, k=strike * bump) <= price(CALL)
    assert price(PUT, s=spot * bump) <= price(PUT)
    assert price(PUT, k=strike * bump) >= price(PUT)
    assert price(CALL, v=vol * bump) >= price(CALL)
    assert price(PUT, v=vol * bump) >= price(PUT)
    # No-arbitrage bounds: 0 <= call <= spot, 0 <= put <= strike.
    assert D(0) <= price(CALL) <= spot
    assert D(0) <= price(PUT) <= strike


def test_option_on_expiry_day_keeps_one_day_of_time_value() -> None:
    market = snap()
    today_expiry = fair_price(opt("40000", CALL, 0), market, TODAY)
    tomorrow_expiry = fair_price(opt("40000", CALL, 1), market, TODAY)
    assert today_expiry == tomorrow_expiry > 0


# --- futures, spot, NDF ---------------------------------------------------------------------


def test_future_carries_at_the_basis() -> None:
    future = Future("BTC", "USD", TODAY + timedelta(days=73))  # T = 0.2
    assert fair_price(future, snap(basis={"BTC": D("0.06")}), TODAY) == D("40480")


def test_future_basis_defaults_to_the_rate_and_may_be_negative() -> None:
    future = Future("BTC", "USD", TODAY + timedelta(days=73))
    assert fair_price(future, snap(), TODAY) == D("40400")  # 40000 * (1 + 0.05 * 0.2)
    assert fair_price(future, snap(basis={"BTC": D("-0.1")}), TODAY) == D("39200")


def test_expired_future_is_worth_spot() -> None:
    assert fair_price(Future("BTC", "USD", TODAY), snap(), TODAY) == D("40000")
    assert fair_price(Future("BTC", "USD", TODAY - timedelta(days=5)), snap(), TODAY) == D("40000")


def test_spot_perpetual_and_ndf() -> None:
    market = snap()
    assert fair_price(Spot("BTC", "USDT"), market, TODAY) == D("40000")
    assert fair_price(Perpetual("BTC", "USDT"), market, TODAY) == D("40000")
    ndf = HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30)
    assert fair_price(ndf, market, TODAY) == D("60")


def test_underlying_lookup_is_case_insensitive() -> None:
    assert fair_price(Spot("btc", "USD"), snap(spot={"btc": D(5)}), TODAY) == D(5)


# --- packages ---------------------------------------------------------------------------------


def collar() -> Package:
    return Package(
        (
            Leg(opt("35000", PUT), Side.BUY),
            Leg(opt("50000", CALL), Side.SELL),
        )
    )


def test_collar_value_is_put_minus_call_when_buying_it() -> None:
    market = snap()
    put, call = leg_fair_prices(collar(), market, TODAY)
    bought = package_value(collar(), Direction.BUY, market, TODAY)
    assert bought == put - call
    # Two-way legs are written as buying: same orientation as a buy.
    assert package_value(collar(), Direction.TWO_WAY, market, TODAY) == bought


def test_collar_value_changes_sign_with_direction() -> None:
    market = snap()
    bought = package_value(collar(), Direction.BUY, market, TODAY)
    sold = package_value(collar(), Direction.SELL, market, TODAY)
    assert sold == -bought
    # Near-costless: a small fraction of spot, either sign.
    assert abs(bought) < D("0.05") * D(40000)


def test_collar_value_sign_follows_the_strikes() -> None:
    # A put far closer to the money than the call costs more than the call earns: the buyer pays.
    market = snap()
    rich_put = Package((Leg(opt("39000", PUT), Side.BUY), Leg(opt("60000", CALL), Side.SELL)))
    assert package_value(rich_put, Direction.BUY, market, TODAY) > 0
    # And the other way round the buyer of the package receives a net premium.
    rich_call = Package((Leg(opt("25000", PUT), Side.BUY), Leg(opt("41000", CALL), Side.SELL)))
    assert package_value(rich_call, Direction.BUY, market, TODAY) < 0


def test_calendar_roll_value_is_far_minus_near() -> None:
    near = Future("BTC", "USD", TODAY + timedelta(days=30))
    far = Future("BTC", "USD", TODAY + timedelta(days=60))
    roll = Package((Leg(near, Side.BUY), Leg(far, Side.SELL)))
    market = snap(basis={"BTC": D("0.0730")})
    # Selling the roll receives far - near = 40000 * 0.073 * 30 / 365 = 240.
    assert package_value(roll, Direction.SELL, market, TODAY) == D("240")


def test_leg_ratio_scales_value() -> None:
    one = Package((Leg(Spot("BTC", "USD"), Side.BUY, D(1)),))
    two = Package((Leg(Spot("BTC", "USD"), Side.BUY, D(2)),))
    market = snap()
    assert package_value(two, Direction.BUY, market, TODAY) == 2 * package_value(
        one, Direction.BUY, market, TODAY
    )


# --- notionals --------------------------------------------------------------------------------


def test_collar_notional_counts_the_hedge_once() -> None:
    # 100 BTC collar at spot 40,000: 4,000,000 USD, not 8,000,000.
    assert package_notional(collar(), D(100), snap()) == D("4000000")


def test_ndf_notional_worked_example_b() -> None:
    # 50 PH/s for 30 days at 60 USD/PH/s/day: 1,500 contracts, 90,000 USD.
    ndf = Package((Leg(HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30), Side.SELL),))
    assert unit_notional(ndf.legs[0], snap()) == D("1800")
    assert package_notional(ndf, D(50), snap()) == D("90000")


def test_notional_of_a_spec_uses_its_quantity_unless_given() -> None:
    spec = RfqSpec.from_dict(
        {
            "legs": [
                {"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                "expiry": "2026-12-25"}, "side": "sell", "ratio": "2"},
            ],
            "direction": "sell",
            "quantity": "10",
            "quantity_unit": "BTC",
            "dealers": ["desk-a"],
        }
    )
    assert package_notional(spec, None, snap()) == D("800000")
    assert package_notional(spec, D(1), snap()) == D("80000")
    with pytest.raises(ValueError, match="needs a quantity"):
        package_notional(spec.package, None, snap())


def test_main_underlying_and_bps_base() -> None:
    market = snap()
    assert reference_underlying_price(collar(), market) == D("40000")
    ndf = Package((Leg(HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30), Side.SELL),))
    assert reference_underlying_price(ndf, market) == D("60")
    mixed = Package((Leg(Spot("BTC", "USD"), Side.BUY), Leg(Spot("BTC", "USD"), Side.SELL, D(3))))
    assert main_leg_index(mixed, market) == 1


# --- missing data and validation ------------------------------------------------------------


def test_missing_underlying_raises_a_typed_error_naming_the_instrument() -> None:
    eth = Future("ETH", "USD", date(2026, 12, 25))
    with pytest.raises(PriceUnavailable) as caught:
        fair_price(eth, snap(), TODAY)
    assert isinstance(caught.value, RfqError)
    assert caught.value.instrument == eth
    assert "future" in str(caught.value) and "ETH" in str(caught.value)
    assert "2026-12-25" in str(caught.value)


def test_missing_vol_and_hashprice() -> None:
    with pytest.raises(PriceUnavailable, match="no vol for BTC"):
        fair_price(opt("40000", CALL), snap(vol={}), TODAY)
    ndf = HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30)
    with pytest.raises(PriceUnavailable, match="no hashprice"):
        fair_price(ndf, snap(hashprice=None), TODAY)
    with pytest.raises(PriceUnavailable, match="no hashprice"):
        package_notional(Package((Leg(ndf, Side.SELL),)), D(1), snap(hashprice=None))
    with pytest.raises(PriceUnavailable, match="no spot for ETH"):
        package_value(Package((Leg(Spot("ETH", "USD"), Side.BUY),)), Direction.BUY, snap(), TODAY)


def test_snapshot_validation() -> None:
    with pytest.raises(ValidationError, match="as_of"):
        snap(as_of=datetime(2026, 11, 21))
    with pytest.raises(ValidationError, match=r"spot\.BTC"):
        snap(spot={"BTC": D(0)})
    with pytest.raises(ValidationError, match=r"vol\.BTC"):
        snap(vol={"BTC": D("-0.1")})
    with pytest.raises(ValidationError, match="hashprice"):
        snap(hashprice=D(0))


def test_snapshot_is_frozen_and_copies_its_inputs() -> None:
    spot = {"BTC": D(40000)}
    market = snap(spot=spot)
    spot["BTC"] = D(1)
    assert market.spot["BTC"] == D(40000)
    with pytest.raises(TypeError):
        market.spot["BTC"] = D(2)  # type: ignore[index]
    assert market.carry("BTC") == D("0.05")
