"""The four venues of the conformance suite: each fake venue, its dealer config, and the
markets it lists, stated once so every case runs against every venue the same way.

A ``Market`` says what an RFQ for one instrument should make the venue receive: the book
served, the RFQ (size, direction), the quote's price from that book with the venue's
contract size, lot and fee, and the venue amount the order must carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from dealer_adapters.ccxt import CcxtDealerConfig
from tests.ccxt_dealers.conftest import FUTURE_EXPIRY, OPTION_EXPIRY
from tests.ccxt_dealers.fake_binance import API_KEY as BINANCE_KEY
from tests.ccxt_dealers.fake_binance import SECRET as BINANCE_SECRET
from tests.ccxt_dealers.fake_binance import FakeBinance, coin_m_quarterly, option_symbol, quarterly
from tests.ccxt_dealers.fake_bybit import API_KEY as BYBIT_KEY
from tests.ccxt_dealers.fake_bybit import SECRET as BYBIT_SECRET
from tests.ccxt_dealers.fake_bybit import FakeBybit, option_name
from tests.ccxt_dealers.fake_deribit import API_KEY as DERIBIT_KEY
from tests.ccxt_dealers.fake_deribit import SECRET as DERIBIT_SECRET
from tests.ccxt_dealers.fake_deribit import FakeDeribit, expiry_name
from tests.ccxt_dealers.fake_okx import API_KEY as OKX_KEY
from tests.ccxt_dealers.fake_okx import FakeOkx

__all__ = ["MARKETS", "VENUES", "Market", "Venue"]

PERP_USDT = {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDT"}
PERP_USD = {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"}
FUT_USDT = {"kind": "future", "underlying": "BTC", "quote_ccy": "USDT", "expiry": FUTURE_EXPIRY.isoformat()}
FUT_USD = {"kind": "future", "underlying": "BTC", "quote_ccy": "USD", "expiry": FUTURE_EXPIRY.isoformat()}


def option(kind: str) -> dict[str, Any]:
    return {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": OPTION_EXPIRY.isoformat(),
            "strike": "50000", "option_type": kind}


@dataclass(frozen=True)
class Market:
    """One instrument at one venue and what trading ``quantity`` of it should do there."""

    label: str
    instrument: dict[str, Any]
    symbol: str
    """The venue's own instrument id (what its order carries)."""
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    quantity: str
    direction: str
    price: D
    """The quote's price for the side the requester takes (fee included, converted)."""
    amount: str
    """The order's size in the venue's unit, as the venue must receive it."""
    underlying_per_amount: Callable[[D], D]
    """The underlying one venue amount is worth (for converting what the venue executed)."""
    key_field: str = ""
    """Where our key travels on this market, when not the venue's usual field (Binance's
    European options take ``clientOrderId``)."""


@dataclass(frozen=True)
class Venue:
    name: str
    exchange: str
    key_field: str
    """Where our key travels in the order the venue received."""
    amount_field: str
    symbol_field: str
    make: Callable[[], Any]
    env: dict[str, str]
    settings: Callable[[Any], dict[str, Any]]
    modes: dict[str, str] = field(default_factory=dict)
    """Our case name -> the fake's ``order_mode`` for it."""

    def config(self, fake: Any, tmp_path: Path, **overrides: Any) -> CcxtDealerConfig:
        data: dict[str, Any] = {
            "exchange": self.exchange, "enable_rate_limit": False, "timeout_ms": 1000,
            "journal_path": str(tmp_path / f"{self.name}.journal"), "reconcile_interval_ms": 50,
            "reconcile_timeout_ms": 2000, "rate_limit_backoff_ms": 50, **self.settings(fake)}
        data.update(overrides)
        return CcxtDealerConfig.model_validate(data)

    def mode(self, case: str) -> str:
        return self.modes.get(case, case)


def _urls_like(exchange_class: Any, url: str, keep: Callable[[str], bool]) -> dict[str, str]:
    """Every ``urls['api']`` entry of the ccxt class that ``keep`` selects, pointed at ``url``
    with the same path."""
    api = exchange_class().urls["api"]
    out = {}
    for key, value in api.items():
        if isinstance(value, str) and keep(key):
            path = value.split("://", 1)[1].split("/", 1)
            out[key] = url + ("/" + path[1] if len(path) > 1 else "")
    return out


def _okx(fake: FakeOkx) -> dict[str, Any]:
    return {"api_key_env": "C_OKX_KEY", "secret_env": "C_OKX_SECRET", "password_env": "C_OKX_PASS",
            "urls": {"rest": fake.url}, "taker_fee": "0.0005"}


def _deribit(fake: FakeDeribit) -> dict[str, Any]:
    return {"api_key_env": "C_DERIBIT_KEY", "secret_env": "C_DERIBIT_SECRET", "urls": {"rest": fake.url},
            "taker_fee": "0.0005"}


def _bybit(fake: FakeBybit) -> dict[str, Any]:
    return {"api_key_env": "C_BYBIT_KEY", "secret_env": "C_BYBIT_SECRET", "taker_fee": "0.00055",
            "urls": {k: fake.url for k in ("spot", "futures", "v2", "public", "private")},
            "options": {"fetchMarkets": {"types": ["linear", "inverse", "option"], "options": ["BTC"]},
                        "enableUnifiedAccount": True, "enableUnifiedMargin": False,
                        "fetchCurrencies": False}}


def _binance(fake: FakeBinance) -> dict[str, Any]:
    urls = _urls_like(ccxt_async.binance, fake.url, lambda k: k.startswith(("fapi", "eapi", "dapi")))
    return {"api_key_env": "C_BINANCE_KEY", "secret_env": "C_BINANCE_SECRET", "taker_fee": "0.0005",
            "urls": urls, "options": {"fetchMarkets": {"types": ["linear", "inverse", "option"]},
                                      "fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False}}


VENUES: dict[str, Venue] = {
    "okx": Venue("okx", "okx", "clOrdId", "sz", "instId",
                 lambda: FakeOkx(future_expiry=FUTURE_EXPIRY, option_expiry=OPTION_EXPIRY),
                 {"C_OKX_KEY": OKX_KEY, "C_OKX_SECRET": "secret", "C_OKX_PASS": "pass"}, _okx,
                 {"rate_limited": "ratelimit"}),
    "deribit": Venue("deribit", "deribit", "label", "amount", "instrument_name",
                     lambda: FakeDeribit(future_expiry=FUTURE_EXPIRY, option_expiry=OPTION_EXPIRY),
                     {"C_DERIBIT_KEY": DERIBIT_KEY, "C_DERIBIT_SECRET": DERIBIT_SECRET}, _deribit),
    "bybit": Venue("bybit", "bybit", "orderLinkId", "qty", "symbol",
                   lambda: FakeBybit(option_expiry=OPTION_EXPIRY),
                   {"C_BYBIT_KEY": BYBIT_KEY, "C_BYBIT_SECRET": BYBIT_SECRET}, _bybit),
    "binance": Venue("binance", "binance", "newClientOrderId", "quantity", "symbol",
                     lambda: FakeBinance(future_expiry=FUTURE_EXPIRY, option_expiry=OPTION_EXPIRY),
                     {"C_BINANCE_KEY": BINANCE_KEY, "C_BINANCE_SECRET": BINANCE_SECRET}, _binance),
    "binance-coinm": Venue("binance-coinm", "binance", "newClientOrderId", "quantity", "symbol",
                           lambda: FakeBinance(future_expiry=FUTURE_EXPIRY, option_expiry=OPTION_EXPIRY),
                           {"C_BINANCE_KEY": BINANCE_KEY, "C_BINANCE_SECRET": BINANCE_SECRET}, _binance),
}


def _flat(value: D) -> Callable[[D], D]:
    return lambda _price: value


def _inverse(usd: D) -> Callable[[D], D]:
    return lambda price: usd / price


_FEE = D("0.0005")
_OKX_OPT = f"BTC-USD-{OPTION_EXPIRY.strftime('%y%m%d')}-50000-C"
_DERIBIT_PUT = f"BTC-{expiry_name(OPTION_EXPIRY)}-50000-P"

MARKETS: dict[str, list[Market]] = {
    "okx": [
        Market("linear perpetual", PERP_USDT, "BTC-USDT-SWAP", [("40000", "50")], [("40010", "50")], "0.1",
               "sell", D(40000) * (1 - _FEE), "10", _flat(D("0.01"))),
        Market("inverse perpetual", PERP_USD, "BTC-USD-SWAP", [("40000", "1000")], [("40010", "1000")], "1",
               "sell", D(40000) * (1 - _FEE), "400", _inverse(D(100))),
        Market("linear future", FUT_USDT, f"BTC-USDT-{FUTURE_EXPIRY.strftime('%y%m%d')}", [("41000", "50")],
               [("41010", "50")], "0.2", "sell", D(41000) * (1 - _FEE), "20", _flat(D("0.01"))),
        # 0.1995 BTC less min(0.0003, 7% of it) at the 60,000 index
        Market("coin-margined option", option("call"), _OKX_OPT, [("0.1995", "50")], [("0.2005", "50")],
               "0.1",
               "sell", (D("0.1995") - D("0.0003")) * 60000, "10", _flat(D("0.01"))),
    ],
    "deribit": [
        Market("linear perpetual", {**PERP_USDT, "quote_ccy": "USDC"}, "BTC_USDC-PERPETUAL", [("40000", "5")],
               [("40010", "5")], "0.5", "sell", D(40000) * (1 - _FEE), "0.5", _flat(D(1))),
        Market("inverse perpetual", PERP_USD, "BTC-PERPETUAL", [("40000", "100000")], [("40010", "100000")],
               "1", "sell", D(40000) * (1 - _FEE), "40000", _inverse(D(1))),
        Market("inverse future", FUT_USD, f"BTC-{expiry_name(FUTURE_EXPIRY)}", [("40000", "100000")],
               [("40010", "100000")], "0.5", "sell", D(40000) * (1 - _FEE), "20000", _inverse(D(1))),
        # 0.0150 BTC plus min(0.0003, 12.5% of it) at the 60,000 index: 918 USD
        Market("BTC option", option("put"), _DERIBIT_PUT, [("0.0140", "5")], [("0.0150", "5")], "1", "buy",
               D(918), "1", _flat(D(1))),
    ],
    "bybit": [
        Market("linear perpetual", PERP_USDT, "BTCUSDT", [("40000", "5")], [("40010", "5")], "0.5", "sell",
               D(40000) * (1 - D("0.00055")), "0.5", _flat(D(1))),
        Market("inverse perpetual", PERP_USD, "BTCUSD", [("40000", "100000")], [("40010", "100000")], "1",
               "sell", D(40000) * (1 - D("0.00055")), "40000", _inverse(D(1))),
        # Bybit's options fee: min(0.03% of the 60,000 index = 18, 7% of 950 = 66.5) = 18 USDC per BTC
        Market("USDC option", option("put"), option_name(OPTION_EXPIRY), [("900", "5")], [("950", "5")], "1",
               "buy", D(968), "1", _flat(D(1))),
    ],
    "binance": [
        Market("linear perpetual", PERP_USDT, "BTCUSDT", [("40000", "5")], [("40010", "5")], "0.5", "sell",
               D(40000) * (1 - _FEE), "0.5", _flat(D(1))),
        Market("linear future", FUT_USDT, quarterly(FUTURE_EXPIRY), [("41000", "5")], [("41010", "5")], "0.2",
               "sell", D(41000) * (1 - _FEE), "0.2", _flat(D(1))),
        Market("European option", {**option("put"), "quote_ccy": "USDT"}, option_symbol(OPTION_EXPIRY),
               # Binance's options fee: min(0.03% of the 60,000 index = 18, 10% of 900 = 90) = 18 USDT
               [("880", "5")], [("900", "5")], "0.5", "buy", D(918), "0.5", _flat(D(1)),
               key_field="clientOrderId"),
    ],
    # Binance COIN-M (dapi), its own entry so every failure case runs there too: 1 BTC at
    # 40,000 is 400 contracts of 100 USD (quantity in contracts)
    "binance-coinm": [
        Market("inverse perpetual", PERP_USD, "BTCUSD_PERP", [("40000", "1000")], [("40010", "1000")], "1",
               "sell", D(40000) * (1 - _FEE), "400", _inverse(D(100))),
        Market("inverse future", FUT_USD, coin_m_quarterly(FUTURE_EXPIRY), [("40000", "1000")],
               [("40010", "1000")], "0.5", "sell", D(40000) * (1 - _FEE), "200", _inverse(D(100))),
    ],
}
