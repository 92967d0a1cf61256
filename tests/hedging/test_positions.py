"""Positions from fills: legs, average cost, realized/unrealized P&L, NDF settlement, rolls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Future, HashpriceNdf, Option, OptionType, instrument_to_dict
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.hedging.positions import (
    TradeRecord,
    build_positions,
    instrument_key,
    leg_trades,
    net_quantities,
    parse_instrument_key,
)
from rfq_engine.hedging.report import positions_report
from rfq_engine.hedging.rolls import roll_results
from tests.hedging.kit import program, snapshot

D = Decimal
TODAY = date(2026, 12, 10)
DEC = Future("BTC", "USD", date(2026, 12, 25))
JAN = Future("BTC", "USD", date(2027, 1, 29))
NDF = HashpriceNdf("HASHPRICE", "USD", date(2026, 11, 1), 30)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
_n = 0


def trade(legs: Sequence[tuple[Any, str]], direction: str, quantity: str, price: str, *,
          reference: Sequence[str] | None = None, requester: str = "program:p", **extra: Any) -> TradeRecord:
    global _n
    _n += 1
    unit = "PH/s/day" if isinstance(legs[0][0], HashpriceNdf) else "BTC"
    spec = RfqSpec.from_dict({
        "legs": [{"instrument": instrument_to_dict(i), "side": s} for i, s in legs],
        "direction": direction, "quantity": quantity, "quantity_unit": unit, "dealers": ["d"],
        "requester": requester, "mandate": "treasury", **extra})
    return TradeRecord(f"f{_n}", f"r{_n}", spec, D(price), D(quantity), T0 + timedelta(hours=_n),
                       reference_legs=None if reference is None else tuple(D(r) for r in reference))


def by_key(trades: Sequence[TradeRecord], **kwargs: Any) -> dict[str, Any]:
    return {p.key: p for p in build_positions(trades, snapshot(), TODAY, **kwargs)}


def test_short_future_average_cost_realized_and_unrealized() -> None:
    trades = [trade([(DEC, "sell")], "sell", "10", "41000"),
              trade([(DEC, "buy")], "buy", "4", "40000")]
    pos = by_key(trades, settlements={})[instrument_key(DEC)]
    assert pos.quantity == -6 and pos.average_price == 41000
    assert pos.realized_pnl == 4000  # bought back 4 at 1,000 below where they were sold
    # the model mark of a future 15 days out: 40000 * (1 + 0.06 * 15/365)
    assert pos.mark is not None and abs(pos.mark - D("40098.630136986301369863")) < D("1e-18")
    assert pos.unrealized_pnl == (pos.mark - 41000) * -6
    pos = by_key(trades, settlements={instrument_key(DEC): D(39000)})[instrument_key(DEC)]
    assert pos.status == "settled" and pos.realized_pnl == 4000 + 12000 and pos.unrealized_pnl == 0


def test_a_roll_is_split_by_reference_prices_and_its_result_comes_from_the_traded_price() -> None:
    trades = [trade([(DEC, "sell")], "sell", "6", "41000"),
              trade([(DEC, "buy"), (JAN, "sell")], "sell", "6", "300", reference=["40200", "40550"])]
    legs = leg_trades(trades[1])
    assert [(lt.instrument, lt.quantity, lt.price, lt.allocated) for lt in legs] == [
        (DEC, D(6), D(40200), True), (JAN, D(-6), D(40500), True)]
    book = by_key(trades)
    assert book[instrument_key(DEC)].status == "closed"
    assert book[instrument_key(DEC)].realized_pnl == (41000 - 40200) * 6
    assert book[instrument_key(JAN)].quantity == -6 and book[instrument_key(JAN)].average_price == 40500
    (roll,) = roll_results(trades)
    assert (roll.bought, roll.sold, roll.quantity, roll.result_per_unit, roll.result_total) == (
        DEC, JAN, D(6), D(300), D(1800))


def test_roll_result_sign_comes_from_the_prices() -> None:
    # backwardation: the next contract is cheaper; the seller of the package receives -120
    t = trade([(DEC, "buy"), (JAN, "sell")], "sell", "2", "-120", reference=["40200", "40080"])
    (roll,) = roll_results([t])
    assert roll.result_per_unit == -120 and roll.result_total == -240
    # the same roll asked as a buy of the reverse package: paying 120 is a result of -120
    t2 = trade([(DEC, "buy"), (JAN, "sell")], "two_way", "2", "-120", reference=["40200", "40080"],
               private_side="sell")
    assert roll_results([t2])[0].result_per_unit == -120


def test_ndf_settlement_reproduces_worked_example_b() -> None:
    sold = trade([(NDF, "sell")], "sell", "50", "60")
    for index, pnl in (("45", 22500), ("75", -22500)):
        pos = by_key([sold], settlements={instrument_key(NDF): D(index)})[instrument_key(NDF)]
        assert pos.quantity == -50 and pos.status == "settled"
        assert pos.realized_pnl == pnl  # (60 - R) x 50 PH/s x 30 days
    # without a settlement index, a live NDF is marked at the snapshot's hashprice
    live = HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 31)
    pos = by_key([trade([(live, "sell")], "sell", "10", "60")])[instrument_key(live)]
    assert pos.mark == 55 and pos.unrealized_pnl == (55 - 60) * -10 * 31


def test_two_way_private_sell_flips_the_legs() -> None:
    t = trade([(DEC, "buy")], "two_way", "3", "40000", private_side="sell")
    assert net_quantities([t]) == {DEC: D(-3)}


def test_an_expired_option_is_settled_at_intrinsic_value() -> None:
    put = Option("BTC", "USD", date(2026, 11, 27), D(45000), OptionType.PUT)
    pos = by_key([trade([(put, "buy")], "buy", "2", "1500")])[instrument_key(put)]
    assert pos.mark == 5000 and pos.status == "settled" and pos.realized_pnl == (5000 - 1500) * 2


def test_multi_leg_without_reference_uses_the_market_or_fails() -> None:
    t = trade([(DEC, "buy"), (JAN, "sell")], "sell", "1", "300")
    legs = leg_trades(t, snapshot(), TODAY)
    assert legs[0].price + 300 == legs[1].price
    with pytest.raises(ValidationError, match="multi-leg fill without reference"):
        leg_trades(t)


def test_instrument_keys_round_trip() -> None:
    put = Option("BTC", "USD", date(2027, 3, 26), D("35000.5"), OptionType.PUT)
    for instrument in (DEC, NDF, put):
        assert parse_instrument_key(instrument_key(instrument)) == instrument
    assert instrument_key(NDF) == "HASHPRICE-USD-NDF-2026-11-01-30D"
    with pytest.raises(ValidationError, match="not an instrument key"):
        parse_instrument_key("BTC-USD-FUT-2026")


def test_positions_report_with_coverage() -> None:
    # December's hedge is the January future; 9.74 held of a 19.4879 BTC forecast
    trades = [trade([(JAN, "sell")], "sell", "9.74", "40500"),
              trade([(JAN, "sell")], "sell", "1", "40500", requester="alice")]
    report = positions_report(trades, snapshot(), TODAY, programs={"p": program()})
    assert report["positions"][0]["quantity"] == "-10.74"
    dec = next(c for c in report["coverage"] if c["period"] == "2026-12")
    assert dec["hedged"] == "9.74"  # alice's manual hedge is not the program's
    assert D(dec["coverage"]) == D("9.74") / (31 * D("0.628642737865447998046875"))
    jan = next(c for c in report["coverage"] if c["period"] == "2027-01")
    assert jan["hedged"] == "0"
