"""A local fake of OKX's v5 REST API, serving the venue's real JSON shapes to a real ccxt
``okx`` instance (``exchange.urls['api']['rest']`` pointed here). Transport-level only:
ccxt's request building, signing, parsing and error mapping all run for real.

What it serves: instruments (spot, linear and inverse swaps, a dated future, coin-margined
options of 0.01 BTC, premium in BTC, fee min(0.03% of the underlying, 7% of the premium)),
currencies, order books and tickers, the ``BTC-USD`` index (``market/index-tickers``), batch
order placement with an IOC matcher against the served book, order look-up by
``ordId``/``clOrdId``, convert quotes/trades/history, and the block-RFQ endpoints. Scripted
behaviours: a delayed order answer (the order is booked first: a client timeout),
insufficient funds, refused credentials, orders invisible to the first N look-ups.
"""

from __future__ import annotations

import asyncio
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

from tests.ccxt_dealers.local_server import serve

API_KEY = "test-key"


def ms(d: date) -> str:
    return str(int(datetime.combine(d, dtime(8, 0), tzinfo=UTC).timestamp() * 1000))


def yymmdd(d: date) -> str:
    return d.strftime("%y%m%d")


def now_ms() -> int:
    return int(time.time() * 1000)


def _instrument(**fields: str) -> dict[str, str]:
    base = {"instType": "", "instId": "", "uly": "", "instFamily": "", "baseCcy": "", "quoteCcy": "",
            "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "ctType": "", "optType": "",
            "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "", "tickSz": "0.1",
            "lotSz": "1", "minSz": "1", "alias": "", "state": "live", "maxLmtSz": "100000000",
            "maxMktSz": "1000000"}
    base.update(fields)
    return base


@dataclass
class FakeOkx:
    future_expiry: date
    option_expiry: date
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickers: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ordId
    order_requests: list[dict[str, Any]] = field(default_factory=list)
    on_order: Callable[[], None] | None = None
    lookups: list[dict[str, str]] = field(default_factory=list)
    order_mode: str = "normal"  # normal | slow | insufficient
    slow_s: float = 1.5
    hide_lookups: int = 0  # an order is "not found" for this many look-ups by clOrdId
    lookups_fail: bool = False  # every order look-up answers 50001 (the venue's state out of reach)
    auth_ok: bool = True
    convert_requests: list[dict[str, Any]] = field(default_factory=list)
    convert_trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    convert_price: str = "40000.5"
    index_price: str = "60000"
    """``GET /api/v5/market/index-tickers`` ``BTC-USD`` ``idxPx``."""
    rfqs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rfq_requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    maker_quotes: list[dict[str, Any]] = field(default_factory=list)
    """Quotes every RFQ receives (``legs`` priced by instId); set by the test."""
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _runner: web.AppRunner | None = None

    @property
    def executed(self) -> int:
        """Orders that traded (any filled size)."""
        return sum(1 for o in self.orders.values() if Decimal(o.get("accFillSz") or "0") > 0)

    # --- instruments -------------------------------------------------------------------

    def instruments(self, inst_type: str, uly: str | None) -> list[dict[str, str]]:
        fut, opt = self.future_expiry, self.option_expiry
        if inst_type == "SPOT":
            return [_instrument(instType="SPOT", instId="BTC-USDT", baseCcy="BTC", quoteCcy="USDT",
                                lotSz="0.00000001", minSz="0.00001", lever="10"),
                    _instrument(instType="SPOT", instId="ETH-USDT", baseCcy="ETH", quoteCcy="USDT",
                                lotSz="0.000001", minSz="0.0001", tickSz="0.01")]
        if inst_type == "SWAP":
            return [_instrument(instType="SWAP", instId="BTC-USDT-SWAP", uly="BTC-USDT",
                                instFamily="BTC-USDT", settleCcy="USDT", ctVal="0.01", ctMult="1",
                                ctValCcy="BTC", ctType="linear",
                                lotSz="0.01", minSz="0.01", lever="100"),
                    _instrument(instType="SWAP", instId="BTC-USD-SWAP", uly="BTC-USD", instFamily="BTC-USD",
                                settleCcy="BTC", ctVal="100", ctMult="1", ctValCcy="USD", ctType="inverse",
                                lotSz="1", minSz="1", lever="100")]
        if inst_type == "FUTURES":
            return [_instrument(instType="FUTURES", instId=f"BTC-USDT-{yymmdd(fut)}", uly="BTC-USDT",
                                instFamily="BTC-USDT", settleCcy="USDT", ctVal="0.01", ctMult="1",
                                ctValCcy="BTC", ctType="linear", expTime=ms(fut), alias="quarter",
                                lotSz="1", minSz="1", lever="50")]
        if inst_type == "OPTION" and uly == "BTC-USD":
            return [_instrument(instType="OPTION", instId=f"BTC-USD-{yymmdd(opt)}-50000-C", uly="BTC-USD",
                                instFamily="BTC-USD", settleCcy="BTC", ctVal="0.01", ctMult="1",
                                ctValCcy="BTC", optType="C", stk="50000", expTime=ms(opt),
                                tickSz="0.0005", lotSz="1", minSz="1")]
        return []

    # --- helpers -----------------------------------------------------------------------

    def set_book(self, inst_id: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                 ts: int | None = None) -> None:
        self.books[inst_id] = {"bids": [[p, s, "0", "1"] for p, s in bids],
                               "asks": [[p, s, "0", "1"] for p, s in asks],
                               "ts": str(now_ms() if ts is None else ts)}

    @staticmethod
    def ok(data: list[Any]) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    @staticmethod
    def error(code: str, msg: str, status: int = 200, data: list[Any] | None = None) -> web.Response:
        return web.json_response({"code": code, "msg": msg, "data": data or []}, status=status)

    def _authorized(self, request: web.Request) -> bool:
        return self.auth_ok and request.headers.get("OK-ACCESS-KEY") == API_KEY

    def _match(self, req: dict[str, Any]) -> dict[str, Any]:
        """Fill an IOC limit order against the served book (consuming it) and book the order."""
        inst, side = req["instId"], req["side"]
        size, limit = Decimal(req["sz"]), Decimal(req["px"])
        book = self.books.get(inst, {"bids": [], "asks": []})
        levels = book["asks"] if side == "buy" else book["bids"]
        filled, cost = Decimal(0), Decimal(0)
        for level in levels:
            px, avail = Decimal(level[0]), Decimal(level[1])
            if (side == "buy" and px > limit) or (side == "sell" and px < limit) or filled >= size:
                break
            take = min(avail, size - filled)
            filled += take
            cost += take * px
            level[1] = str(avail - take)
        book["asks" if side == "buy" else "bids"] = [lv for lv in levels if Decimal(lv[1]) > 0]
        avg = (cost / filled) if filled else Decimal(0)
        if inst.startswith("BTC-USD-") and inst.endswith(("-C", "-P")):  # options: 0.01 BTC contracts
            fee_ccy = "BTC"  # min(0.03% of the underlying, 7% of the premium), in BTC
            fee = -min(filled * Decimal("0.01") * Decimal("0.0003"),
                       filled * Decimal("0.01") * avg * Decimal("0.07"))
        elif inst == "BTC-USD-SWAP":  # inverse: 100 USD contracts, the fee in the settlement coin (BTC)
            fee_ccy = "BTC"
            fee = Decimal(0) if not filled else -(filled * 100 / avg * Decimal("0.0005")).quantize(
                Decimal("1e-10"))
        else:
            fee_ccy = "USDT"
            ct_val = Decimal("0.01") if inst.startswith("BTC-USDT-") else Decimal(1)  # linear swap/future
            fee = -(filled * ct_val * avg * Decimal("0.0005"))
        order_id = str(next(self._ids))
        order = {"instType": "SWAP" if inst.endswith("SWAP") else "SPOT", "instId": inst, "ordId": order_id,
                 "clOrdId": req.get("clOrdId", ""), "px": req["px"], "sz": req["sz"],
                 "ordType": req["ordType"],
                 "side": side, "state": "filled" if filled == size else "canceled",
                 "accFillSz": str(filled), "avgPx": str(avg) if filled else "", "fee": str(fee),
                 "feeCcy": fee_ccy, "cTime": str(now_ms()), "uTime": str(now_ms()),
                 "fillTime": str(now_ms()), "tgtCcy": req.get("tgtCcy", ""), "tdMode": req.get("tdMode", "")}
        self.orders[order_id] = order
        return order

    # --- handlers ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v5/")
        query = dict(request.query)
        body: Any = None
        if request.method == "POST":
            text = await request.text()
            body = json.loads(text) if text else {}
        public = path.startswith(("public/", "market/"))
        if not public and not self._authorized(request):
            return self.error("50111", "Invalid OK-ACCESS-KEY", status=401)
        route = getattr(self, "h_" + path.replace("/", "_").replace("-", "_"), None)
        if route is None:
            return self.error("50000", f"fake okx: no route {request.method} {path}", status=404)
        result: web.Response = await route(query, body)
        return result

    async def h_public_instruments(self, q: dict[str, str], _b: Any) -> web.Response:
        return self.ok(self.instruments(q["instType"], q.get("uly")))

    async def h_asset_currencies(self, _q: dict[str, str], _b: Any) -> web.Response:
        return self.ok([{"ccy": c, "chain": f"{c}-{c}", "name": c, "canDep": True, "canWd": True,
                         "canInternal": True, "minWd": "0.001", "maxWd": "1000", "wdTickSz": "8",
                         "fee": "0.0001", "minFee": "0.0001", "maxFee": "0.001", "mainNet": True}
                        for c in ("BTC", "ETH", "USDT", "USD")])

    async def h_market_books(self, q: dict[str, str], _b: Any) -> web.Response:
        book = self.books.get(q["instId"])
        if book is None:
            return self.error("51001", "Instrument ID does not exist")
        return self.ok([book])

    async def h_market_index_tickers(self, q: dict[str, str], _b: Any) -> web.Response:
        if q.get("instId") != "BTC-USD":
            return self.error("51001", "Instrument ID does not exist")
        return self.ok([{"instId": "BTC-USD", "idxPx": self.index_price, "high24h": self.index_price,
                         "low24h": self.index_price, "open24h": self.index_price,
                         "sodUtc0": self.index_price, "sodUtc8": self.index_price, "ts": str(now_ms())}])

    async def h_market_ticker(self, q: dict[str, str], _b: Any) -> web.Response:
        ticker = self.tickers.get(q["instId"])
        if ticker is None:
            return self.error("51001", "Instrument ID does not exist")
        return self.ok([{"instType": "SWAP", "instId": q["instId"], **ticker}])

    async def h_trade_batch_orders(self, _q: dict[str, str], body: Any) -> web.Response:
        req = body[0]
        self.order_requests.append(req)
        if self.on_order is not None:  # the test's market moves as the order arrives
            self.on_order()
        if self.order_mode == "ratelimit":  # refused before it was booked
            return self.error("50011", "Too Many Requests", status=429)
        if self.order_mode == "insufficient":
            return self.error("1", "All operations failed", data=[{
                "clOrdId": req.get("clOrdId", ""), "ordId": "", "tag": "", "sCode": "51008",
                "sMsg": "Order failed. Insufficient USDT margin in account"}])
        order = self._match(req)
        if self.order_mode == "slow":  # booked, but the answer comes after the client gave up
            await asyncio.sleep(self.slow_s)
        return self.ok([{"clOrdId": order["clOrdId"], "ordId": order["ordId"], "tag": "", "sCode": "0",
                         "sMsg": "Order placed"}])

    async def h_trade_order(self, q: dict[str, str], _b: Any) -> web.Response:
        self.lookups.append(q)
        if self.lookups_fail:  # OKX 50001 "Service temporarily unavailable"
            return self.error("50001", "Service temporarily unavailable. Please try again later.", status=503)
        if "ordId" in q:
            order = self.orders.get(q["ordId"])
        else:
            if self.hide_lookups > 0:
                self.hide_lookups -= 1
                order = None
            else:
                order = next((o for o in self.orders.values() if o["clOrdId"] == q.get("clOrdId")), None)
        if order is None:
            return self.error("51603", "Order does not exist")
        return self.ok([order])

    # convert

    async def h_asset_convert_estimate_quote(self, _q: dict[str, str], body: Any) -> web.Response:
        self.convert_requests.append(body)
        size = Decimal(body["rfqSz"])
        price = Decimal(self.convert_price) if body["side"] == "sell" else Decimal(self.convert_price) + 10
        quote_id = f"quoter{body['baseCcy']}-{body['quoteCcy']}{next(self._ids)}"
        return self.ok([{"baseCcy": body["baseCcy"], "baseSz": str(size), "clQReqId": "",
                         "cnvtPx": str(price), "origRfqSz": str(size), "quoteCcy": body["quoteCcy"],
                         "quoteId": quote_id,
                         "quoteSz": str(size * price), "quoteTime": str(now_ms()), "rfqSz": str(size),
                         "rfqSzCcy": body["rfqSzCcy"], "side": body["side"], "ttlMs": "10000"}])

    async def h_asset_convert_trade(self, _q: dict[str, str], body: Any) -> web.Response:
        self.convert_requests.append(body)
        size = Decimal(body["sz"])
        price = Decimal(self.convert_price) if body["side"] == "sell" else Decimal(self.convert_price) + 10
        trade = {"baseCcy": body["baseCcy"], "clTReqId": body.get("clTReqId", ""), "fillBaseSz": str(size),
                 "fillPx": str(price), "fillQuoteSz": str(size * price),
                 "instId": f"{body['baseCcy']}-{body['quoteCcy']}", "quoteCcy": body["quoteCcy"],
                 "quoteId": body["quoteId"], "side": body["side"], "state": "fullyFilled",
                 "tradeId": f"trader{next(self._ids)}", "ts": str(now_ms())}
        self.convert_trades[trade["clTReqId"]] = trade
        return self.ok([trade])

    async def h_asset_convert_history(self, q: dict[str, str], _b: Any) -> web.Response:
        trade = self.convert_trades.get(q.get("clTReqId", ""))
        return self.ok([trade] if trade else [])

    # block RFQ

    async def h_rfq_create_rfq(self, _q: dict[str, str], body: Any) -> web.Response:
        self.rfq_requests.append(("create", body))
        rfq_id = str(next(self._ids))
        rfq = {"rfqId": rfq_id, "clRfqId": body.get("clRfqId", ""), "state": "active",
               "validUntil": str(now_ms() + 300_000), "counterparties": body["counterparties"],
               "legs": body["legs"], "cTime": str(now_ms()), "uTime": str(now_ms()), "traderCode": "TAKER",
               "allowPartialExecution": False}
        self.rfqs[rfq_id] = rfq
        return self.ok([rfq])

    def _quotes(self, rfq_id: str) -> list[dict[str, Any]]:
        rfq = self.rfqs[rfq_id]
        out = []
        for i, maker in enumerate(self.maker_quotes):
            out.append({"rfqId": rfq_id, "clRfqId": rfq["clRfqId"], "quoteId": f"{rfq_id}-q{i}",
                        "clQuoteId": "", "quoteSide": maker["quoteSide"],
                        "state": maker.get("state", "active"),
                        "validUntil": str(now_ms() + maker.get("ttl_ms", 60_000)),
                        "traderCode": maker.get("maker", f"MM{i}"), "cTime": str(now_ms()),
                        "uTime": str(now_ms()),
                        "legs": [{"instId": leg["instId"], "sz": leg["sz"], "side": leg["side"],
                                  "px": maker["px"][leg["instId"]], "tgtCcy": ""} for leg in rfq["legs"]]})
        return out

    async def h_rfq_quotes(self, q: dict[str, str], _b: Any) -> web.Response:
        return self.ok(self._quotes(q["rfqId"]) if q.get("rfqId") in self.rfqs else [])

    async def h_rfq_execute_quote(self, _q: dict[str, str], body: Any) -> web.Response:
        self.rfq_requests.append(("execute", body))
        rfq = self.rfqs.get(body["rfqId"])
        quote = next((x for x in self._quotes(body["rfqId"]) if x["quoteId"] == body["quoteId"]), None)
        if rfq is None or quote is None or rfq["state"] != "active":
            return self.error("70001", "Quote does not exist")
        rfq["state"] = "filled"
        trade = {"blockTdId": str(next(self._ids)), "rfqId": body["rfqId"], "clRfqId": rfq["clRfqId"],
                 "quoteId": body["quoteId"], "clQuoteId": "", "tTraderCode": "TAKER",
                 "mTraderCode": quote["traderCode"], "cTime": str(now_ms()),
                 "legs": [{"instId": leg["instId"], "px": leg["px"], "sz": leg["sz"], "side": leg["side"],
                           "fee": "-0.5", "feeCcy": "USDT", "tradeId": str(next(self._ids))}
                          for leg in quote["legs"]]}
        rfq["trade"] = trade
        return self.ok([trade])

    async def h_rfq_trades(self, q: dict[str, str], _b: Any) -> web.Response:
        rfq = self.rfqs.get(q.get("rfqId", ""))
        return self.ok([rfq["trade"]] if rfq and "trade" in rfq else [])

    async def h_rfq_rfqs(self, q: dict[str, str], _b: Any) -> web.Response:
        rfq = self.rfqs.get(q.get("rfqId", ""))
        return self.ok([rfq] if rfq else [])

    async def h_rfq_cancel_rfq(self, _q: dict[str, str], body: Any) -> web.Response:
        self.rfq_requests.append(("cancel", body))
        rfq = self.rfqs.get(body.get("rfqId", ""))
        if rfq is not None and rfq["state"] == "active":
            rfq["state"] = "canceled"
        return self.ok([{"rfqId": body.get("rfqId"), "clRfqId": "", "sCode": "0", "sMsg": ""}])

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._runner, self.url = await serve(self.handle, "/api/v5/{tail:.*}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
