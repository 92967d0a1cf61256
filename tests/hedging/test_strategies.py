"""More strategies: futures with a call overlay, hashprice NDFs priced in USD or in BTC,
perpetual hedges with their funding accrued; worked examples to the cent, and the programs
traded through a real engine and scheduler."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pydantic
import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import HashpriceNdf, Perpetual
from rfq_engine.domain.pricing import fair_price
from rfq_engine.hedging.funding import FundingInterval, accrue_funding, funding_payment
from rfq_engine.hedging.positions import net_quantities
from rfq_engine.hedging.program import last_weekday
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.scheduler import coming_period
from rfq_engine.hedging.strategies import (
    future_call_revenue,
    future_call_table,
    ndf_settlement,
    unit_price_in_btc,
)
from tests.hedging.conftest import Open
from tests.hedging.kit import after, program, snapshot, this_months_slot

D = Decimal
SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)
T0 = datetime(2027, 1, 1, tzinfo=UTC)


def test_futures_with_a_call_overlay() -> None:
    """Sold at 40,000 with the 50,000 call bought at 1,000: a floor of 39,000 and the upside
    above 50,000 kept (a synthetic put)."""
    terms = {"future_price": D(40000), "call_strike": D(50000), "premium": D(1000)}
    assert [future_call_revenue(D(s), **terms) for s in (25000, 40000, 60000)] == [
        D(39000), D(39000), D(49000)]
    # 60% sold forward, calls on half of that: 0.4 x 60,000 + 0.6 x (40,000 + 0.5 x 9,000)
    assert future_call_revenue(D(60000), **terms, hedge_ratio=D("0.6"), call_ratio=D("0.5")) == D(50700)
    table = future_call_table(prices=[D(25000), D(60000)], quantity=D(100), cost=D(30000), **terms)
    assert [(r["hedged_revenue_total"], r["hedged_pnl"]) for r in table["rows"]] == [
        ("3900000.00", "9000"), ("4900000.00", "19000")]
    assert table["hedged_share_floor"] == "39000"
    with pytest.raises(ValidationError, match="call_ratio"):
        future_call_revenue(D(1), **terms, call_ratio=D("1.5"))


def test_hashprice_ndfs_in_usd_and_in_btc() -> None:
    """Luxor quotes both: 100 PH/s x 31 days at 0.00080 BTC is 2.48 BTC of notional; settled
    at 0.00070 the seller receives 0.31 BTC, 12,400.00 USD at 40,000."""
    btc = ndf_settlement(unit_price=D("0.00080"), index=D("0.00070"), hashrate_ph=D(100), days=31,
                         unit_ccy="BTC", btc_price=D(40000))
    assert btc == {"contracts": "3100", "unit_ccy": "BTC", "notional": "2.48000000",
                   "settlement": "0.31000000", "settlement_usd": "12400.00"}
    usd = ndf_settlement(unit_price=D(60), index=D(72), hashrate_ph=D(100), days=30)
    assert (usd["notional"], usd["settlement"]) == ("180000.00", "-36000.00")
    long = ndf_settlement(unit_price=D(60), index=D(72), hashrate_ph=D(100), days=30, side="long")
    assert long["settlement"] == "36000.00"
    assert unit_price_in_btc(D(60), D(40000)) == D("0.00150000")
    # the engine's reference for a BTC-unit NDF is the USD hashprice over the BTC spot
    market = snapshot()  # hashprice 55 USD, BTC 40,000
    assert fair_price(HashpriceNdf("HASHPRICE", "BTC", date(2027, 1, 1), 31), market, date(2026, 12, 1)) \
        == D("0.001375")
    assert fair_price(HashpriceNdf("HASHPRICE", "USD", date(2027, 1, 1), 31), market, date(2026, 12, 1)) \
        == D(55)


def test_perpetual_funding_accrued_to_the_cent() -> None:
    """Short 10 BTC over three 8-hour intervals: +40.00 (0.01% at 40,000), +48.60 (0.012% at
    40,500), -19.90 (-0.005% at 39,800): 68.70 USD received."""
    intervals = [FundingInterval(T0, D(40000), D("0.0001")),
                 FundingInterval(T0 + timedelta(hours=8), D(40500), D("0.00012")),
                 FundingInterval(T0 + timedelta(hours=16), D(39800), D("-0.00005"))]
    short = accrue_funding(D(-10), intervals)
    assert [p for _, p in short.payments] == [D("40.00"), D("48.60"), D("-19.90")]
    assert short.total == D("68.70") and short.to_dict()["total"] == "68.70"
    assert accrue_funding(D(10), intervals).total == D("-68.70")  # the long pays
    month = [FundingInterval(T0 + timedelta(hours=8 * i), D(40000), D("0.0001")) for i in range(90)]
    assert accrue_funding(D(-10), month).total == D("3600.00")
    # inverse: 4,000 contracts of 100 USD = 10 BTC at 40,000; 0.01% = 0.001 BTC
    assert funding_payment(D(-4000), D(40000), D("0.0001"), face_value=D(100)) == D("0.00100000")
    assert funding_payment(D(-4000), D(39999), D("0.0001"), face_value=D(100)) == D("0.00100003")
    assert accrue_funding(D(-4000), intervals[:1], face_value=D(100)).currency == "BTC"
    for bad in (D("0.2"), D("NaN")):
        with pytest.raises(ValidationError, match="rate"):
            funding_payment(D(1), D(40000), bad)
    with pytest.raises(ValidationError, match="mark"):
        funding_payment(D(1), D(0), D("0.0001"))


def test_strategy_config() -> None:
    assert program(strategy="future_call", call_strike="125%", call_ratio="0.5").call_ratio == D("0.5")
    for bad, message in (({"strategy": "future_call"}, "needs the strike of the calls"),
                         ({"strategy": "future_call", "call_strike": "50000", "call_ratio": "2"},
                          "call_ratio"),
                         ({"strategy": "perpetual", "call_strike": "50000"},
                          "only a collar or a future_call")):
        with pytest.raises(pydantic.ValidationError, match=message):
            program(**bad)


MANDATE = {"instruments": ["future", "option", "hashprice_ndf", "perpetual"]}


async def test_a_future_call_program_trades_one_two_leg_package(open_system: Open) -> None:
    prog = {"p": program(strategy="future_call", call_strike="125%", call_ratio="0.5")}
    system = await open_system(prog, lambda: after(SLOT), **MANDATE)
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert decision.action == "hedge" and decision.plan is not None
    (rfq,) = decision.plan.rfqs
    legs = [(leg.side.value, leg.instrument.kind.value, leg.ratio) for leg in rfq.spec.legs]
    assert legs == [("sell", "future", D(1)), ("buy", "option", D("0.5"))]
    assert rfq.spec.legs[1].instrument.strike == D(50000)  # type: ignore[union-attr]
    assert await system.settle(decision.rfq_ids) == ["filled"]
    held = net_quantities(await load_trades(system.store, "program:p"))
    futures = [q for i, q in held.items() if i.kind.value == "future"]
    calls = [q for i, q in held.items() if i.kind.value == "option"]
    assert futures == [-decision.plan.target] and calls == [decision.plan.target * D("0.5")]


async def test_a_perpetual_program_is_adjusted_not_rolled(open_system: Open) -> None:
    prog = {"p": program(strategy="perpetual")}
    system = await open_system(prog, lambda: after(SLOT), **MANDATE)
    (first,) = await system.scheduler.run_due(after(SLOT))
    assert await system.settle(first.rfq_ids) == ["filled"]
    assert first.plan is not None and first.plan.rfqs[0].spec.legs[0].instrument == Perpetual("BTC", "USD")
    # a month later the same position hedges the next month: resized to its forecast, not rolled
    day = last_weekday(PERIOD.year, PERIOD.month, 4)
    slot2 = datetime(day.year, day.month, day.day, 14, tzinfo=UTC)
    (second,) = await system.scheduler.run_due(after(slot2))
    assert second.plan is not None and second.plan.held == first.plan.target
    assert not any(r.kind.startswith("roll") for r in second.plan.rfqs)
    assert await system.settle(second.rfq_ids) == ["filled"] * len(second.rfq_ids)
    (qty,) = net_quantities(await load_trades(system.store, "program:p")).values()
    assert -qty == second.plan.target


async def test_an_ndf_program_in_btc_units_trades_at_the_btc_hashprice(open_system: Open) -> None:
    prog = {"p": program(strategy="ndf_short", quote_ccy="BTC", forecast={
        "hashrate": "50 PH/s", "difficulty": "100000000000000"})}
    # the desks quote BTC per PH/s per day to the satoshi
    system = await open_system(prog, lambda: after(SLOT), tick_size="0.00000001")
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert decision.plan is not None and decision.plan.target == D(25)  # 50% of 50 PH/s
    ndf = decision.plan.rfqs[0].spec.legs[0].instrument
    assert isinstance(ndf, HashpriceNdf) and ndf.quote_ccy == "BTC"
    assert await system.settle(decision.rfq_ids) == ["filled"]
    (fill,) = await system.store.fills(decision.rfq_ids[0])
    assert abs(fill.price - D("0.001375")) < D("0.0001")  # BTC per PH/s per day, not USD


def test_rfq_hedge_scenario_future_call(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rfq_engine.cli.main import main

    args = ["hedge", "scenario", "--strategy", "future_call", "--future-price", "40000", "--call", "50000",
            "--premium", "1000", "--quantity", "100", "--cost", "30000", "--prices", "25000,60000"]
    assert main([*args, "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [r["hedged_revenue"] for r in table["rows"]] == ["39000", "49000"]
    assert main([*args, "--ratio", "0.6", "--call-ratio", "0.5"]) == 0
    assert "50700" in capsys.readouterr().out
    assert main([*args[:4], "--prices", "1"]) == 1
    assert "--future-price: is required for --strategy future_call" in capsys.readouterr().err
