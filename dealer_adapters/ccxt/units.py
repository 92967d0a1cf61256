"""Each venue's units as its documentation states them, checked against ``load_markets()``.

Why (issue 16): ccxt's unified convention is that an order amount counts contracts of
``contractSize``. On Deribit it does not hold: ``BTC_USDC-PERPETUAL`` has ``contract_size``
0.001 (ccxt's ``contractSize``), but Deribit's order and book amounts for linear futures are
in BTC. Sizing by ccxt's contracts sent 1,000x the size. So each venue's dialect states what
its amounts count (``AmountUnit``), the contract size it documents, the currency premiums
are quoted in and the currency fees are charged in, and every loaded market is checked
against that statement when the dealer starts: a market that does not match is *refused*
(an RFQ for it is declined with the reason), never traded at a guessed size.

- **Deribit.** Amounts: spot, linear futures and options in the base coin; inverse futures
  and perpetuals in USD, whole contracts. Contract size: ``get_instruments``
  ``contract_size`` (10 USD for BTC inverse; the base coin for linear). Fees: in the
  instrument's settlement currency (the trades' ``fee_currency`` when the order has them).
- **OKX.** Amounts: spot in the base; swaps, futures and options in contracts (``sz``).
  Contract size: ``ctVal`` in ``ctValCcy`` (0.01 BTC for BTC-USDT-SWAP, 100 USD for
  BTC-USD-SWAP). Fees: ``feeCcy``, as ccxt parses it.
- **Bybit.** Spot, linear contracts and USDC options in the base coin; inverse (BTCUSD) in
  USD, contracts of 1 USD. Fees: ``cumExecFee``, as ccxt parses it.
- **Binance.** Spot, USD-M futures and European options in the base asset (``quantity``);
  COIN-M refused. Fees: as ccxt parses them.

Sources (the venues' public API documentation; the text quoted where it was read):
- Deribit ``private/buy`` ``amount``: "It represents the requested order size. For perpetual
  and inverse futures the amount is in USD units. For options and linear futures it is the
  underlying base currency coin." ``get_instruments`` ``min_trade_amount``: the same units.
  FIX ``OrderQty``: "in USD for perpetual and inverse futures, in the underlying base
  currency coin for linear futures": https://docs.deribit.com/api-reference/trading/private-buy,
  https://docs.deribit.com/api-reference/market-data/public-get_instruments,
  https://docs.deribit.com/fix-api/production/order-cancel-replace. BTC inverse futures:
  "Contract size US $10", "Cash settlement in BTC":
  https://www.deribit.com/docs/contract-specifications/.
- OKX ``ctVal`` / ``ctValCcy`` / ``ctType`` (get instruments) and ``sz`` in contracts for
  FUTURES/SWAP/OPTION (place order):
  https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments,
  https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order (not re-read for
  this change; 100 USD per BTC-USD-SWAP contract as OKX's contract specifications state).
- Bybit ``qty`` (place order: the base coin for linear contracts and options, USD for
  inverse ones, ``qtyStep`` 1): https://bybit-exchange.github.io/docs/v5/order/create-order,
  https://bybit-exchange.github.io/docs/v5/market/instrument (checked by tests/ccxt_dealers/fake_bybit.py).
- Binance USD-M ``quantity`` (base asset):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api;
  European options: ``quantity`` in the underlying (``unit`` 1), premium in USDT (checked by
  tests/ccxt_dealers/fake_binance.py); COIN-M refused (no fake venue checks it).

This module never imports ccxt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain import decimal_str
from rfq_engine.domain.premium import IndexPrice, option_fee
from rfq_engine.domain.venue import AmountUnit, VenueMarket, venue_decimal

__all__ = [
    "BINANCE",
    "BYBIT",
    "DERIBIT",
    "OKX",
    "FeeRule",
    "IndexRule",
    "OptionFees",
    "SizeRule",
    "Units",
    "check_markets",
]

SizeRule = Callable[[Mapping[str, Any], VenueMarket], VenueMarket | str | None]
"""``(ccxt market structure, parsed market) -> the market in the venue's units, or why it is
refused, or None: not a single instrument (a Deribit combo), left out of the markets``."""
FeeRule = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[Decimal, str] | None]
"""``(intent, ccxt order) -> (fee, currency)`` as the venue states them, or None: use ccxt's."""
IndexRule = Callable[[Any, VenueMarket], Awaitable[IndexPrice]]
"""``(exchange, coin-premium market) -> the venue's index price``, read at quote time."""


@dataclass(frozen=True, slots=True)
class OptionFees:
    """A published options fee schedule: ``underlying_rate`` of the underlying per contract,
    capped at ``cap_rate`` of the option price (``domain.premium.option_fee``)."""

    underlying_rate: Decimal | None
    """None: the market's listed taker fee (``taker`` in ``load_markets()``) is the rate."""
    cap_rate: Decimal
    source: str

    def per_unit(self, market: VenueMarket, premium: Decimal,
                 underlying_price: Decimal = Decimal(1)) -> Decimal:
        """The taker fee per unit of underlying, in the premium's currency (``underlying_price``:
        the index, for a premium in USDC or USDT; 1 for one in the underlying's coin)."""
        rate = self.underlying_rate if self.underlying_rate is not None else market.taker_fee
        return option_fee(premium, underlying_rate=rate or Decimal(0), cap_rate=self.cap_rate,
                          underlying_price=underlying_price)


@dataclass(frozen=True, slots=True)
class Units:
    """What one venue's amounts count, in words (for messages and the docs) and as rules."""

    amount: str
    contract_size: str
    premium: str
    fee: str
    source: str
    size: SizeRule
    fee_of: FeeRule
    option_fees: OptionFees | None = None
    """Coin-premium options: the venue's fee schedule (else the taker fee of the premium)."""
    index: IndexRule | None = None
    """Coin-premium options: where the index price is read (None: such options are refused)."""
    option_index: IndexRule | None = None
    """Options with the premium in USDC or USDT under ``option_fees``: where the index price the
    fee's rate applies to is read (None: their fee is ``taker_fee`` of the premium)."""


def _ms(value: object, field: str) -> datetime:
    return datetime.fromtimestamp(int(venue_decimal(value, field)) / 1000, tz=UTC)


def _dec(value: object, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    return venue_decimal(value, field)


def _whole(amount: Decimal | None, unit: Decimal) -> bool:
    return amount is None or (amount / unit) == (amount / unit).to_integral_value()


# --- Deribit ----------------------------------------------------------------------------------

DERIBIT_INVERSE_USD = {"BTC": Decimal(10)}
"""USD per inverse contract, as Deribit's contract specifications state it."""


def _deribit_size(raw: Mapping[str, Any], market: VenueMarket) -> VenueMarket | str | None:
    info = raw.get("info") or {}
    if "combo" in str(info.get("kind") or ""):  # future_combo, option_combo: a package, not a leg
        return None
    if market.type == "spot":
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
    size = _dec(info.get("contract_size"), f"{market.symbol}.info.contract_size")
    if size is None or size != market.contract_size:
        return (f"get_instruments contract_size {info.get('contract_size')!r} and ccxt's contractSize "
                f"{decimal_str(market.contract_size)} differ")
    kind = str(info.get("instrument_type") or info.get("future_type") or "")
    if market.type == "option":  # linear (USDC) or inverse (BTC premium): amounts in the base coin
        if not market.inverse:
            return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
        premium = str(info.get("quote_currency") or "").upper()
        if premium != market.base or (market.settle or "") != market.base or size != 1:
            return (f"a coin-settled option with quote_currency {premium!r}, settlement "
                    f"{market.settle!r}, contract_size {decimal_str(size)}: Deribit documents the "
                    f"premium in {market.base} per contract of 1 {market.base}")
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE, inverse=False,
                                   premium_ccy=premium)
    if kind == "linear" and not market.inverse:
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
    if kind == "reversed" and market.inverse:
        documented = DERIBIT_INVERSE_USD.get(market.base)
        if documented is not None and size != documented:
            return (f"Deribit documents {decimal_str(documented)} USD per {market.base} inverse contract; "
                    f"get_instruments says contract_size {decimal_str(size)}")
        if market.quote not in ("USD",):
            return f"an inverse contract quoted in {market.quote}, not USD"
        if not _whole(market.amount_step, size) or not _whole(market.min_amount, size):
            return (f"min_trade_amount {decimal_str(market.amount_step or market.min_amount or Decimal(0))} "
                    f"is not a whole number of {decimal_str(size)} USD contracts")
        return dataclasses.replace(market, amount_unit=AmountUnit.QUOTE)
    return (f"instrument_type {kind or 'missing'!r} with ccxt's {'inverse' if market.inverse else 'linear'} "
            "flag: no documented unit")


def _deribit_fee(intent: Mapping[str, Any], order: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    """Deribit's ``commission`` in the currency Deribit charged it in: the trades' ``fee_currency``
    when the order carries its trades (``private/buy``), else the instrument's settlement
    currency (``get_order_state`` has no currency; ccxt labels every fee with the base coin,
    which is wrong for a USDC-settled linear instrument)."""
    info = order.get("info") or {}
    if info.get("commission") is None:
        return None
    cost = abs(venue_decimal(info["commission"], "order.info.commission"))
    trades = [t for t in info.get("trades") or [] if isinstance(t, dict) and t.get("fee_currency")]
    stated = {str(t["fee_currency"]).upper() for t in trades}
    if len(stated) == 1:
        return cost, stated.pop()
    settle = intent.get("settle")
    if intent.get("market_type") != "spot" and isinstance(settle, str) and settle:
        return cost, settle.upper()
    return None


async def _deribit_index(exchange: Any, market: VenueMarket) -> IndexPrice:
    """``public/ticker``'s ``index_price`` and ``timestamp`` for the option itself."""
    ticker = await exchange.fetch_ticker(market.symbol)
    info = ticker.get("info") or {}
    price = venue_decimal(ticker.get("indexPrice") or info.get("index_price"), "ticker.index_price")
    return IndexPrice(price, market.quote, _ms(ticker.get("timestamp") or info.get("timestamp"),
                                               "ticker.timestamp"),
                      f"deribit public/ticker {market.id} index_price")


DERIBIT_OPTION_FEES = OptionFees(
    underlying_rate=Decimal("0.0003"), cap_rate=Decimal("0.125"),
    source="https://support.deribit.com/hc/en-us/articles/25944746248989-Fees")
"""BTC options: "0.03% of the underlying or 0.0003 BTC per options contract (Capped at 12.5%
of the options price)", maker and taker."""

DERIBIT = Units(
    amount="spot, linear futures and options: the base coin; inverse futures: USD (whole contracts)",
    contract_size="get_instruments contract_size: 10 USD for BTC inverse futures; base coin for linear",
    premium="BTC options: BTC per contract of 1 BTC (converted at public/ticker index_price); "
            "USDC options: USDC",
    fee="the instrument's settlement currency (the trades' fee_currency when present); BTC options: "
        "min(0.0003 BTC, 12.5% of the premium) per contract",
    source="https://docs.deribit.com/api-reference/trading/private-buy",
    size=_deribit_size, fee_of=_deribit_fee, option_fees=DERIBIT_OPTION_FEES, index=_deribit_index,
)


# --- OKX --------------------------------------------------------------------------------------

OKX_INVERSE_USD = {"BTC": Decimal(100)}
"""USD per coin-margined swap or future contract, as OKX's contract specifications state it."""


def _okx_size(raw: Mapping[str, Any], market: VenueMarket) -> VenueMarket | str | None:
    info = raw.get("info") or {}
    if market.type == "spot":
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
    value = _dec(info.get("ctVal"), f"{market.symbol}.info.ctVal")
    currency = str(info.get("ctValCcy") or "").upper()
    if value is None or value != market.contract_size:
        return (f"ctVal {info.get('ctVal')!r} and ccxt's contractSize "
                f"{decimal_str(market.contract_size)} differ")
    if market.type == "option":  # contracts of ctVal in the base coin
        if currency != market.base:
            return f"an option's ctValCcy {currency!r} is not {market.base}"
        if market.inverse:  # coin-margined (BTC-USD-...): the premium is in the settlement coin
            if (market.settle or "") != market.base:
                return f"a coin-margined option settled in {market.settle!r}, not {market.base}"
            return dataclasses.replace(market, inverse=False, premium_ccy=market.base)
        return market
    ct_type = str(info.get("ctType") or "")
    if market.inverse:
        if ct_type != "inverse" or currency != market.quote:
            return f"ctType {ct_type!r}, ctValCcy {currency!r}: not an inverse contract in {market.quote}"
        documented = OKX_INVERSE_USD.get(market.base)
        if documented is not None and value != documented:
            return f"OKX states {decimal_str(documented)} USD per {market.base} contract; ctVal is {value}"
        if not _whole(market.amount_step, Decimal(1)):
            return f"lotSz {market.amount_step} is not whole contracts"
    elif ct_type != "linear" or currency != market.base:
        return f"ctType {ct_type!r}, ctValCcy {currency!r}: not a linear contract in {market.base}"
    return dataclasses.replace(market, amount_unit=AmountUnit.CONTRACTS)


async def _okx_index(exchange: Any, market: VenueMarket) -> IndexPrice:
    """``GET /api/v5/market/index-tickers`` for ``<base>-<quote>``: ``idxPx`` and ``ts``."""
    index_id = f"{market.base}-{market.quote}"
    response = await exchange.publicGetMarketIndexTickers({"instId": index_id})
    rows = [r for r in (response or {}).get("data") or []
            if isinstance(r, dict) and r.get("instId") == index_id]
    if len(rows) != 1:
        raise LookupError(f"okx index-tickers {index_id}: {len(rows)} rows")
    return IndexPrice(venue_decimal(rows[0].get("idxPx"), "index.idxPx"), market.quote,
                      _ms(rows[0].get("ts"), "index.ts"),
                      f"okx GET /api/v5/market/index-tickers {index_id} idxPx")


OKX_OPTION_FEES = OptionFees(
    underlying_rate=Decimal("0.0003"), cap_rate=Decimal("0.07"),
    source="OKX 'Trading Fee Rules FAQ' (read through restatements; the official page was not retrieved)")
"""Options: min(fee rate x contract value, 7% x premium x contract value) per contract (the cap
was 12.5% until 2025-05-15, as OKX's announcement restated it); the rate is the base tier's
taker, 0.03% (ccxt lists OKX's spot taker, 0.15%, for options)."""

OKX = Units(
    amount="spot: base; swaps, futures and options: contracts (sz)",
    contract_size="ctVal in ctValCcy: 0.01 BTC (BTC-USDT-SWAP, BTC-USD options), 100 USD (BTC-USD-SWAP)",
    premium="coin-margined options: BTC per BTC (converted at index-tickers idxPx)",
    fee="feeCcy, as ccxt parses it; options: min(0.0003 x underlying, 7% of the premium)",
    source="https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments",
    size=_okx_size, fee_of=lambda _intent, _order: None, option_fees=OKX_OPTION_FEES, index=_okx_index,
)


# --- Bybit, Binance ----------------------------------------------------------------------------


def _linear(market: VenueMarket) -> VenueMarket | str:
    if market.contract_size != 1:
        return (f"ccxt's contractSize {decimal_str(market.contract_size)}, documented: 1 "
                "(amounts in the base coin)")
    return dataclasses.replace(market, amount_unit=AmountUnit.BASE)


BYBIT_INVERSE_USD = Decimal(1)
"""Bybit's inverse contracts (BTCUSD): ``qty`` in USD, one contract is 1 USD."""


def _bybit_size(raw: Mapping[str, Any], market: VenueMarket) -> VenueMarket | str | None:
    info = raw.get("info") or {}
    if market.type == "spot":
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
    kind = str(info.get("contractType") or "")
    if market.type == "option":
        if market.inverse:
            return f"an option settled in {market.settle}: Bybit documents USDC options"
        return _linear(market)
    if market.inverse:
        if kind not in ("InversePerpetual", "InverseFutures") or market.settle != market.base:
            return f"contractType {kind!r} settled in {market.settle!r}: not an inverse contract"
        step = _dec((info.get("lotSizeFilter") or {}).get("qtyStep"), f"{market.symbol}.qtyStep")
        if market.contract_size != BYBIT_INVERSE_USD or market.quote != "USD" or step != 1:
            return (f"Bybit documents inverse qty in whole USD (1 USD contracts); ccxt says contractSize "
                    f"{decimal_str(market.contract_size)}, qtyStep {step}")
        return dataclasses.replace(market, amount_unit=AmountUnit.QUOTE)
    if kind not in ("LinearPerpetual", "LinearFutures"):
        return f"contractType {kind!r} with ccxt's linear flag: no documented unit"
    return _linear(market)


async def _bybit_option_index(exchange: Any, market: VenueMarket) -> IndexPrice:
    """``GET /v5/market/tickers`` (``category=option``, the option's ``symbol``): ``indexPrice``."""
    response = await exchange.publicGetV5MarketTickers({"category": "option", "symbol": market.id})
    result = response.get("result") or {}
    rows = [r for r in result.get("list") or [] if isinstance(r, dict) and r.get("symbol") == market.id]
    if len(rows) != 1:
        raise LookupError(f"bybit tickers {market.id}: {len(rows)} rows")
    return IndexPrice(venue_decimal(rows[0].get("indexPrice"), "ticker.indexPrice"), market.quote,
                      _ms(response.get("time"), "tickers.time"),
                      f"bybit GET /v5/market/tickers {market.id} indexPrice")


BYBIT_OPTION_FEES = OptionFees(
    underlying_rate=Decimal("0.0003"), cap_rate=Decimal("0.07"),
    source="https://www.bybit.com/en/help-center/article/Bybit-Option-Fees-Explained")
"""USDC and USDT options, non-VIP taker: "Trading Fee = Minimum (Taker/Maker Fee Rate x Index
Price, Maximum Proportion of Transaction in Order Price x Option Traded Price) x Option Traded
Size", taker 0.03%, "never ... higher than 7% of the option price" (the page as updated
2025-09-18, read through the search tool's stored copy)."""

BYBIT = Units(
    amount="spot, linear contracts and USDC options: the base coin; inverse: USD (1 USD contracts)",
    contract_size="1 BTC for linear and options (qty in BTC); inverse BTCUSD: 1 USD",
    premium="USDC options: USDC per BTC",
    fee="cumExecFee in the settlement coin, as ccxt parses it; options: min(0.03% of the index, "
        "7% of the premium) per BTC",
    source="https://bybit-exchange.github.io/docs/v5/order/create-order",
    size=_bybit_size, fee_of=lambda _intent, _order: None, option_fees=BYBIT_OPTION_FEES,
    option_index=_bybit_option_index,
)


BINANCE_COIN_M_USD = {"BTC": Decimal(100)}
"""USD per COIN-M contract (``contractSize`` in ``/dapi/v1/exchangeInfo``: 100 for BTCUSD)."""


def _binance_coin_m(info: Mapping[str, Any], market: VenueMarket) -> VenueMarket | str:
    """COIN-M (``dapi``): ``quantity`` in whole contracts of ``contractSize`` USD, margined and
    settled in the base coin."""
    size = _dec(info.get("contractSize"), f"{market.symbol}.info.contractSize")
    margin = str(info.get("marginAsset") or "")
    if margin != market.base or market.settle != market.base or market.quote != "USD":
        return (f"marginAsset {margin!r}, settled in {market.settle!r}: not a COIN-M contract on "
                f"{market.base}/USD")
    documented = BINANCE_COIN_M_USD.get(market.base)
    if size is None or size != market.contract_size or (documented is not None and size != documented):
        return (f"contractSize {info.get('contractSize')!r}, ccxt's {decimal_str(market.contract_size)}; "
                f"Binance documents {documented} USD per {market.base} contract")
    if not _whole(market.amount_step, Decimal(1)):
        return f"LOT_SIZE step {market.amount_step} is not whole contracts"
    return dataclasses.replace(market, amount_unit=AmountUnit.CONTRACTS)


def _binance_size(raw: Mapping[str, Any], market: VenueMarket) -> VenueMarket | str | None:
    info = raw.get("info") or {}
    if market.type == "spot":
        return dataclasses.replace(market, amount_unit=AmountUnit.BASE)
    if market.inverse:
        return _binance_coin_m(info, market)
    if market.type == "option":  # European options: quantity in the underlying, premium in USDT
        unit = _dec(info.get("unit"), f"{market.symbol}.info.unit")
        if unit is not None and unit != 1:
            return f"an option unit of {decimal_str(unit)}, documented: 1 (quantity in the underlying)"
        return _linear(market)
    if str(info.get("marginAsset") or market.settle) != market.settle:
        return f"marginAsset {info.get('marginAsset')!r} is not the settlement {market.settle!r}"
    return _linear(market)


async def _binance_option_index(exchange: Any, market: VenueMarket) -> IndexPrice:
    """``GET /eapi/v1/index`` (``underlying`` = base + quote, ``BTCUSDT``): ``indexPrice``, ``time``."""
    underlying = f"{market.base}{market.quote}"
    response = await exchange.eapiPublicGetIndex({"underlying": underlying})
    return IndexPrice(venue_decimal(response.get("indexPrice"), "index.indexPrice"), market.quote,
                      _ms(response.get("time"), "index.time"),
                      f"binance GET /eapi/v1/index {underlying} indexPrice")


BINANCE_OPTION_FEES = OptionFees(
    underlying_rate=Decimal("0.0003"), cap_rate=Decimal("0.10"),
    source="https://www.binance.com/en/support/faq/binance-options-trading-fees-5326e5de61c34fed98abe28d2f175a23")
"""European options: "Trading Fee = Minimum (Trading Fee Rate * Index Price * Contract Unit, 10% *
Option Traded Price) * Option Traded Size", the rate 0.03% (read through the search tool's
stored copies of that page)."""

BINANCE = Units(
    amount="spot, USD-M futures and European options: the base coin (quantity); COIN-M: contracts",
    contract_size="1 (quantity in the base asset; options: unit 1); COIN-M BTCUSD: 100 USD",
    premium="European options: USDT per unit of underlying",
    fee="as ccxt parses it (commission in the margin asset); options: min(0.03% of the index, 10% "
        "of the premium) per BTC",
    source="https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api",
    size=_binance_size, fee_of=lambda _intent, _order: None, option_fees=BINANCE_OPTION_FEES,
    option_index=_binance_option_index,
)


def check_markets(units: Units, raw: Mapping[str, Mapping[str, Any]] | None,
                  markets: list[VenueMarket]) -> tuple[list[VenueMarket], dict[str, str]]:
    """Every parsed market, in the venue's units where it matches the venue's statement; and the
    refused ones (kept as parsed, so an RFQ for one is declined with the reason), by symbol."""
    checked: list[VenueMarket] = []
    refused: dict[str, str] = {}
    for market in markets:
        try:
            result = units.size((raw or {}).get(market.symbol) or {}, market)
        except Exception as exc:  # an unreadable field is a mismatch too
            result = f"unreadable: {exc}"
        if result is None:
            continue
        if isinstance(result, str):
            refused[market.symbol] = result
            checked.append(market)
        else:
            checked.append(result)
    return checked, refused
