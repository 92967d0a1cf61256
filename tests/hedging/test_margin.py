"""Collateral and margin per OTC desk: Luxor's worked example (DOMAIN.md, C), variation margin
against threshold and minimum transfer, haircuts, the margin-call forecast, config validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.config import ConfigError, parse_config
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Future, HashpriceNdf, instrument_to_dict
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.hedging.margin import (
    CollateralAgreement,
    collateral_value,
    desk_margin,
    initial_margin,
    margin_call,
    margin_forecast,
    margin_report,
    ndf_notional,
    position_notional,
    variation_margin,
)
from rfq_engine.hedging.positions import TradeRecord, build_positions

D = Decimal
TODAY = date(2026, 12, 10)
NDF = HashpriceNdf("HASHPRICE", "USD", date(2027, 1, 1), 30)
NDF_BTC = HashpriceNdf("HASHPRICE", "BTC", date(2027, 1, 1), 31)
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def luxor(**overrides: Any) -> CollateralAgreement:
    data: dict[str, Any] = {"initial_margin": {"USD": "0.35", "BTC": "0.18"}, "threshold": "10000",
                            "minimum_transfer": "5000", "eligible": {"USD": "0", "BTC": "0.2"},
                            "posted": {"USD": "63000"}}
    data.update(overrides)
    return CollateralAgreement.model_validate(data)


def market(hashprice: str = "60", btc: str = "40000") -> MarketSnapshot:
    return MarketSnapshot(spot={"BTC": D(btc)}, vol={"BTC": D("0.5")}, rate=D(0),
                          basis={"BTC": D(0)}, hashprice=D(hashprice), as_of=T0)


def fill(instrument: Any, side: str, quantity: str, price: str, dealer: str = "luxor",
         n: int = 1) -> TradeRecord:
    unit = "PH/s/day" if isinstance(instrument, HashpriceNdf) else "BTC"
    spec = RfqSpec.from_dict({
        "legs": [{"instrument": instrument_to_dict(instrument), "side": side}], "direction": side,
        "quantity": quantity, "quantity_unit": unit, "dealers": [dealer], "requester": "alice",
        "mandate": "treasury"})
    return TradeRecord(f"f{n}", f"r{n}", spec, D(price), D(quantity), T0 + timedelta(hours=n),
                       dealer_id=dealer)


# ------------------------------------------------------------------------------ worked example C


def test_luxor_initial_margin_in_usd_and_in_btc() -> None:
    agreement = luxor()
    usd = ndf_notional(D(100), 30, D(60))
    assert usd == D(180000)
    assert initial_margin(usd, "USD", agreement) == D(63000)
    btc = ndf_notional(D(100), 31, D("0.00080"))
    assert btc == D("2.48")
    assert initial_margin(btc, "BTC", agreement) == D("0.4464")
    with pytest.raises(ValidationError, match="no rate for a USDT notional"):
        initial_margin(usd, "USDT", agreement)


def test_luxor_example_from_fills_one_desk_both_units() -> None:
    trades = [fill(NDF, "sell", "100", "60", n=1), fill(NDF_BTC, "sell", "100", "0.00080", n=2)]
    positions = build_positions(trades, market(), TODAY)
    assert {p.key: position_notional(p) for p in positions} == {
        "HASHPRICE-USD-NDF-2027-01-01-30D": (D(180000), "USD"),
        "HASHPRICE-BTC-NDF-2027-01-01-31D": (D("2.48"), "BTC")}
    margin = desk_margin("luxor", luxor(), positions, D(40000)).to_dict()
    rows = {r["instrument"]: r for r in margin["positions"]}
    assert rows["HASHPRICE-USD-NDF-2027-01-01-30D"]["initial_margin"] == "63000"
    assert rows["HASHPRICE-BTC-NDF-2027-01-01-31D"]["initial_margin"] == "0.4464"
    assert rows["HASHPRICE-BTC-NDF-2027-01-01-31D"]["initial_margin_usd"] == "17856"  # 0.4464 x 40,000
    # the market's hashprice is USD: the BTC-unit NDF is not marked without its index
    assert margin["unmarked"] == ["HASHPRICE-BTC-NDF-2027-01-01-31D"]
    assert margin["initial_margin_usd"] == "80856" and margin["mtm_usd"] == "0"
    assert margin["required_usd"] == "80856" and margin["posted_value_usd"] == "63000"
    # 17,856 short, in BTC after the 20% haircut: 17856 / (40000 x 0.8) = 0.558 BTC
    assert margin["call"] == {"kind": "deliver", "usd": "17856", "btc": "0.558"}


# ------------------------------------------------------------------------------ variation margin


def test_variation_margin_threshold_and_minimum_transfer() -> None:
    agreement = luxor()
    trades = [fill(NDF, "sell", "100", "60")]
    # hashprice 60 -> 72: the short loses 12 x 100 x 30 = 36,000; 26,000 above the threshold
    margin = desk_margin("luxor", agreement, build_positions(trades, market("72", "48000"), TODAY), D(48000))
    assert (margin.mtm_usd, margin.variation_margin_usd, margin.required_usd) == (
        D(-36000), D(26000), D(89000))
    # 26,000 USD, or 26000 / (48000 x 0.8) = 0.67708333... BTC, rounded up to the satoshi
    assert margin.call == {"kind": "deliver", "usd": D(26000), "btc": D("0.67708334")}
    assert variation_margin(D(-9000), agreement) == 0  # within the threshold
    assert variation_margin(D(5000), agreement) == 0  # in our favour: one-way, the miner posts
    assert margin_call(D(67999), D(63000), agreement, D(40000))["kind"] == "none"  # 4,999 < MTA
    assert margin_call(D(68000), D(63000), agreement, D(40000))["usd"] == D(5000)
    assert margin_call(D(50000), D(63000), agreement, D(40000)) == {"kind": "return", "usd": D(13000),
                                                                     "btc": D("0.40625")}
    assert margin_call(D(60000), D(63000), agreement, D(40000))["kind"] == "none"
    assert margin_call(D("0.001"), D(0), luxor(minimum_transfer="0", eligible={"USD": "0"}),
                       D(40000)) == {"kind": "deliver", "usd": D("0.01"), "btc": None}


def test_collateral_value_after_haircuts() -> None:
    agreement = luxor()
    assert collateral_value({"USD": D(1000), "BTC": D(2)}, agreement, D(40000)) == D(65000)  # 1,000 + 64,000
    assert collateral_value({"BTC": D(2)}, agreement, D(36000)) == D(57600)


# ------------------------------------------------------------------------------ forecast


def test_forecast_short_ndf_called_as_hashprice_rises_daily() -> None:
    trades = [fill(NDF, "sell", "100", "60")]
    (up, down) = margin_forecast({"luxor": luxor()}, trades, market(), TODAY, [D("0.2"), D("-0.2")], days=2)
    (desk,) = up["desks"]
    # day 1 (+10%): MTM -18,000, VM 8,000, required 71,000 vs 63,000: 8,000 called and met
    # day 2 (+20%): MTM -36,000, VM 26,000, required 89,000 vs 71,000: 18,000 more
    assert [(c["day"], c["date"], c["mtm_usd"], c["required_usd"], c["usd"]) for c in desk["calls"]] == [
        (1, "2026-12-11", "-18000", "71000", "8000"), (2, "2026-12-12", "-36000", "89000", "18000")]
    assert desk["calls"][0]["btc"] == "0.22727273"  # 8000 / (44000 x 0.8), rounded up
    assert (desk["first_call_day"], desk["total_called_usd"], desk["posted_after"]) == (1, "26000",
                                                                                        {"USD": "89000"})
    assert down["desks"][0]["calls"] == [] and down["desks"][0]["first_call_day"] is None
    # a larger minimum transfer defers the first call to day 2, which then calls all 26,000
    (late,) = margin_forecast({"luxor": luxor(minimum_transfer="10000")}, trades, market(), TODAY,
                              [D("0.2")], days=2)
    assert [(c["day"], c["usd"]) for c in late["desks"][0]["calls"]] == [(2, "26000")]


def test_forecast_btc_collateral_loses_value_when_btc_falls() -> None:
    agreement = luxor(threshold="0", posted={"BTC": "2"}, deliver="BTC")
    trades = [fill(NDF, "sell", "100", "60")]
    # spot -10%, hashprice -10%: the short gains 18,000 (no VM) but 2 BTC are worth
    # 2 x 36,000 x 0.8 = 57,600 against 63,000 of initial margin: 5,400 called, 0.1875 BTC
    (scenario,) = margin_forecast({"luxor": agreement}, trades, market(), TODAY, [D("-0.1")], days=1)
    (call,) = scenario["desks"][0]["calls"]
    assert (call["posted_value_usd"], call["usd"], call["btc"]) == ("57600", "5400", "0.1875")
    assert scenario["desks"][0]["posted_after"] == {"BTC": "2.1875"}
    assert scenario["desks"][0]["total_called_btc"] == "0.1875"


def test_report_per_desk_and_desks_without_agreement() -> None:
    future = Future("BTC", "USD", date(2027, 1, 29))
    trades = [fill(NDF, "sell", "100", "60", n=1), fill(future, "sell", "2", "40000", dealer="desk-b", n=2)]
    report = margin_report({"luxor": luxor()}, trades, market(), TODAY, [D("0.1")], days=1,
                           posted={"luxor": {"USD": D(70000)}})
    (desk,) = report["desks"]
    assert desk["dealer"] == "luxor" and desk["posted"] == {"USD": "70000"}
    assert desk["call"] == {"kind": "return", "usd": "7000", "btc": "0.21875"}
    assert report["without_agreement"] == ["desk-b"]
    assert report["agreements"]["luxor"]["initial_margin"] == {"USD": "0.35", "BTC": "0.18"}
    with pytest.raises(ValidationError, match="no collateral agreement for desk-b"):
        margin_report({"luxor": luxor()}, trades, market(), TODAY, posted={"desk-b": {}})


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(("change", "message"), [
    ({"initial_margin": {"USD": 0.35}}, "quoted decimal string"),
    ({"initial_margin": {"USD": "1.5"}}, r"initial_margin.USD: must be a fraction of notional in \[0, 1\]"),
    ({"initial_margin": {}}, "name a rate per currency"),
    ({"initial_margin": {"EUR": "0.3"}}, "'EUR' is not one of USD, BTC"),
    ({"threshold": "-1"}, "must be an amount in USD, >= 0"),
    ({"minimum_transfer": "1e20"}, "below 1E\\+15"),
    ({"eligible": {"BTC": "1"}, "posted": {}, "deliver": "BTC"}, r"haircut is a fraction in \[0, 1\)"),
    ({"eligible": {"USD": "0"}, "posted": {"BTC": "1"}}, "posted.BTC: not eligible collateral"),
    ({"posted": {"USD": "-5"}}, "posted.USD: must be >= 0"),
    ({"eligible": {"USD": "0"}, "deliver": "BTC"}, "deliver: BTC is not eligible"),
    ({"margin": "0.35"}, "Extra inputs are not permitted"),
])
def test_agreement_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        luxor(**change)


def test_config_collateral_section_names_a_configured_dealer() -> None:
    base: dict[str, Any] = {
        "market": {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.5"}, "rate": "0.05"},
        "mandates": {"treasury": {
            "underlyings": ["BTC"], "instruments": ["future"], "max_tenor_days": 90,
            "max_notional_per_rfq": "1000000", "dealers": {"luxor": {"credit_limit": "1"}}}},
        "dealers": [{"id": "luxor", "kind": "simulated"}],
    }
    config = parse_config({**base, "collateral": {"luxor": {"initial_margin": {"usd": "0.35"}}}})
    assert config.collateral["luxor"].initial_margin == {"USD": D("0.35")}
    assert config.collateral["luxor"].eligible == {"USD": 0}
    with pytest.raises(ConfigError, match="collateral: nobody not configured under"):
        parse_config({**base, "collateral": {"nobody": {"initial_margin": {"USD": "0.35"}}}})
    with pytest.raises(ConfigError, match=r"collateral.luxor.threshold: .*quoted decimal string"):
        parse_config({**base, "collateral": {"luxor": {"initial_margin": {"USD": "0.35"}, "threshold": 1.5}}})
