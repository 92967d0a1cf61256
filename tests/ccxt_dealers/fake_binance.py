"""A local fake of Binance's USD-M futures REST API (``/fapi``) and of its European options API
(``/eapi``), written from Binance's public API documentation, served to a real ccxt ``binance``
instance (``exchange.urls['api']`` pointed here). Transport-level only: ccxt's request
building, signing, parsing and error mapping all run for real.

What Binance documents and this fake follows
(https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info):
- signed endpoints take ``timestamp`` (and ``recvWindow``) and ``signature``, the
  HMAC-SHA256 of the query string (or the form body) before it, with ``X-MBX-APIKEY``; the
  fake checks it;
- an error is ``{"code": -NNNN, "msg": ...}`` with an HTTP 4xx: -1003 "Too many requests"
  (HTTP 429, the rate limit), -2019 "Margin is insufficient.", -2013 "Order does not
  exist.", -2015 "Invalid API-key, IP, or permissions for action."
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code);
- ``GET /fapi/v1/exchangeInfo``: ``BTCUSDT`` (``PERPETUAL``) and the quarterly
  ``BTCUSDT_YYMMDD`` (``CURRENT_QUARTER``), margin asset USDT, ``LOT_SIZE`` step 0.001:
  ``quantity`` is in the base asset (BTC);
- ``GET /fapi/v1/depth`` (``bids``/``asks`` as ``[price, qty]`` strings);
- ``POST /fapi/v1/order`` (``symbol``, ``side``, ``type`` LIMIT, ``timeInForce`` IOC,
  ``quantity``, ``price``, ``newClientOrderId``), matched as an IOC against the served book:
  the answer is the order (``status`` FILLED, or EXPIRED with what filled,
  ``executedQty``, ``avgPrice``, ``cumQuote``);
- ``GET /fapi/v1/order`` by ``orderId`` or ``origClientOrderId``
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Query-Order);
- European options (``/eapi/v1``): ``exchangeInfo`` (``optionSymbols``: ``BTC-YYMMDD-50000-P``,
  premium and settlement in USDT, ``unit`` 1: ``quantity`` in BTC, ``LOT_SIZE`` 0.01),
  ``depth``, ``order`` (POST with ``clientOrderId``, not ``newClientOrderId``; GET by
  ``orderId`` or ``clientOrderId``); statuses ``FILLED`` and, for an IOC that did not fill
  whole, ``CANCELLED`` with its ``executedQty``; ``GET /eapi/v1/index`` (``underlying``
  ``BTCUSDT``): ``{"time", "indexPrice"}`` (``index_price``, settable); an option trade's
  ``fee`` is Binance's options schedule, "Minimum (Trading Fee Rate * Index Price * Contract
  Unit, 10% * Option Traded Price) * Option Traded Size" at the 0.03% rate
  (https://www.binance.com/en/support/faq/binance-options-trading-fees-5326e5de61c34fed98abe28d2f175a23).

COIN-M futures (``/dapi/v1``, inverse: margined and settled in BTC,
https://developers.binance.com/docs/derivatives/coin-margined-futures/general-info):
``exchangeInfo`` lists ``BTCUSD_PERP`` (``PERPETUAL``) and the quarterly ``BTCUSD_YYMMDD``
(``CURRENT_QUARTER``), ``contractSize`` 100 (USD per contract), ``marginAsset`` BTC,
``baseAsset`` BTC, ``quoteAsset`` USD, ``quantityPrecision`` 0, ``LOT_SIZE`` step 1: ``quantity``
is whole contracts (a fractional one is refused with -1111 "Precision is over the maximum
defined for this asset."); ``depth`` amounts are contracts; ``POST /dapi/v1/order`` and ``GET``
by ``origClientOrderId`` as on ``/fapi``, the answer with ``pair``, ``executedQty`` in
contracts and ``cumBase``, the BTC value of what filled (``executedQty * 100 / price`` per
level), ``avgPrice`` the USD over it; no commission in the answer (like USD-M).

The exchangeInfo, depth and order bodies are shaped as Binance's documentation examples list
their fields (ccxt's recorded fixtures for Binance were not read for this fake; the COIN-M
exchangeInfo example as ccxt's source restates Binance's).

Scripted: ``order_mode`` ``normal`` | ``slow`` | ``lost`` | ``insufficient`` |
``rate_limited`` (the next order answers -1003 and books nothing). Read: ``order_requests``,
``executed``, ``problems``. The book, the IOC matching, the scripted outcomes and the options
fee are ``fake_book.py``'s, shared with the fake Bybit.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.ccxt_dealers.fake_book import Book, after_match, before_match, option_fee
from tests.ccxt_dealers.local_server import serve

API_KEY = "binance-key"
SECRET = "binance-secret"
OPTION_FEE_RATE, OPTION_FEE_CAP = Decimal("0.0003"), Decimal("0.10")


def now_ms() -> int:
    return int(time.time() * 1000)


def quarterly(d: date) -> str:
    return f"BTCUSDT_{d.strftime('%y%m%d')}"


def coin_m_quarterly(d: date) -> str:
    return f"BTCUSD_{d.strftime('%y%m%d')}"


COIN_M_USD = Decimal(100)
"""USD per BTCUSD COIN-M contract (``contractSize``)."""


def option_symbol(d: date) -> str:
    return f"BTC-{d.strftime('%y%m%d')}-50000-P"


@dataclass
class FakeBinance:
    future_expiry: date
    option_expiry: date
    books: dict[str, Book] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    order_requests: list[dict[str, str]] = field(default_factory=list)
    on_order: Callable[[], None] | None = None
    lookups: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    order_mode: str = "normal"
    slow_s: float = 1.5
    index_price: Decimal = Decimal("60000")
    """``BTCUSDT``'s options index (``GET /eapi/v1/index``), what the options fee is charged on."""
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(8_000_000))
    _runner: web.AppRunner | None = None

    @property
    def executed(self) -> int:
        return sum(1 for o in self.orders.values() if Decimal(o["executedQty"]) > 0)

    def _symbol(self, name: str, contract_type: str, delivery: int) -> dict[str, Any]:
        return {"symbol": name, "pair": "BTCUSDT", "contractType": contract_type, "deliveryDate": delivery,
                "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000", "baseAsset": "BTC", "quoteAsset": "USDT",
                "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500",
                "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": [{"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764",
                             "tickSize": "0.10"},
                            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000",
                             "minQty": "0.001"},
                            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120",
                             "minQty": "0.001"},
                            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                            {"filterType": "MIN_NOTIONAL", "notional": "100"},
                            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                             "multiplierDown": "0.9500",
                             "multiplierDecimal": "4"}],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                               "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"]}

    def exchange_info(self) -> dict[str, Any]:
        delivery = int(datetime.combine(self.future_expiry, dtime(8, 0), tzinfo=UTC).timestamp() * 1000)
        return {"timezone": "UTC", "serverTime": now_ms(), "futuresType": "U_MARGINED",
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 2400}],
                "exchangeFilters": [],
                "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                "symbols": [self._symbol("BTCUSDT", "PERPETUAL", 4133404800000),
                            self._symbol(quarterly(self.future_expiry), "CURRENT_QUARTER", delivery)]}

    def coin_m_info(self) -> dict[str, Any]:
        delivery = int(datetime.combine(self.future_expiry, dtime(8, 0), tzinfo=UTC).timestamp() * 1000)
        symbols = []
        for name, kind, when in (("BTCUSD_PERP", "PERPETUAL", 4133404800000),
                                 (coin_m_quarterly(self.future_expiry), "CURRENT_QUARTER", delivery)):
            symbols.append({
                "symbol": name, "pair": "BTCUSD", "contractType": kind, "deliveryDate": when,
                "onboardDate": 1596006000000, "contractStatus": "TRADING", "contractSize": int(COIN_M_USD),
                "marginAsset": "BTC", "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": "BTC", "quoteAsset": "USD", "pricePrecision": 1, "quantityPrecision": 0,
                "baseAssetPrecision": 8, "quotePrecision": 8, "equalQtyPrecision": 4,
                "filters": [{"minPrice": "0.1", "maxPrice": "100000", "filterType": "PRICE_FILTER",
                             "tickSize": "0.1"},
                            {"stepSize": "1", "filterType": "LOT_SIZE", "maxQty": "100000", "minQty": "1"},
                            {"limit": 200, "filterType": "MAX_NUM_ORDERS"}],
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
        return {"timezone": "UTC", "serverTime": now_ms(), "exchangeFilters": [],
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 6000}], "symbols": symbols}

    def option_info(self) -> dict[str, Any]:
        expiry = int(datetime.combine(self.option_expiry, dtime(8, 0), tzinfo=UTC).timestamp() * 1000)
        return {"timezone": "UTC", "serverTime": now_ms(),
                "optionContracts": [{"baseAsset": "BTC", "quoteAsset": "USDT", "underlying": "BTCUSDT",
                                     "settleAsset": "USDT"}],
                "optionAssets": [{"name": "USDT"}],
                "optionSymbols": [{"expiryDate": expiry, "symbol": option_symbol(self.option_expiry),
                                   "side": "PUT", "strikePrice": "50000", "underlying": "BTCUSDT", "unit": 1,
                                   "makerFeeRate": "0.0002", "takerFeeRate": "0.0002", "minQty": "0.01",
                                   "maxQty": "100", "initialMargin": "0.15", "maintenanceMargin": "0.075",
                                   "minInitialMargin": "0.1", "minMaintenanceMargin": "0.05", "priceScale": 1,
                                   "quantityScale": 2, "quoteAsset": "USDT", "status": "TRADING",
                                   "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.1",
                                                "maxPrice": "100000", "tickSize": "0.1"},
                                               {"filterType": "LOT_SIZE", "minQty": "0.01", "maxQty": "100",
                                                "stepSize": "0.01"}]}],
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 400}]}

    def set_book(self, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.books[symbol] = Book.of(bids, asks)

    def _match(self, req: dict[str, str]) -> dict[str, Any]:
        symbol, side = req["symbol"], req["side"]
        qty, limit = Decimal(req["quantity"]), Decimal(req["price"])
        filled, quote, fee, base = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
        for px, take in self.books.setdefault(symbol, Book()).take(side == "BUY", qty, limit):
            filled, quote, base = filled + take, quote + take * px, base + take * COIN_M_USD / px
            fee += option_fee(OPTION_FEE_RATE, OPTION_FEE_CAP, self.index_price, px, take)
        order_id = next(self._ids)
        if symbol.startswith("BTCUSD_"):  # COIN-M: contracts of 100 USD; cumBase in BTC
            order = {"orderId": order_id, "symbol": symbol, "pair": "BTCUSD",
                     "status": "FILLED" if filled == qty else "EXPIRED",
                     "clientOrderId": req.get("newClientOrderId", ""), "price": req["price"],
                     "avgPrice": str((filled * COIN_M_USD / base).quantize(Decimal("1e-8")).normalize())
                     if filled else "0.0", "origQty": req["quantity"], "executedQty": str(filled),
                     "cumQty": str(filled), "cumBase": str(base.quantize(Decimal("1e-8")).normalize()),
                     "timeInForce": req.get("timeInForce", "GTC"), "type": req["type"], "reduceOnly": False,
                     "closePosition": False, "side": side, "positionSide": "BOTH", "stopPrice": "0",
                     "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": req["type"],
                     "time": now_ms(), "updateTime": now_ms()}
            self.orders[order_id] = order
            return order
        if symbol.endswith(("-P", "-C")):  # European options: the eapi order shape
            order = {"orderId": order_id, "symbol": symbol, "price": req["price"],
                     "quantity": req["quantity"],
                     "executedQty": str(filled), "fee": str(fee.quantize(Decimal("1e-8")).normalize()),
                     "side": side, "type": req["type"], "timeInForce": req.get("timeInForce", "GTC"),
                     "reduceOnly": False, "postOnly": False, "createTime": now_ms(), "updateTime": now_ms(),
                     "status": "FILLED" if filled == qty else "CANCELLED",
                     "avgPrice": str((quote / filled).normalize()) if filled else "0",
                     "clientOrderId": req.get("clientOrderId", ""), "priceScale": 1, "quantityScale": 2,
                     "optionSide": "PUT", "quoteAsset": "USDT", "mmp": False}
            self.orders[order_id] = order
            return order
        order = {"orderId": order_id, "symbol": symbol, "status": "FILLED" if filled == qty else "EXPIRED",
                 "clientOrderId": req.get("newClientOrderId", ""), "price": req["price"],
                 "avgPrice": str((quote / filled).normalize()) if filled else "0.00",
                 "origQty": req["quantity"], "executedQty": str(filled), "cumQty": str(filled),
                 "cumQuote": str(quote), "timeInForce": req.get("timeInForce", "GTC"), "type": req["type"],
                 "reduceOnly": False, "closePosition": False, "side": side, "positionSide": "BOTH",
                 "stopPrice": "0.00", "workingType": "CONTRACT_PRICE", "priceProtect": False,
                 "origType": req["type"], "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
                 "goodTillDate": 0, "time": now_ms(), "updateTime": now_ms()}
        self.orders[order_id] = order
        return order

    @staticmethod
    def error(code: int, msg: str, status: int = 400) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    def _signed(self, request: web.Request, payload: str) -> bool:
        if request.headers.get("X-MBX-APIKEY") != API_KEY or "&signature=" not in payload:
            return False
        signed, signature = payload.rsplit("&signature=", 1)
        expected = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        body = await request.text() if request.method in ("POST", "PUT") else ""
        raw = body or request.query_string
        params = dict(parse_qsl(raw, keep_blank_values=True))
        api = path.split("/")[1] if path.count("/") >= 2 else ""
        if path.removeprefix(f"/{api}") in ("/v1/exchangeInfo", "/v1/depth", "/v1/time", "/v1/ping",
                                            "/v1/index"):
            if api in ("eapi", "dapi") and not path.endswith("exchangeInfo"):  # one book per symbol
                path = path.replace(f"/{api}/", "/fapi/")
            if path == "/eapi/v1/exchangeInfo":
                return web.json_response(self.option_info())
            if path == "/dapi/v1/exchangeInfo":
                return web.json_response(self.coin_m_info())
            if path == "/fapi/v1/exchangeInfo":
                return web.json_response(self.exchange_info())
            if path == "/fapi/v1/time":
                return web.json_response({"serverTime": now_ms()})
            if path == "/fapi/v1/ping":
                return web.json_response({})
            if path == "/fapi/v1/index":  # the eapi options index (rewritten above)
                return web.json_response({"time": now_ms(), "indexPrice": str(self.index_price)})
            book = self.books.get(params.get("symbol", ""), Book())
            limit = int(params.get("limit", "500"))
            return web.json_response({"lastUpdateId": next(self._ids), "E": now_ms(), "T": now_ms(),
                                      "bids": book.rows("bids", limit), "asks": book.rows("asks", limit)})
        if not self._signed(request, raw):
            return self.error(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        if path in ("/fapi/v1/order", "/eapi/v1/order", "/dapi/v1/order") and request.method == "POST":
            return await self._create(params, "clientOrderId" if api == "eapi" else "newClientOrderId")
        if path in ("/fapi/v1/order", "/eapi/v1/order", "/dapi/v1/order") and request.method == "GET":
            self.lookups.append(params)
            key = params.get("clientOrderId" if api == "eapi" else "origClientOrderId")
            found = [o for o in self.orders.values() if o["symbol"] == params.get("symbol") and (
                str(o["orderId"]) == params.get("orderId") or (key and o["clientOrderId"] == key))]
            if not found:
                return self.error(-2013, "Order does not exist.")
            return web.json_response(found[-1])
        return self.error(-1000, f"fake binance: no route {request.method} {path}", status=404)

    async def _create(self, req: dict[str, str], field: str) -> web.Response:
        self.order_requests.append({k: v for k, v in req.items() if k not in ("signature", "timestamp")})
        if self.on_order is not None:  # the test's market moves as the order arrives
            self.on_order()
        key = req.get(field, "")
        if not key:
            self.problems.append(f"order without {field}: {req}")
        if len(key) > 36:
            return self.error(-1102, f"Param '{field}' is too long.")
        if req.get("symbol", "").startswith("BTCUSD_") and Decimal(req.get("quantity", "0")) % 1:
            self.problems.append(f"a fractional COIN-M quantity: {req.get('quantity')}")
            return self.error(-1111, "Precision is over the maximum defined for this asset.")
        refused = await before_match(
            self, rate_limited=self.error(-1003, "Too many requests; current limit is 2400 requests per "
                                                 "minute.", status=429),
            insufficient=self.error(-2019, "Margin is insufficient."),
            lost=self.error(-1001, "Internal error; unable to process your request. Please try again.",
                            status=503))
        if refused is not None:
            return refused
        order = self._match(req)
        await after_match(self)
        return web.json_response(order)

    async def start(self) -> None:
        self._runner, self.url = await serve(self.handle, "/{tail:.*}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
