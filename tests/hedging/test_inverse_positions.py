"""Inverse contracts in positions and P&L (issue 16): netted in contracts, P&L in coin and in
USD at a mark, the settlement currency recorded (typed) with the fill; coin-premium options
netted in coin too, their P&L in coin and in USD at spot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Future, Option, OptionType, Perpetual, instrument_to_dict
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.hedging.positions import (
    ContractTerms,
    SettlementKind,
    TradeRecord,
    build_positions,
    fill_terms,
    instrument_key,
    inverse_pnl,
    net_quantities,
)
from rfq_engine.hedging.report import positions_report
from tests.hedging.kit import snapshot

D = Decimal
TODAY = date(2026, 12, 10)
PERP = Perpetual("BTC", "USD")
T0 = datetime(2026, 11, 1, tzinfo=UTC)
_n = 0


def trade(side: str, quantity: str | Decimal, price: str, *, notional: str | None = None,
          instrument: Any = PERP, contract: ContractTerms | None = None, legs: int = 1) -> TradeRecord:
    """A fill of ``instrument``; inverse (1-USD contracts, settled in BTC) when ``notional`` is given."""
    global _n
    _n += 1
    leg = {"instrument": instrument_to_dict(instrument), "side": side}
    spec = RfqSpec.from_dict({"legs": [leg] * legs, "direction": side, "quantity": str(quantity),
                              "quantity_unit": "BTC", "dealers": ["deribit"], "requester": "program:p",
                              "mandate": "treasury"})
    if notional is not None:
        contract = ContractTerms("BTC", inverse=True, notional=D(notional), contract_value=D(1))
    return TradeRecord(f"f{_n}", f"r{_n}", spec, D(price), D(quantity), T0 + timedelta(hours=_n),
                       contract=contract, reference_legs=(D(price),) * legs if legs > 1 else None)


def positions(trades: list[TradeRecord], **kwargs: Any) -> list[Any]:
    return build_positions(trades, snapshot(), TODAY, **kwargs)


@pytest.mark.parametrize(("close", "coin"), [("6000", D("-0.1667")), ("4000", D("0.25"))])
def test_the_worked_example_short_5000_one_usd_contracts_at_5000(close: str, coin: Decimal) -> None:
    """Short 5,000 one-USD contracts at 5,000 (1 BTC), closed at 6,000: -0.1667 BTC; at 4,000:
    +0.25 BTC. Closing the same 5,000 contracts is 0.8333 BTC at 6,000, 1.25 BTC at 4,000."""
    opened = trade("sell", "1", "5000", notional="5000")
    closed = trade("buy", D(5000) / D(close), close, notional="5000")
    [pos] = positions([opened, closed], settlements={instrument_key(PERP): D(close)})
    assert pos.inverse and pos.status == "closed" and pos.notional == 0 and pos.quantity == 0
    assert pos.realized_pnl_coin.quantize(D("0.0001")) == coin
    assert inverse_pnl(D(-5000), D(5000), D(close)).quantize(D("0.0001")) == coin
    # in USD at the given mark (here the closing price): -1000 USD and +1000 USD
    assert pos.realized_pnl == pos.realized_pnl_coin * D(close) and pos.pnl_usd_at == f"mark {close}"
    assert pos.realized_pnl.quantize(D("0.01")) == (D(-1000) if close == "6000" else D(1000))
    row = pos.to_dict()
    assert (row["contract"], row["settlement_currency"], row["contracts"]) == ("inverse", "BTC", "0")
    assert D(row["realized_pnl_coin"]).quantize(D("0.0001")) == coin


def test_an_open_inverse_position_is_marked_in_coin_and_in_usd() -> None:
    [pos] = positions([trade("sell", "1", "5000", notional="5000")])
    # the model mark of the perpetual is spot, 40000: -5000 * (1/5000 - 1/40000) = -0.875 BTC
    assert pos.mark == 40000 and pos.unrealized_pnl_coin == D("-0.875")
    assert pos.unrealized_pnl == D(-35000) and pos.pnl_usd_at == "mark 40000"
    assert pos.quantity == -1 and pos.average_price == 5000
    assert pos.to_dict()["contracts"] == "-5000"
    report = positions_report([trade("sell", "1", "5000", notional="5000")], snapshot(), TODAY)
    assert report["totals"]["unrealized_pnl"] == "-35000"  # the totals stay in USD


def test_adding_averages_by_coin_and_a_reduction_realizes_part() -> None:
    # long 4000 USD at 4000 (1 BTC) and 4000 USD at 5000 (0.8 BTC): 8000 USD over 1.8 BTC
    trades = [trade("buy", "1", "4000", notional="4000"), trade("buy", "0.8", "5000", notional="4000"),
              trade("sell", "0.3333", "6000", notional="2000")]
    [pos] = positions(trades)
    average = D(8000) / D("1.8")
    assert abs(pos.average_price - average) < D("1e-20") and pos.notional == 6000
    assert abs(pos.realized_pnl_coin - D(2000) * (1 / average - D(1) / 6000)) < D("1e-20")
    assert abs(pos.quantity - D(6000) / average) < D("1e-20")


def test_a_dated_inverse_future_settles_in_coin() -> None:
    expired = Future("BTC", "USD", date(2026, 11, 27))
    [pos] = positions([trade("sell", "1", "40000", notional="40000", instrument=expired)],
                      settlements={instrument_key(expired): D(50000)})
    # short 40000 USD at 40000, settled at 50000: -40000 * (1/40000 - 1/50000) = -0.2 BTC
    assert pos.status == "settled" and pos.realized_pnl_coin == D("-0.2")
    assert pos.realized_pnl == D(-10000) and pos.unrealized_pnl == 0


def test_linear_and_inverse_positions_in_one_instrument_are_kept_apart() -> None:
    linear = trade("sell", "1", "5000", contract=ContractTerms("USD"))
    inverse = trade("sell", "1", "5000", notional="5000")
    book = positions([linear, inverse])
    assert [(p.key, p.inverse) for p in book] == [("BTC-USD-PERP", False), ("BTC-USD-PERP", True)]
    assert book[0].to_dict()["settlement_currency"] == "USD" and "contract" not in book[0].to_dict()


def test_net_quantities_count_an_inverse_position_in_contracts_not_in_the_btc_traded() -> None:
    flat = [trade("sell", "1", "5000", notional="5000"),
            trade("buy", D(5000) / 6000, "6000", notional="5000")]
    assert net_quantities(flat) == {}  # the BTC traded differ (1 and 0.8333), the contracts do not
    assert net_quantities(flat[:1]) == {PERP: D(-1)}


def test_the_terms_the_ccxt_dealer_writes_with_every_fill() -> None:
    deribit = "deribit:BTC-1001 avg=39500 fee=0.0005 BTC improvement_bps=0 notional=39500 USD settle=BTC"
    assert fill_terms(deribit) == ContractTerms("BTC", inverse=True, notional=D(39500))
    okx = "okx:12345 avg=40010 fee=2.0005 USDT improvement_bps=3.75 settle=USDT"
    assert fill_terms(okx) == ContractTerms("USDT")
    assert fill_terms("desk-trade-7") is None
    with pytest.raises(ValidationError, match="multi-leg"):
        positions([trade("sell", "1", "5000", notional="5000", legs=2)])


PUT = Option("BTC", "USD", date(2027, 3, 26), D(50000), OptionType.PUT)


def coin_put(side: str, price: str, index: str) -> TradeRecord:
    return trade(side, "1", price, instrument=PUT,
                 contract=ContractTerms("BTC", premium_currency="BTC", index_price=D(index)))


def test_the_settlement_currency_is_typed() -> None:
    assert ContractTerms("BTC").kind is SettlementKind.COIN
    assert ContractTerms("USDT").kind is ContractTerms("USDC").kind is SettlementKind.STABLECOIN
    assert ContractTerms("USD").kind is SettlementKind.FIAT and ContractTerms().kind is None
    row = positions([trade("sell", "1", "5000", contract=ContractTerms("USDC"))])[0].to_dict()
    assert (row["settlement_currency"], row["settlement_kind"]) == ("USDC", "stablecoin")


def test_a_coin_premium_put_is_netted_in_coin_and_its_pnl_valued_at_spot() -> None:
    # bought at 918 USD with the index at 60,000 (0.0153 BTC all-in), sold at 1,000 USD with the
    # index at 50,000 (0.02 BTC): +0.0047 BTC realized, valued at today's spot (40,000): 188 USD
    [pos] = positions([coin_put("buy", "918", "60000"), coin_put("sell", "1000", "50000")])
    assert pos.premium_currency == "BTC" and pos.status == "closed" and pos.quantity == 0
    assert pos.realized_pnl_coin == D("0.0047") and pos.realized_pnl == D(188)
    assert pos.pnl_usd_at == "spot 40000"
    row = pos.to_dict()
    assert (row["contract"], row["premium_currency"], row["settlement_kind"]) == (
        "coin_premium", "BTC", "coin")


def test_an_open_coin_premium_put_is_marked_in_coin_at_spot() -> None:
    [pos] = positions([coin_put("buy", "918", "60000")], settlements={instrument_key(PUT): D(1200)})
    # settled at 1,200 USD with spot at 40,000: 0.03 BTC against 0.0153 paid: +0.0147 BTC, 588 USD
    # (the USD prices alone would say 282: the premium was paid in BTC when BTC was at 60,000)
    assert pos.average_price_coin == D("0.0153") and pos.status == "settled"
    assert pos.realized_pnl_coin == D("0.0147") and pos.realized_pnl == D(588)
    assert pos.unrealized_pnl == 0 and pos.unrealized_pnl_coin == 0


def test_the_coin_premium_terms_the_ccxt_dealer_writes() -> None:
    note = ("deribit:BTC-1001 avg=0.015 BTC fee=0.0003 BTC improvement_bps=0 premium=BTC index=60000 "
            "settle=BTC")
    assert fill_terms(note) == ContractTerms("BTC", premium_currency="BTC", index_price=D(60000))
    with pytest.raises(ValidationError, match="multi-leg"):
        positions([trade("buy", "1", "918", instrument=PUT, legs=2, contract=ContractTerms(
            "BTC", premium_currency="BTC", index_price=D(60000)))])
