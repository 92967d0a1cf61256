"""The risk monitor's figures on worked examples (docs/risk.md): an inverse future's margin
call and liquidation, a linear one, a funding accrual, Luxor's exposure against a credit line,
coverage, liquidity, the collateral a planned RFQ needs, and the [risk] config's bounds."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticError

from rfq_engine.config import ConfigError, parse_config
from rfq_engine.hedging.risk import (
    RiskConfig,
    collateral_shortfalls,
    funding_paid,
    inverse_margin,
    linear_margin,
    risk_report,
)
from tests.hedging.test_margin import NDF, TODAY, fill, luxor, market

D = Decimal


def test_inverse_future_margin_call_and_liquidation() -> None:
    # short 400,000 USD of an inverse BTC future at 40,000 (10 BTC), 2.5 BTC collateral, IM 10%, MM 5%
    at_50k = inverse_margin(D(-400000), D(40000), D(50000), D("2.5"), D("0.1"), D("0.05"))
    assert at_50k["equity"] == "0.5"  # 2.5 + (-400000) x (1/40000 - 1/50000) = 2.5 - 2
    assert at_50k["initial_margin"] == "0.8" and at_50k["maintenance_margin"] == "0.4"
    assert at_50k["usage"] == "0.8" and at_50k["call"] == "0.3" and at_50k["call_usd"] == "15000"
    # liquidation: 400000 x (0.05 - 1) / (2.5 - 10) = 50,666.67; 1.33% above the mark
    assert D(at_50k["liquidation_price"]).quantize(D("0.01")) == D("50666.67")
    assert D(at_50k["distance"]).quantize(D("0.0001")) == D("0.0133")
    at_48k = inverse_margin(D(-400000), D(40000), D(48000), D("2.5"), D("0.1"), D("0.05"))
    assert D(at_48k["equity"]).quantize(D("1e-8")) == D("0.83333333") and at_48k["call"] == "0"
    # a short of no more than its collateral in coin is never liquidated
    covered = inverse_margin(D(-400000), D(40000), D(80000), D(10), D("0.1"), D("0.05"))
    assert covered["liquidation_price"] is None
    long = inverse_margin(D(400000), D(40000), D(40000), D("2.5"), D("0.1"), D("0.05"))
    assert D(long["liquidation_price"]).quantize(D("0.01")) == D("33600.00")  # 400000 x 1.05 / 12.5


def test_linear_future_margin() -> None:
    figures = linear_margin(D(-10), D(40000), D(44000), D(100000), D("0.1"), D("0.05"))
    assert figures["equity"] == "60000" and figures["initial_margin"] == "44000"
    assert figures["maintenance_margin"] == "22000" and figures["call"] == "0"
    assert D(figures["liquidation_price"]).quantize(D("0.01")) == D("47619.05")  # 500000 / 10.5
    called = linear_margin(D(-10), D(40000), D(44000), D(60000), D("0.1"), D("0.05"))
    assert called["call"] == "24000" and called["usage"] == "1.1"


def test_funding_accrual() -> None:
    # short 10 BTC perpetual at 40,000, +0.01% every 8 hours, 30 days: the short receives 3,600 USD
    assert funding_paid(D(-10), D(40000), D("0.0001"), 90) == D(-3600)
    assert funding_paid(D(10), D(40000), D("0.0001"), 3) == D(120)


def _report(hashprice: str, line: str = "70000", posted: str = "63000") -> tuple[dict[str, Any], list[Any]]:
    return risk_report(cfg=RiskConfig(), trades=[fill(NDF, "sell", "100", "60")],
                       snapshot=market(hashprice, btc="48000"), today=TODAY,
                       agreements={"luxor": luxor(posted={"USD": posted})},
                       credit_lines={"luxor": (D(line), "treasury")})


def test_luxor_exposure_margin_usage_and_call() -> None:
    report, alerts = _report("72")
    (party,) = report["counterparties"]
    # MTM -36,000 (the desk is owed); exposure to the desk = max(0, MTM) + the 63,000 posted as IM
    assert party["mtm_usd"] == "-36000" and party["exposure_usd"] == "63000"
    assert party["usage"] == "0.9" and party["mandate"] == "treasury"
    (desk,) = report["desks"]
    assert desk["required_usd"] == "89000" and desk["call"]["usd"] == "26000"
    assert {(a.kind, a.subject) for a in alerts} == {("credit_usage", "luxor"), ("margin_usage", "luxor"),
                                                     ("margin_call", "luxor")}
    falling, alerts = _report("50", line="100000")
    (party,) = falling["counterparties"]
    assert party["mtm_usd"] == "30000" and party["exposure_usd"] == "93000" and party["usage"] == "0.93"
    assert {a.kind for a in alerts} == {"credit_usage", "margin_usage"}  # IM 63,000 uses all 63,000 posted
    quiet, alerts = _report("60", line="1000000", posted="100000")
    assert alerts == [] and quiet["counterparties"][0]["usage"] == "0.063"


def test_coverage_and_liquidity() -> None:
    rows = [{"program": "p", "period": "2026-12", "coverage": "0.3", "target_ratio": "0.5"},
            {"program": "q", "period": "2026-12", "coverage": "0.45", "target_ratio": "0.5"}]
    report, alerts = risk_report(cfg=RiskConfig.model_validate({"depth": {"HASHPRICE-USD-NDF": "200"},
                                                                "margin_usage": "1"}),
                                 trades=[fill(NDF, "sell", "100", "60")], snapshot=market(), today=TODAY,
                                 agreements={}, credit_lines={}, coverage=rows)
    assert report["liquidity"] == [{"instrument": "HASHPRICE-USD-NDF-2027-01-01-30D", "quantity": "-100",
                                    "depth": "200", "ratio": "0.5"}]
    assert sorted((a.kind, a.subject) for a in alerts) == [("coverage", "p"),
                                                           ("liquidity", "HASHPRICE-USD-NDF-2027-01-01-30D")]


def test_collateral_a_planned_rfq_needs() -> None:
    planned = [fill(NDF, "sell", "100", "60").spec]
    assert collateral_shortfalls({"luxor": luxor()}, [], planned, market(), TODAY) == []  # 63,000 posted
    (short,) = collateral_shortfalls({"luxor": luxor(posted={"USD": "50000"})}, [], planned, market(), TODAY)
    assert short["dealer"] == "luxor" and short["required_usd"] == "63000" and short["short_usd"] == "13000"
    assert short["short_btc"] == "0.40625"  # 13,000 / (40,000 x 0.8)
    assert collateral_shortfalls({"other": luxor(posted={})}, [], planned, market(), TODAY) == []  # not asked


@pytest.mark.parametrize("bad", [{"credit_usage": 0.8}, {"credit_usage": "1.5"}, {"liquidity_ratio": "0"},
                                 {"webhook_url": "ftp://x"}, {"webhook_timeout_ms": 50}, {"typo": "1"},
                                 {"venues": {"v": {"collateral": "1", "initial_margin": "0.1",
                                                   "maintenance_margin": "0"}}}])
def test_risk_config_is_strict_and_bounded(bad: dict[str, Any]) -> None:
    with pytest.raises(PydanticError):
        RiskConfig.model_validate(bad)


def test_risk_venues_name_configured_dealers() -> None:
    text = (Path(__file__).parents[2] / "rfq.example.toml").read_text() + """
[risk.venues.nowhere]
collateral = "2.5"
initial_margin = "0.1"
maintenance_margin = "0.05"
"""
    with pytest.raises(ConfigError, match=r"risk\.venues: nowhere not configured"):
        parse_config(tomllib.loads(text))


def test_a_venue_account_in_the_report_inverse_future_and_perpetual_funding() -> None:
    from dataclasses import replace as with_

    from rfq_engine.domain.instruments import Future, Perpetual
    from rfq_engine.hedging.positions import ContractTerms
    from tests.hedging.test_margin import TODAY as DAY

    future = Future("BTC", "USD", DAY + timedelta(days=60))
    inverse = with_(fill(future, "sell", "10", "40000", dealer="deribit", n=1),
                    contract=ContractTerms(settlement="BTC", inverse=True, notional=D(400000)))
    perp = fill(Perpetual("BTC", "USD"), "sell", "10", "40000", dealer="bybit", n=2)
    cfg = RiskConfig.model_validate({"venues": {
        "deribit": {"collateral": "2.5", "initial_margin": "0.1", "maintenance_margin": "0.05"},
        "bybit": {"collateral": "100000", "initial_margin": "0.1", "maintenance_margin": "0.05",
                  "funding_rate": "0.0001"}}})
    report, alerts = risk_report(cfg=cfg, trades=[inverse, perp], snapshot=market(btc="50000"), today=DAY,
                                 agreements={}, credit_lines={})
    rows = {r["venue"]: r for r in report["venues"]}
    coin = rows["deribit"]  # worked example: the inverse future's margin call at 50,000
    assert coin["inverse"] is True and coin["mark"] == "50000" and coin["equity"] == "0.5"
    assert coin["call"] == "0.3" and coin["call_usd"] == "15000" and coin["usage"] == "0.8"
    subject = f"deribit:{coin['instrument']}"
    assert {(a.kind, a.subject) for a in alerts} >= {("margin_call", subject), ("margin_usage", subject),
                                                     ("liquidation_distance", subject)}
    linear = rows["bybit"]  # short 10 at 40,000 marked 50,000: equity 100,000 - 100,000 = 0
    assert linear["equity"] == "0" and linear["usage"] is None
    (funding,) = report["funding"]  # a short receives +0.01% three times a day: 150 USD at 50,000
    assert funding["paid_usd_per_day"] == "-150" and funding["instrument"] == "BTC-USD-PERP"
    assert funding["venue"] == "bybit"
    assert report["counterparties"] == []  # venues are margin accounts, not credit lines
