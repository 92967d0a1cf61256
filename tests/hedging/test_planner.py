"""The planner: new hedge, roll, nothing to do, mandate cap, wait, options, NDFs, reduce."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from rfq_engine.domain.instruments import Future, HashpriceNdf, Instrument, Option, OptionType
from rfq_engine.domain.rfq import Direction, RfqSpec, Side
from rfq_engine.hedging.forecast import Period, forecast_period
from rfq_engine.hedging.planner import Plan, plan_hedge
from rfq_engine.hedging.program import ProgramConfig, resolve_forecast
from tests.hedging.kit import program, snapshot

D = Decimal
PERIOD = Period(2026, 12)
TODAY = date(2026, 11, 27)
DEC = Future("BTC", "USD", date(2026, 12, 25))
JAN = Future("BTC", "USD", date(2027, 1, 29))
FORECAST_DEC = 31 * D("0.628642737865447998046875")  # 19.48792487382888793945...


def plan(p: ProgramConfig | None = None, holdings: dict[Instrument, Decimal] | None = None,
         **kwargs: Any) -> Plan:
    p = p or program()
    inputs = resolve_forecast(None, p.forecast)
    forecast = forecast_period(inputs, PERIOD.start, PERIOD.end, as_of=TODAY)
    return plan_hedge(name="p", program=p, period=PERIOD, forecast=forecast, snapshot=snapshot(),
                      holdings=holdings or {}, today=TODAY, **kwargs)


def roundtrip(spec: RfqSpec) -> None:
    assert RfqSpec.from_dict(spec.to_dict()) == spec


def test_new_hedge_sells_the_target_in_the_contract_after_the_period() -> None:
    result = plan()
    assert result.forecast_quantity == FORECAST_DEC
    assert result.target == D("9.74")  # 50% of 19.4879..., rounded down to 0.01
    assert result.action == "hedge"
    (rfq,) = result.rfqs
    spec = rfq.spec
    roundtrip(spec)
    assert rfq.client_rfq_id == "program:p:2026-12:hedge"
    assert spec.requester == "program:p"
    assert spec.direction is Direction.SELL and spec.quantity == D("9.74") and spec.quantity_unit == "BTC"
    assert [(leg.instrument, leg.side) for leg in spec.legs] == [(JAN, Side.SELL)]
    assert spec.hedge is not None
    assert (spec.hedge.forecast_quantity, spec.hedge.hedged_quantity, spec.hedge.period) == (
        FORECAST_DEC, D(0), "2026-12")
    assert "program:p" in spec.tags and "kind:hedge" in spec.tags


def test_roll_buys_back_the_expiring_contract_and_sells_the_next_then_tops_up() -> None:
    result = plan(holdings={DEC: D("-9.5")})
    assert result.action == "roll+hedge"
    roll, top_up = result.rfqs
    roundtrip(roll.spec)
    assert roll.client_rfq_id == "program:p:2026-12:roll-20261225"
    assert roll.spec.direction is Direction.SELL and roll.spec.quantity == D("9.5")
    assert [(leg.instrument, leg.side) for leg in roll.spec.legs] == [(DEC, Side.BUY), (JAN, Side.SELL)]
    assert roll.spec.hedge is not None and roll.spec.hedge.hedged_quantity == 0
    assert top_up.kind == "hedge" and top_up.spec.quantity == D("0.24")
    assert top_up.spec.hedge is not None and top_up.spec.hedge.hedged_quantity == D("9.5")


def test_roll_sized_to_a_smaller_target_unwinds_the_rest() -> None:
    result = plan(holdings={DEC: D(-12)})
    assert [(r.kind, r.spec.quantity) for r in result.rfqs] == [("roll-20261225", D("9.74")),
                                                                 ("unwind-20261225", D("2.26"))]
    unwind = result.rfqs[1].spec
    assert unwind.direction is Direction.BUY and unwind.legs[0].side is Side.BUY
    assert unwind.hedge is None


def test_nothing_to_do_when_the_period_is_hedged() -> None:
    result = plan(holdings={JAN: D("-9.74")})
    assert result.action == "nothing" and result.rfqs == ()
    assert result.held == D("9.74")
    assert any("nothing to do" in r for r in result.reasons)


def test_an_expired_future_is_not_rolled() -> None:
    old = Future("BTC", "USD", date(2026, 11, 20))
    result = plan(holdings={old: D(-5)})
    assert [r.kind for r in result.rfqs] == ["hedge"]


def test_ratio_is_capped_by_the_mandate() -> None:
    result = plan(program(hedge_ratio="0.9"), mandate_max_ratio=D("0.8"))
    assert result.hedge_ratio == D("0.8")
    assert result.target == D("15.59")
    assert any("capped at the mandate's maximum 80%" in r for r in result.reasons)
    uncapped = plan(program(hedge_ratio="0.7"), mandate_max_ratio=D("0.8"))
    assert uncapped.hedge_ratio == D("0.7")


def test_an_over_hedge_of_futures_is_reduced() -> None:
    result = plan(holdings={JAN: D(-12)})
    (rfq,) = result.rfqs
    assert rfq.kind == "reduce" and rfq.spec.direction is Direction.BUY and rfq.spec.quantity == D("2.26")


def test_a_gap_below_the_lot_is_left() -> None:
    result = plan(holdings={JAN: D("-9.735")})
    assert result.rfqs == ()
    assert any("below the lot 0.01" in r for r in result.reasons)


def test_wait_while_another_rfq_of_the_program_is_open() -> None:
    result = plan(open_rfqs=[("rfq-1", "program:p:2026-11:hedge")])
    assert result.action == "wait" and result.rfqs == () and result.waiting_on == ("rfq-1",)
    # its own open RFQ (same id) does not make it wait: resubmitting is idempotent
    same = plan(open_rfqs=[("rfq-2", "program:p:2026-12:hedge")])
    assert same.action == "hedge"


def test_collar_with_strikes_as_a_percentage_of_spot() -> None:
    p = program(strategy="collar", put_strike="87.5%", call_strike="125%", tenor_months=3)
    result = plan(p)
    (rfq,) = result.rfqs
    roundtrip(rfq.spec)
    expiry = date(2027, 3, 26)  # last Friday of March: three months after December
    assert [(leg.instrument, leg.side) for leg in rfq.spec.legs] == [
        (Option("BTC", "USD", expiry, D(35000), OptionType.PUT), Side.BUY),
        (Option("BTC", "USD", expiry, D(50000), OptionType.CALL), Side.SELL),
    ]
    assert rfq.spec.direction is Direction.BUY
    held = plan(p, holdings={rfq.spec.legs[0].instrument: D("9.74"), rfq.spec.legs[1].instrument: D("-9.74")})
    assert held.action == "nothing"
    over = plan(p, holdings={rfq.spec.legs[0].instrument: D(12)})
    assert over.rfqs == () and any("options are not reduced" in r for r in over.reasons)


def test_only_rolls() -> None:
    result = plan(holdings={DEC: D("-9.5")}, only_rolls=True)
    assert [r.kind for r in result.rfqs] == ["roll-20261225"]
    nothing = plan(only_rolls=True)
    assert nothing.rfqs == () and any("nothing to roll" in r for r in nothing.reasons)
    put = plan(program(strategy="put", put_strike="35000"), only_rolls=True)
    assert put.rfqs == () and any("has nothing to roll" in r for r in put.reasons)


def test_ndf_short_sells_the_months_hashrate() -> None:
    p = program(strategy="ndf_short", hedge_ratio="0.9",
                forecast={"hashrate": "50 PH/s", "difficulty": "100000000000000", "uptime": "0.97"})
    result = plan(p)
    assert result.unit == "PH/s" and result.forecast_quantity == D("48.5")
    (rfq,) = result.rfqs
    roundtrip(rfq.spec)
    assert rfq.spec.quantity == D(43)  # 0.9 x 48.5 = 43.65, whole PH/s
    assert rfq.spec.quantity_unit == "PH/s/day"
    assert rfq.spec.legs[0].instrument == HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 31)
    assert rfq.spec.direction is Direction.SELL
    assert result.spot == D(55)
    reduce = plan(p, holdings={rfq.spec.legs[0].instrument: D(-45)})
    assert [(r.kind, r.spec.direction, r.spec.quantity) for r in reduce.rfqs] == [
        ("reduce", Direction.BUY, D(2))]


def test_ndf_long_buys() -> None:
    p = program(strategy="ndf_long", hedge_ratio="1",
                forecast={"hashrate": "10 PH/s", "difficulty": "100000000000000"})
    (rfq,) = plan(p).rfqs
    assert rfq.spec.direction is Direction.BUY and rfq.spec.legs[0].side is Side.BUY
    assert rfq.spec.quantity == D(10)


def test_retry_ids() -> None:
    (rfq,) = plan(retry=2).rfqs
    assert rfq.client_rfq_id == "program:p:2026-12:hedge:r2"
