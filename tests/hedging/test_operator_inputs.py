"""Operator inputs (rfq_engine.hedging.inputs): the collateral posted and the production realized
as audit events, validated, the latest one counting; the risk report, the collateral gate, the
performance report and the hedge file use them and say so (worked examples to the cent)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.events import CollateralPosted, decode, encode
from rfq_engine.domain.instruments import Future
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.inputs import (
    OperatorInputs,
    Posted,
    collateral_event,
    latest_inputs,
    production_event,
)
from rfq_engine.hedging.performance import PeriodBook, program_performance
from rfq_engine.hedging.risk import RiskConfig, collateral_shortfalls, risk_report
from rfq_engine.hedging.terms import ContractTerms
from tests.hedging.kit import program
from tests.hedging.test_margin import NDF, TODAY, fill, luxor, market

D = Decimal
AT = datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=UTC)
VENUE = {"collateral": "2.5", "initial_margin": "0.1", "maintenance_margin": "0.05"}


def _latest(*events: Any) -> OperatorInputs:
    return latest_inputs((i + 1, AT.replace(second=i), e) for i, e in enumerate(events))


def _posted(dealer: str, by: str = "erin", **amounts: str) -> CollateralPosted:
    return collateral_event(dealer, amounts, agreements={"luxor": luxor()}, venues={"deribit": VENUE},
                            by=by, note="wire")


def test_collateral_input_is_validated_and_the_latest_counts() -> None:
    event = _posted("luxor", USD="90000", btc="1.5")
    assert encode(event) == {"dealer": "luxor", "account": "desk", "amounts": {"BTC": "1.5", "USD": "90000"},
                             "posted_by": "erin", "note": "wire"}
    assert decode(event.TYPE, encode(event)) == event
    assert _posted("deribit", BTC="3").account == "venue"
    for dealer, amounts, field in [("nobody", {"USD": "1"}, "dealer"), ("luxor", {}, "amounts"),
                                   ("luxor", {"ETH": "1"}, "amounts.ETH"),
                                   ("luxor", {"USD": "-1"}, "amounts.USD"),
                                   ("luxor", {"USD": 1.5}, "amounts.USD"),
                                   ("luxor", {"USD": "1e999"}, "amounts.USD"),
                                   ("deribit", {"b t c": "1"}, "amounts.B T C")]:
        with pytest.raises(ValidationError) as caught:
            collateral_event(dealer, amounts, agreements={"luxor": luxor()}, venues={"deribit": VENUE},
                             by="erin")
        assert caught.value.field == field, (dealer, amounts)
    with pytest.raises(ValidationError, match="note"):
        collateral_event("luxor", {"USD": "1"}, agreements={"luxor": luxor()}, venues={}, by="e",
                         note="x" * 1001)
    inputs = _latest(_posted("luxor", USD="90000"), _posted("luxor", by="frank", USD="70000"))
    assert inputs.collateral["luxor"].amounts == {"USD": D(70000)}  # a correction is a later event
    assert inputs.collateral["luxor"].source()["posted_by"] == "frank"


def test_production_input_is_validated() -> None:
    programs = {"monthly": program()}
    event = production_event("monthly", "2026-11", "31.2", programs=programs, by="erin")
    assert (event.quantity, event.unit, event.period) == (D("31.2"), "BTC", "2026-11")
    for args, field in [(("nope", "2026-11", "1"), "program"), (("monthly", "2026-13", "1"), "period"),
                        (("monthly", "Nov", "1"), "period"), (("monthly", "2026-11", "-1"), "quantity"),
                        (("monthly", "2026-11", True), "quantity")]:
        with pytest.raises(ValidationError) as caught:
            production_event(*args, programs=programs, by="erin")
        assert caught.value.field == field, args
    inputs = _latest(event, replace(event, quantity=D("30.9")))
    assert inputs.realized("monthly")["2026-11"].quantity == D("30.9")


def test_risk_report_uses_the_posted_collateral_of_a_desk_and_says_so() -> None:
    # Luxor NDF: 100 PH/s x 30 days at 60, hashprice 72: IM 63,000 + variation 36,000 - threshold
    # 10,000 = 89,000 required; the config's 63,000 posted is a call of 26,000
    def report(posted: OperatorInputs | None) -> dict[str, Any]:
        out, _ = risk_report(cfg=RiskConfig(), trades=[fill(NDF, "sell", "100", "60")],
                             snapshot=market("72", btc="48000"), today=TODAY,
                             agreements={"luxor": luxor()}, credit_lines={},
                             posted=None if posted is None else posted.collateral)
        return dict(out["desks"][0])

    config = report(None)
    assert (config["posted_value_usd"], config["call"]["usd"]) == ("63000", "26000")
    assert config["collateral_source"] == "config" and config["posted_at"] is None
    # 80,000 USD and 0.5 BTC at 48,000 less a 20% haircut (19,200): 99,200 against 89,000
    posted = report(_latest(_posted("luxor", USD="80000", BTC="0.5")))
    assert posted["posted_value_usd"] == "99200" and D(posted["usage"]) == D(89000) / D(99200)
    assert posted["call"]["kind"] == "return" and posted["call"]["usd"] == "10200"
    assert (posted["collateral_source"], posted["posted_by"], posted["posted_seq"]) == ("posted", "erin", 1)


def test_risk_report_uses_the_posted_collateral_of_a_venue() -> None:
    # a short of 400,000 USD of an inverse future at 40,000, marked at 50,000: -2 BTC; the config's 2.5
    # BTC leaves 0.5 against 0.8 of initial margin (a call of 0.3 BTC, 15,000 USD); 2.7 BTC posted: 0.1
    trade = replace(fill(Future("BTC", "USD", TODAY.replace(month=12, day=25)), "sell", "10", "40000",
                         dealer="deribit"),
                    contract=ContractTerms(settlement="BTC", inverse=True, notional=D(400000)))
    cfg = RiskConfig.model_validate({"venues": {"deribit": VENUE}})

    def row(posted: OperatorInputs) -> dict[str, Any]:
        out, _ = risk_report(cfg=cfg, trades=[trade], snapshot=market(btc="50000"), today=TODAY,
                             agreements={}, credit_lines={}, posted=posted.collateral)
        return dict(out["venues"][0])

    config = row(OperatorInputs())
    assert (config["call"], config["call_usd"], config["collateral_source"]) == ("0.3", "15000", "config")
    posted = row(_latest(_posted("deribit", BTC="2.7")))
    assert (posted["collateral"], posted["equity"]) == ("2.7", "0.7")
    assert (posted["call"], posted["call_usd"]) == ("0.1", "5000")
    assert posted["collateral_source"] == "posted"
    usd_only = row(_latest(_posted("deribit", USD="1000")))  # not the inverse contract's coin: the config's
    assert usd_only["collateral_source"] == "config" and usd_only["call"] == "0.3"


def test_the_collateral_gate_uses_the_posted_collateral() -> None:
    planned = [fill(NDF, "sell", "100", "60").spec]
    short = collateral_shortfalls({"luxor": luxor(posted={"USD": "0"})}, [], planned, market(), TODAY)
    assert short and short[0]["short_usd"] == "63000" and short[0]["collateral_source"] == "config"
    enough = {"luxor": Posted("luxor", "desk", {"USD": D(63000)}, AT, "erin", 7)}
    assert collateral_shortfalls({"luxor": luxor(posted={"USD": "0"})}, [], planned, market(), TODAY,
                                 enough) == []
    venue_only = {"luxor": Posted("luxor", "venue", {"USD": D(63000)}, AT, "erin", 7)}  # not the desk's
    assert collateral_shortfalls({"luxor": luxor(posted={"USD": "0"})}, [], planned, market(), TODAY,
                                 venue_only)[0]["short_usd"] == "63000"


def test_performance_uses_the_realized_production_where_recorded() -> None:
    book = PeriodBook(Period.parse("2026-11"), D("31.5"), [])
    later = PeriodBook(Period.parse("2026-12"), D("32"), [])
    recorded = _latest(production_event("monthly", "2026-11", "31.2", programs={"monthly": program()},
                                        by="erin")).realized("monthly")
    out = program_performance("monthly", program(), [book, later], market(btc="40000"), TODAY,
                              recorded=recorded)
    nov, dec = out["periods"]
    assert (nov["production"], nov["production_source"], nov["realized_source"]) == ("31.2", "realized",
                                                                                     "recorded")
    assert nov["unhedged_value"] == "1248000" and nov["realized_over_forecast"] == str(D("31.2") / D("31.5"))
    assert nov["realized_record"]["recorded_by"] == "erin"
    assert (dec["production"], dec["production_source"]) == ("32", "forecast")
    assert dec["unhedged_value"] == "1280000"  # 32 x 40,000
    given = program_performance("monthly", program(), [book], market(btc="40000"), TODAY,
                                recorded=recorded, realized={"2026-11": D("30")})
    (row,) = given["periods"]
    assert row["realized_source"] == "given" and row["unhedged_value"] == "1200000"
