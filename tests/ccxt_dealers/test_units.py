"""Each venue's units (``dealer_adapters/ccxt/units.py``), checked against ``load_markets()``:
the unit the dialect states, and the refusal of a market that does not match it."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

from dealer_adapters.ccxt.dialects import DIALECTS, dialect_for
from dealer_adapters.ccxt.markets import NoMarket, resolve_legs
from dealer_adapters.ccxt.sizing import executed_underlying, intent_units, order_amount
from dealer_adapters.ccxt.units import check_markets
from rfq_engine.domain import DealerId, Decline, Quote
from rfq_engine.domain.venue import AmountUnit, VenueMarket
from tests.ccxt_dealers.conftest import Make, deribit_config, leg, rfq
from tests.ccxt_dealers.fake_deribit import FakeDeribit


def ccxt_market(info: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"symbol": "BTC/USDC:USDC", "id": "BTC_USDC-PERPETUAL", "type": "swap", "base": "BTC",
            "quote": "USDC", "settle": "USDC", "linear": True, "inverse": False, "contractSize": 0.001,
            "precision": {"amount": 0.001, "price": 1}, "limits": {"amount": {"min": 0.001}},
            "info": info, **fields}


DERIBIT_LINEAR = ccxt_market({"kind": "future", "instrument_type": "linear", "contract_size": 0.001})
DERIBIT_INVERSE = ccxt_market(
    {"kind": "future", "instrument_type": "reversed", "contract_size": 10},
    symbol="BTC/USD:BTC", id="BTC-PERPETUAL", quote="USD", settle="BTC", linear=False, inverse=True,
    contractSize=10, precision={"amount": 10, "price": 0.5}, limits={"amount": {"min": 10}})


def check(exchange_id: str, *raw: dict[str, Any]) -> tuple[dict[str, VenueMarket], dict[str, str]]:
    dialect = dialect_for(exchange_id)
    assert dialect is not None
    parsed = [m for m in (VenueMarket.from_ccxt(r, 4) for r in raw) if m is not None]
    markets, refused = check_markets(dialect.units, {r["symbol"]: r for r in raw}, parsed)
    return {m.symbol: m for m in markets}, refused


def test_deribit_linear_amounts_are_btc_and_inverse_amounts_usd() -> None:
    markets, refused = check("deribit", DERIBIT_LINEAR, DERIBIT_INVERSE)
    assert refused == {}
    linear, inverse = markets["BTC/USDC:USDC"], markets["BTC/USD:BTC"]
    # ccxt says contracts of 0.001; Deribit's amount is BTC: one unit is one BTC
    assert (linear.amount_unit, linear.amount_value, linear.contract_size) == (AmountUnit.BASE, 1, D("0.001"))
    assert order_amount(linear, D("0.005")) == D("0.005")
    # inverse: amounts in USD, whole contracts of 10 USD
    assert (inverse.amount_unit, inverse.amount_value, inverse.contract_amount) == (AmountUnit.QUOTE, 1, 10)
    assert inverse.contract_ccy == "USD"
    # 1 BTC at 40001 is 40001 USD: 4000 contracts (40000 USD), rounded down
    assert order_amount(inverse, D(1), D(40001)) == D(40000)
    units = intent_units(inverse, D(40001))
    assert abs(executed_underlying(units, D(40000)) - D(40000) / D(40001)) < D("1e-25")


def test_a_quantity_within_its_own_rounding_of_a_whole_contract_is_that_contract() -> None:
    markets, _ = check("deribit", DERIBIT_INVERSE)
    inverse = markets["BTC/USD:BTC"]
    conversion = D("40000.5")
    quoted = (D(40000) / conversion).quantize(D("1e-12"), rounding="ROUND_FLOOR")  # 4000 contracts, floored
    assert order_amount(inverse, quoted, conversion) == D(40000)
    assert order_amount(inverse, quoted - D("0.0001"), conversion) == D(39990)


def test_a_market_whose_units_differ_from_the_documentation_is_refused() -> None:
    wrong_size = {**DERIBIT_INVERSE, "contractSize": 100,
                  "info": {**DERIBIT_INVERSE["info"], "contract_size": 100}}
    _, refused = check("deribit", wrong_size)
    assert "Deribit documents 10 USD per BTC inverse contract" in refused["BTC/USD:BTC"]
    ccxt_disagrees = {**DERIBIT_LINEAR, "contractSize": 1}
    _, refused = check("deribit", ccxt_disagrees)
    assert "contract_size 0.001 and ccxt's contractSize 1 differ" in refused["BTC/USDC:USDC"]
    flag_mismatch = {**DERIBIT_LINEAR, "info": {**DERIBIT_LINEAR["info"], "instrument_type": "reversed"}}
    _, refused = check("deribit", flag_mismatch)
    assert "instrument_type 'reversed' with ccxt's linear flag" in refused["BTC/USDC:USDC"]


def test_a_deribit_combo_is_left_out_and_a_refused_market_never_shadows_a_good_one() -> None:
    """ccxt lists Deribit's combos (``kind: future_combo``, symbol = id, settled in BTC: inverse)
    with an expiry: one must never stand in for the dated future it spreads."""
    future = {**DERIBIT_INVERSE, "symbol": "BTC/USD:BTC-270326", "id": "BTC-26MAR27", "type": "future",
              "expiry": 1806048000000}
    combo = {**future, "symbol": "BTC-FS-26MAR27_PERP", "id": "BTC-FS-26MAR27_PERP", "linear": None,
             "inverse": None, "info": {"kind": "future_combo", "instrument_type": "reversed",
                                       "contract_size": 10}}
    markets, refused = check("deribit", future, combo)
    assert list(markets) == ["BTC/USD:BTC-270326"] and refused == {}
    wrong = {**future, "symbol": "BTC/USD:BTC-270326-X", "info": {**future["info"], "contract_size": 100},
             "contractSize": 100}
    dialect = dialect_for("deribit")
    assert dialect is not None
    parsed = [m for m in (VenueMarket.from_ccxt(r, 4) for r in (future, wrong)) if m is not None]
    checked, refused = check_markets(dialect.units, {r["symbol"]: r for r in (future, wrong)}, parsed)
    instrument = leg({"kind": "future", "underlying": "BTC", "quote_ccy": "USD", "expiry": "2027-03-26"})
    resolved = resolve_legs(rfq([instrument], quantity="1"), checked, venue="deribit", allow_inverse=True,
                            refused=refused)
    assert not isinstance(resolved, NoMarket) and resolved[0].market.symbol == "BTC/USD:BTC-270326"
    alone = resolve_legs(rfq([instrument], quantity="1"), [m for m in checked if m.symbol in refused],
                         venue="deribit", allow_inverse=True, refused=refused)
    assert isinstance(alone, NoMarket) and "BTC/USD:BTC-270326-X was refused" in alone.reason


def test_okx_contracts_and_the_inverse_contract_value() -> None:
    linear = ccxt_market({"instType": "SWAP", "ctVal": "0.01", "ctValCcy": "BTC", "ctType": "linear"},
                         symbol="BTC/USDT:USDT", quote="USDT", settle="USDT", contractSize=0.01,
                         precision={"amount": 0.01, "price": 0.1})
    inverse = ccxt_market({"instType": "SWAP", "ctVal": "100", "ctValCcy": "USD", "ctType": "inverse"},
                          symbol="BTC/USD:BTC", quote="USD", settle="BTC", linear=False, inverse=True,
                          contractSize=100, precision={"amount": 1, "price": 0.1})
    markets, refused = check("okx", linear, inverse)
    assert refused == {}
    assert markets["BTC/USDT:USDT"].amount_value == D("0.01")
    swap = markets["BTC/USD:BTC"]
    assert (swap.amount_unit, swap.amount_value, swap.contract_amount) == (AmountUnit.CONTRACTS, 100, 1)
    assert order_amount(swap, D("1.23"), D(40000)) == D(492)  # 49200 USD / 100, whole contracts
    ten = {**inverse, "contractSize": 10, "info": {**inverse["info"], "ctVal": "10"}}
    _, refused = check("okx", ten)
    assert "OKX states 100 USD per BTC contract" in refused["BTC/USD:BTC"]


def test_bybit_sizes_its_inverse_contract_in_usd_and_binance_coin_m_in_contracts_of_100_usd() -> None:
    info = {"contractType": "InversePerpetual", "lotSizeFilter": {"qtyStep": "1", "minOrderQty": "1"}}
    inverse = ccxt_market(info, symbol="BTC/USD:BTC", quote="USD", settle="BTC", linear=False,
                          inverse=True, contractSize=1)
    linear = ccxt_market({"contractType": "LinearPerpetual"}, symbol="BTC/USDT:USDT", quote="USDT",
                         settle="USDT", contractSize=1)
    markets, refused = check("bybit", inverse, linear)
    assert refused == {}
    swap = markets["BTC/USD:BTC"]
    assert (swap.amount_unit, swap.amount_value, swap.contract_amount) == (AmountUnit.QUOTE, 1, 1)
    assert markets["BTC/USDT:USDT"].amount_unit is AmountUnit.BASE
    wrong = {**inverse, "info": {**info, "contractType": "LinearPerpetual"}}
    _, refused = check("bybit", wrong)
    assert "not an inverse contract" in refused["BTC/USD:BTC"]
    coin_m = {**inverse, "contractSize": 100, "precision": {"amount": 1, "price": 0.1},
              "info": {"contractSize": 100, "marginAsset": "BTC"}}
    markets, refused = check("binance", coin_m, {**linear, "info": {"marginAsset": "USDT"}})
    assert refused == {}
    perp = markets["BTC/USD:BTC"]  # quantity in contracts, each 100 USD
    assert (perp.amount_unit, perp.amount_value, perp.contract_amount) == (AmountUnit.CONTRACTS, 100, 1)
    assert markets["BTC/USDT:USDT"].amount_unit is AmountUnit.BASE
    for info, why in (({"contractSize": 10, "marginAsset": "BTC"}, "contractSize 10"),
                      ({"contractSize": 100, "marginAsset": "USDT"}, "not a COIN-M contract"),
                      ({"marginAsset": "BTC"}, "contractSize None")):
        _, refused = check("binance", {**coin_m, "info": info})
        assert why in refused["BTC/USD:BTC"], refused
    _, refused = check("binance", {**coin_m, "precision": {"amount": 0.5, "price": 0.1}})
    assert "not whole contracts" in refused["BTC/USD:BTC"]


def test_the_docs_table_names_every_venues_units() -> None:
    text = (Path(__file__).parents[2] / "docs" / "dealers-ccxt.md").read_text()
    assert "### Units: the dialect table" in text
    for dialect in DIALECTS.values():
        assert dialect.units.source in text


async def test_a_refused_market_is_declined_with_the_reason_and_the_rest_trade(
        deribit: FakeDeribit, tmp_path: Path, make_dealers: Make) -> None:
    """The venue changed BTC-PERPETUAL to 100 USD contracts: refused at start-up, not traded."""
    deribit.instrument_overrides["BTC-PERPETUAL"] = {"contract_size": 100, "min_trade_amount": 100}
    deribit.set_book("BTC-PERPETUAL", bids=[("40000", "100000")], asks=[("40010", "100000")])
    deribit.set_book("BTC_USDC-PERPETUAL", bids=[("40000", "7.5")], asks=[("40010", "7.5")])
    dealers, inbox = await make_dealers({DealerId("d"): deribit_config(deribit, tmp_path)})
    inverse = leg({"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"})
    await dealers.send_rfq(DealerId("d"), rfq([inverse], quantity="1"))
    decline: Decline = await inbox.next(Decline)
    assert "BTC/USD:BTC was refused when the dealer started" in decline.reason
    assert "Deribit documents 10 USD per BTC inverse contract" in decline.reason
    linear = leg({"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDC"})
    await dealers.send_rfq(DealerId("d"), rfq([linear], quantity="1"))
    quote: Quote = await inbox.next(Quote)
    assert quote.quantity == D(1)
    assert deribit.order_requests == []
