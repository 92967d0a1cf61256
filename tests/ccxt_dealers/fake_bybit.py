"""A local fake of Bybit's v5 REST API, written from Bybit's public API documentation, served
to a real ccxt ``bybit`` instance (``exchange.urls['api']`` pointed here). Transport-level
only: ccxt's request building, signing, parsing and error mapping all run for real.

What Bybit documents and this fake follows (https://bybit-exchange.github.io/docs/v5/intro):
- every answer is ``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {},
  "time": ms}``; an error has a non-zero ``retCode`` (10006 "Too many visits!" with HTTP 403
  is the rate limit, 110007 "ab not enough for new order" insufficient balance, 10003
  "API key is invalid.": https://bybit-exchange.github.io/docs/v5/error);
- private calls carry ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-RECV-WINDOW`` and
  ``X-BAPI-SIGN``: the HMAC-SHA256 of ``timestamp + api key + recv window + (query string |
  JSON body)`` (https://bybit-exchange.github.io/docs/v5/guide), which the fake checks;
- ``GET /v5/market/instruments-info`` by ``category``
  (https://bybit-exchange.github.io/docs/v5/market/instrument): ``linear`` (``BTCUSDT``,
  ``LinearPerpetual``, settled in USDT, ``qty`` in BTC, step 0.001), ``inverse``
  (``BTCUSD``, ``InversePerpetual``, settled in BTC, ``qty`` in USD, contracts of 1 USD),
  ``option`` (``BTC-DDMMMYY-50000-P``, settled in USDC, premium in USDC, ``qty`` in BTC);
- ``GET /v5/market/orderbook`` (``b``/``a`` as ``[price, size]`` strings);
- ``POST /v5/order/create`` (``category``, ``symbol``, ``side`` Buy/Sell, ``orderType``,
  ``qty``, ``price``, ``timeInForce``, ``orderLinkId``: the answer is only ``orderId`` and
  ``orderLinkId``: https://bybit-exchange.github.io/docs/v5/order/create-order), matched
  against the served book as an IOC;
- ``GET /v5/order/realtime`` and ``/v5/order/history`` by ``orderLinkId`` (a list).

Recorded bodies: the create-order answer (``orderId`` and ``orderLinkId`` only) and the
``/v5/asset/coin/query-info`` rows are shaped as ccxt's recorded responses for Bybit have
them (``ts/src/test/static/response/bybit.json``, read, not copied); the order rows as
Bybit's ``/v5/order/realtime`` documentation lists the fields (with ``cumFeeDetail``, which
ccxt reads the fee from).

Fees: linear trades pay ``taker_fee`` of the traded value in the settlement coin; inverse
trades ``qty / price * taker_fee`` BTC (``cumExecFee``, and ``cumFeeDetail`` by coin); option
trades Bybit's options schedule, "Minimum (Taker/Maker Fee Rate x Index Price, Maximum
Proportion of Transaction in Order Price x Option Traded Price) x Option Traded Size", taker
0.03%, capped at 7% of the option price
(https://www.bybit.com/en/help-center/article/Bybit-Option-Fees-Explained), at ``index_price``,
which ``GET /v5/market/tickers?category=option`` serves as ``indexPrice``
(https://bybit-exchange.github.io/docs/v5/market/tickers).

Scripted: ``order_mode`` ``normal`` | ``slow`` (booked and filled, answered after ccxt's
timeout) | ``lost`` (never booked, answered late) | ``insufficient`` | ``rate_limited`` (the
next order call answers 10006 and books nothing) | ``partial`` (a book thinner than the
order: the IOC fills what is there). Read: ``order_requests``, ``executed``, ``problems``.
The book, the IOC matching, the scripted outcomes and the options fee are ``fake_book.py``'s,
shared with the fake Binance.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.ccxt_dealers.fake_book import Book, after_match, before_match, option_fee
from tests.ccxt_dealers.local_server import serve

API_KEY = "bybit-key"
SECRET = "bybit-secret"
OPTION_FEE_RATE, OPTION_FEE_CAP = Decimal("0.0003"), Decimal("0.07")


def now_ms() -> int:
    return int(time.time() * 1000)


def option_name(d: date) -> str:
    return f"BTC-{d.day}{d.strftime('%b').upper()}{d.strftime('%y')}-50000-P"


@dataclass
class FakeBybit:
    option_expiry: date
    books: dict[str, Book] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    order_requests: list[dict[str, Any]] = field(default_factory=list)
    on_order: Callable[[], None] | None = None
    lookups: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    order_mode: str = "normal"
    slow_s: float = 1.5
    taker_fee: Decimal = Decimal("0.00055")
    index_price: Decimal = Decimal("60000")
    """The options' ``indexPrice`` (``/v5/market/tickers``), what the options fee is charged on."""
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _runner: web.AppRunner | None = None

    @property
    def executed(self) -> int:
        return sum(1 for o in self.orders.values() if Decimal(o["cumExecQty"]) > 0)

    # --- instruments -------------------------------------------------------------------------

    def instruments(self, category: str) -> list[dict[str, Any]]:
        price = {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"}
        if category == "linear":
            return [{"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
                     "baseCoin": "BTC", "quoteCoin": "USDT", "settleCoin": "USDT",
                     "launchTime": "1585526400000",
                     "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
                     "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                     "priceFilter": price,
                     "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                       "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                       "minNotionalValue": "5"},
                     "unifiedMarginTrade": True, "fundingInterval": 480, "copyTrading": "both",
                     "upperFundingRate": "0.005", "lowerFundingRate": "-0.005", "isPreListing": False}]
        if category == "inverse":
            return [{"symbol": "BTCUSD", "contractType": "InversePerpetual", "status": "Trading",
                     "baseCoin": "BTC", "quoteCoin": "USD", "settleCoin": "BTC",
                     "launchTime": "1542211200000",
                     "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
                     "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                     "priceFilter": {"minPrice": "0.50", "maxPrice": "999999.00", "tickSize": "0.50"},
                     "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "1", "qtyStep": "1",
                                       "postOnlyMaxOrderQty": "1000000", "maxMktOrderQty": "200000",
                                       "minNotionalValue": "1"},
                     "unifiedMarginTrade": False, "fundingInterval": 480, "copyTrading": "none",
                     "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False}]
        if category == "option":
            expiry = int(datetime.combine(self.option_expiry, dtime(8, 0), tzinfo=UTC).timestamp() * 1000)
            return [{"symbol": option_name(self.option_expiry), "optionsType": "Put", "status": "Trading",
                     "baseCoin": "BTC", "quoteCoin": "USD", "settleCoin": "USDC",
                     "launchTime": "1700000000000", "deliveryTime": str(expiry), "deliveryFeeRate": "0.00015",
                     "priceFilter": {"minPrice": "5", "maxPrice": "10000000", "tickSize": "5"},
                     "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": "0.01", "qtyStep": "0.01"}}]
        return []

    def category_of(self, symbol: str) -> str:
        for category in ("linear", "inverse", "option"):
            if any(i["symbol"] == symbol for i in self.instruments(category)):
                return category
        return ""

    def set_book(self, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.books[symbol] = Book.of(bids, asks)

    # --- the matcher -------------------------------------------------------------------------

    def _match(self, req: dict[str, Any]) -> dict[str, Any]:
        symbol, side = req["symbol"], req["side"]
        qty, limit = Decimal(req["qty"]), Decimal(req["price"])
        filled, value, fee = Decimal(0), Decimal(0), Decimal(0)
        inverse = req["category"] == "inverse"
        settle = {"linear": "USDT", "inverse": "BTC", "option": "USDC"}[req["category"]]
        for px, take in self.books.setdefault(symbol, Book()).take(side == "Buy", qty, limit):
            filled += take
            value += take / px if inverse else take * px
            if req["category"] == "option":  # min(0.03% of the index, 7% of the price) per BTC
                fee += option_fee(OPTION_FEE_RATE, OPTION_FEE_CAP, self.index_price, px, take)
            else:
                fee += (take / px if inverse else take * px) * self.taker_fee
        average = (filled / value if inverse else value / filled) if filled else Decimal(0)
        status = "Filled" if filled == qty else ("PartiallyFilledCanceled" if filled else "Cancelled")
        order_id = f"b{next(self._ids)}-0000-4000-8000-{next(self._ids):012d}"
        order = {"orderId": order_id, "orderLinkId": req.get("orderLinkId", ""), "blockTradeId": "",
                 "symbol": symbol, "price": req["price"], "qty": req["qty"], "side": side, "isLeverage": "",
                 "positionIdx": 0, "orderStatus": status, "cancelType": "UNKNOWN" if filled == qty else "",
                 "rejectReason": "EC_NoError", "avgPrice": str(average.normalize()) if filled else "",
                 "leavesQty": "0", "leavesValue": "0", "cumExecQty": str(filled),
                 "cumExecValue": str(value.quantize(Decimal("1e-10")).normalize()),
                 "cumExecFee": str(fee.quantize(Decimal("1e-10")).normalize()),
                 "cumFeeDetail": {settle: str(fee.quantize(Decimal("1e-10")).normalize())} if filled else {},
                 "timeInForce": req["timeInForce"],
                 "orderType": req["orderType"], "stopOrderType": "", "orderIv": "", "triggerPrice": "0.00",
                 "takeProfit": "0.00", "stopLoss": "0.00", "tpTriggerBy": "", "slTriggerBy": "",
                 "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "", "reduceOnly": False,
                 "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "",
                 "tpLimitPrice": "", "slLimitPrice": "", "placeType": "", "createdTime": str(now_ms()),
                 "updatedTime": str(now_ms()), "category": req["category"]}
        self.orders[order_id] = order
        return order

    # --- handlers ----------------------------------------------------------------------------

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                                  "time": now_ms()})

    @staticmethod
    def error(code: int, msg: str, status: int = 200) -> web.Response:
        return web.json_response({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {},
                                  "time": now_ms()}, status=status)

    def _signed(self, request: web.Request, payload: str) -> bool:
        h = request.headers
        if h.get("X-BAPI-API-KEY") != API_KEY:
            return False
        text = f"{h.get('X-BAPI-TIMESTAMP', '')}{API_KEY}{h.get('X-BAPI-RECV-WINDOW', '')}{payload}"
        expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, h.get("X-BAPI-SIGN", ""))

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        text = await request.text() if request.method == "POST" else ""
        query = dict(request.query)
        if not path.startswith("/v5/market/") and not self._signed(
                request, text if request.method == "POST" else request.query_string):
            return self.error(10003, "API key is invalid.", status=401)
        if path == "/v5/market/instruments-info":
            rows = [] if query.get("status") == "PreLaunch" else self.instruments(query.get("category", ""))
            return self.ok({"category": query.get("category"), "list": rows, "nextPageCursor": ""})
        if path == "/v5/market/orderbook":
            book = self.books.get(query.get("symbol", ""), Book())
            limit = int(query.get("limit", "25"))
            return self.ok({"s": query.get("symbol"), "b": book.rows("bids", limit),
                            "a": book.rows("asks", limit), "ts": now_ms(),
                            "u": next(self._ids), "seq": next(self._ids), "cts": now_ms()})
        if path == "/v5/market/tickers" and query.get("category") == "option":
            names = [i["symbol"] for i in self.instruments("option") if i["symbol"] == query.get("symbol")]
            return self.ok({"category": "option", "list": [{
                "symbol": name, "indexPrice": str(self.index_price), "underlyingPrice": str(self.index_price),
                "markPrice": "0", "bid1Price": "0", "ask1Price": "0"} for name in names]})
        if path == "/v5/asset/coin/query-info":  # https://bybit-exchange.github.io/docs/v5/asset/coin-info
            return self.ok({"rows": [
                {"name": c, "coin": c, "remainAmount": "1000000", "chains": [
                    {"chainType": c, "confirmation": "1", "withdrawFee": "0", "depositMin": "0",
                     "withdrawMin": "0.001", "chain": c, "chainDeposit": "1", "chainWithdraw": "1",
                     "minAccuracy": "8", "withdrawPercentageFee": "0"}]}
                for c in ("BTC", "USDT", "USDC")]})
        if path == "/v5/order/create":
            return await self._create(json.loads(text or "{}"))
        if path in ("/v5/order/realtime", "/v5/order/history"):
            self.lookups.append({"path": path, **query})
            mine = [o for o in self.orders.values()
                    if o["orderLinkId"] == query.get("orderLinkId") and o["symbol"] == query.get("symbol")]
            return self.ok({"list": mine, "nextPageCursor": "", "category": query.get("category")})
        return self.error(10001, f"fake bybit: no route {request.method} {path}", status=404)

    async def _create(self, req: dict[str, Any]) -> web.Response:
        self.order_requests.append(dict(req))
        if self.on_order is not None:  # the test's market moves as the order arrives
            self.on_order()
        if not req.get("orderLinkId"):
            self.problems.append(f"order without orderLinkId: {req}")
        if len(str(req.get("orderLinkId", ""))) > 36:
            return self.error(10001, "orderLinkId is too long")
        if self.category_of(str(req.get("symbol"))) != req.get("category"):
            return self.error(10001, "params error: symbol and category do not match")
        refused = await before_match(self, rate_limited=self.error(10006, "Too many visits!", status=403),
                                     insufficient=self.error(110007, "ab not enough for new order"),
                                     lost=self.error(10016, "Internal server error."))
        if refused is not None:
            return refused
        order = self._match(req)
        await after_match(self)
        return self.ok({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]})

    async def start(self) -> None:
        self._runner, self.url = await serve(self.handle, "/{tail:.*}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
