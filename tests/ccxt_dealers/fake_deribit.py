"""A local fake of Deribit's JSON-RPC-over-HTTP API (v2), written from Deribit's public
documentation, served to a real ccxt ``deribit`` instance (``exchange.urls['api']['rest']``
pointed here). Transport-level only: ccxt's request building, ``deri-hmac-sha256``
signing, parsing and error mapping all run for real.

What Deribit documents and this fake follows:
- the envelope: ``{"jsonrpc": "2.0", "id": .., "result": ..., "usIn": .., "usOut": ..,
  "usDiff": .., "testnet": ..}``; an error is ``{"jsonrpc": "2.0", "error": {"code": ..,
  "message": ..}, ...}`` with HTTP 400 (https://docs.deribit.com/articles/json-rpc-overview);
- a method is ``GET /api/v2/<scope>/<method>?params`` (what ccxt sends), or a JSON-RPC
  request ``{"jsonrpc", "id", "method", "params"}`` POSTed to ``/api/v2`` or to the
  method's path;
- ``public/auth`` (``grant_type=client_credentials``) issues a bearer token
  (https://docs.deribit.com/api-reference/authentication/public-auth); private methods
  take ``Authorization: Bearer <token>`` or the signed ``deri-hmac-sha256 id=..,ts=..,
  sig=..,nonce=..`` header (HMAC-SHA256 of ``ts\\nnonce\\nMETHOD\\nURI\\nBODY\\n``), which is
  what ccxt signs;
- ``public/get_currencies``, ``public/get_instruments``, ``public/get_order_book``,
  ``public/ticker``;
- ``private/buy`` / ``private/sell`` (``instrument_name``, ``amount``, ``type``, ``price``,
  ``time_in_force``, ``label``; the answer is ``{"order": .., "trades": [..]}``),
  ``private/get_order_state`` (by ``order_id``) and ``private/get_order_state_by_label``
  (``currency`` + ``label``: a *list*: Deribit does not keep labels unique)
  (https://docs.deribit.com/api-reference/trading/private-get_order_state_by_label).

Instruments, as ``public/get_instruments`` describes them: ``BTC_USDC`` (spot: amounts in
BTC), ``BTC_USDC-PERPETUAL`` (``instrument_type`` ``linear``, settled in USDC,
``contract_size`` 0.001, ``min_trade_amount`` 0.001: amounts in BTC), ``BTC-PERPETUAL`` and,
with ``future_expiry``, the dated ``BTC-DDMMMYY`` (``reversed``: inverse, settled in BTC,
amounts in USD, ``contract_size`` 10 USD, ``min_trade_amount`` 10). "For perpetual and
inverse futures the amount is in USD units. For options and linear futures it is the
underlying base currency coin" (``private/buy``, ``amount``); book amounts are the same
units. Limit IOC orders are matched against the served book, which they consume.

With ``option_expiry``, BTC options ``BTC-DDMMMYY-50000-P``/``-C`` (``quote_currency`` BTC: the
premium is in BTC per contract of 1 BTC, ``counter_currency`` USD, settled in BTC, amounts in
BTC, ``min_trade_amount`` 0.1, tick 0.0001); their ``public/ticker`` carries ``index_price``
(``index_price``, settable) and ``timestamp``; their fee is Deribit's options schedule
(``OPTION_FEE_RATE`` per contract, capped at ``OPTION_FEE_CAP`` of the price), in BTC.

Fees (``taker_fee``, a fraction of the traded value): charged in the instrument's
settlement currency, as each trade's ``fee_currency`` states it: USDC on the linear
perpetual (``amount * price * fee``), BTC on inverse futures (``amount / price * fee``);
spot in the base coin. The order's ``commission`` is their sum; ``average_price`` the
amount-weighted average of the trades' prices.

What a test scripts and reads:
- ``order_mode``: ``normal``; ``slow`` (the order is booked and filled at once, the reply
  comes ``slow_s`` later: past ccxt's timeout, so the reply is lost); ``lost`` (the request
  arrives but nothing is booked, and the reply comes too late: the venue never has the
  order); ``insufficient`` (refused: ``not_enough_funds``); ``rate_limited`` (the next order
  is refused with 10028 ``too_many_requests``, "Allowed request rate has been exceeded");
- ``hide_lookups``: the first N look-ups by label answer an empty list;
- ``fail_lookups_for(seconds)``: for that long every order look-up (``get_order_state``,
  ``get_order_state_by_label``) answers error ``10040 retry`` ("request can't be processed
  right now and should be retried", in Deribit's list of error codes): the venue's order
  state is out of reach, the orders themselves are unaffected; ``fail_lookups_for(0)``
  ends it;
- ``order_requests`` (every ``buy``/``sell`` param set), ``label_lookups``, ``executed``
  (how many orders traded: the count the exactly-once tests check), ``problems`` (what the
  fake refused that a correct client never sends, e.g. an order without ``label``).
"""

from __future__ import annotations

import asyncio
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

from tests.ccxt_dealers.local_server import serve

API_KEY = "deribit-client-id"
SECRET = "deribit-client-secret"

_FOREVER = 32503708800000  # Deribit's expiration_timestamp of a perpetual
OPTION_FEE_RATE = Decimal("0.0003")
OPTION_FEE_CAP = Decimal("0.125")
"""BTC options: "0.03% of the underlying or 0.0003 BTC per options contract (Capped at 12.5% of
the options price)": https://support.deribit.com/hc/en-us/articles/25944746248989-Fees."""


def now_ms() -> int:
    return int(time.time() * 1000)


def expiry_name(d: date) -> str:
    """Deribit's dated instrument suffix: ``27MAR26``."""
    return f"{d.day}{d.strftime('%b').upper()}{d.strftime('%y')}"


def expiry_ms(d: date) -> int:
    """Deribit's futures expire at 08:00 UTC."""
    return int(datetime.combine(d, dtime(8, 0), tzinfo=UTC).timestamp() * 1000)


def _num(text: str) -> float | int:
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class FakeDeribit:
    books: dict[str, dict[str, list[list[Decimal]]]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by order_id
    order_requests: list[dict[str, str]] = field(default_factory=list)
    on_order: Callable[[], None] | None = None
    label_lookups: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    order_mode: str = "normal"  # normal | slow | lost | insufficient
    slow_s: float = 1.5
    hide_lookups: int = 0
    lookups_fail_until: float = 0.0  # time.monotonic(); see fail_lookups_for
    revoke_after_order: bool = False
    """Once an order is accepted, the API key is revoked: every private call (and
    ``public/auth``) then answers Deribit's 13009 ``unauthorized`` / 13004."""
    revoked: bool = False
    taker_fee: Decimal = Decimal("0.0005")
    future_expiry: date | None = None
    """When set, the dated inverse future ``BTC-<expiry>`` is listed."""
    option_expiry: date | None = None
    """When set, the BTC options ``BTC-<expiry>-50000-P`` and ``-C`` are listed (premium in BTC)."""
    index_price: Decimal = Decimal("60000")
    """``btc_usd``: what ``public/ticker`` answers as ``index_price`` for an option."""
    index_age_ms: int = 0
    """How old the ticker's ``timestamp`` is (a stale index, for the tests)."""
    instrument_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fields to change in ``get_instruments`` (a venue that changed a contract, for the tests)."""
    testnet: bool = True
    url: str = ""
    _tokens: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _runner: web.AppRunner | None = None

    # --- what the tests read ---------------------------------------------------------------

    @property
    def executed(self) -> int:
        """Orders that traded (any filled amount)."""
        return sum(1 for o in self.orders.values() if o["filled_amount"] > 0)

    def fail_lookups_for(self, seconds: float) -> None:
        """Answer every order look-up with ``10040 retry`` for ``seconds`` from now (0 ends it)."""
        self.lookups_fail_until = time.monotonic() + seconds

    def _lookup_gate(self) -> None:
        if time.monotonic() < self.lookups_fail_until:
            raise RpcError(10040, "retry")

    # --- instruments -----------------------------------------------------------------------

    def instruments(self) -> list[dict[str, Any]]:
        created = 1_700_000_000_000
        listed = [
            {"instrument_name": "BTC_USDC", "instrument_id": 1, "kind": "spot", "base_currency": "BTC",
             "quote_currency": "USDC", "counter_currency": "USDC",
             "price_index": "btc_usdc", "tick_size": 1, "min_trade_amount": 0.0001, "contract_size": 0.0001,
             "taker_commission": 0.0, "maker_commission": 0.0, "is_active": True, "rfq": False,
             "creation_timestamp": created, "block_trade_commission": 0.0,
             "block_trade_min_trade_amount": 1, "block_trade_tick_size": 1},
            {"instrument_name": "BTC_USDC-PERPETUAL", "instrument_id": 2, "kind": "future",
             "instrument_type": "linear", "future_type": "linear", "settlement_period": "perpetual",
             "base_currency": "BTC", "quote_currency": "USDC", "counter_currency": "USDC",
             "settlement_currency": "USDC", "price_index": "btc_usdc", "tick_size": 1,
             "min_trade_amount": 0.001, "contract_size": 0.001, "taker_commission": 0.0005,
             "maker_commission": 0.0, "max_leverage": 50, "is_active": True, "rfq": False,
             "creation_timestamp": created, "expiration_timestamp": _FOREVER},
            {"instrument_name": "BTC-PERPETUAL", "instrument_id": 3, "kind": "future",
             "instrument_type": "reversed", "future_type": "reversed", "settlement_period": "perpetual",
             "base_currency": "BTC", "quote_currency": "USD", "counter_currency": "USD",
             "settlement_currency": "BTC", "price_index": "btc_usd", "tick_size": 0.5,
             "min_trade_amount": 10, "contract_size": 10, "taker_commission": 0.0005,
             "maker_commission": 0.0, "max_leverage": 50, "is_active": True, "rfq": False,
             "creation_timestamp": created, "expiration_timestamp": _FOREVER},
        ]
        if self.future_expiry is not None:
            listed.append(
                {"instrument_name": f"BTC-{expiry_name(self.future_expiry)}", "instrument_id": 4,
                 "kind": "future", "instrument_type": "reversed", "future_type": "reversed",
                 "settlement_period": "month", "base_currency": "BTC", "quote_currency": "USD",
                 "counter_currency": "USD", "settlement_currency": "BTC", "price_index": "btc_usd",
                 "tick_size": 2.5, "min_trade_amount": 10, "contract_size": 10, "taker_commission": 0.0005,
                 "maker_commission": -0.0001, "max_leverage": 50, "is_active": True, "rfq": False,
                 "creation_timestamp": created, "expiration_timestamp": expiry_ms(self.future_expiry)})
        if self.option_expiry is not None:
            for letter, kind in (("P", "put"), ("C", "call")):
                listed.append(
                    {"instrument_name": f"BTC-{expiry_name(self.option_expiry)}-50000-{letter}",
                     "instrument_id": 10 + len(listed), "kind": "option", "option_type": kind,
                     "strike": 50000.0, "settlement_period": "month", "base_currency": "BTC",
                     "quote_currency": "BTC", "counter_currency": "USD", "settlement_currency": "BTC",
                     "price_index": "btc_usd", "tick_size": 0.0001, "min_trade_amount": 0.1,
                     "contract_size": 1.0, "taker_commission": 0.0003, "maker_commission": 0.0003,
                     "block_trade_commission": 0.0003, "is_active": True, "rfq": False,
                     "creation_timestamp": created, "expiration_timestamp": expiry_ms(self.option_expiry)})
        return [{**i, **self.instrument_overrides.get(i["instrument_name"], {})} for i in listed]

    def instrument(self, name: str) -> dict[str, Any]:
        found = next((i for i in self.instruments() if i["instrument_name"] == name), None)
        if found is None:
            raise RpcError(10020, "invalid_or_unsupported_instrument", {"param": "instrument_name"})
        return found

    @staticmethod
    def currency_of(instrument: dict[str, Any]) -> str:
        """The currency an instrument is listed (and its orders filtered) under."""
        return str(instrument.get("settlement_currency") or instrument["base_currency"])

    def set_book(self, name: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.books[name] = {"bids": [[Decimal(p), Decimal(a)] for p, a in bids],
                            "asks": [[Decimal(p), Decimal(a)] for p, a in asks]}

    # --- the matcher -------------------------------------------------------------------------

    def _match(self, direction: str, params: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        name = params["instrument_name"]
        instrument = self.instrument(name)
        if params.get("type", "limit") != "limit" or "price" not in params:
            raise RpcError(11050, "bad_request", {"reason": "the fake takes limit orders only"})
        amount, limit = Decimal(params["amount"]), Decimal(params["price"])
        book = self.books.setdefault(name, {"bids": [], "asks": []})
        levels = book["asks"] if direction == "buy" else book["bids"]
        filled, cost, fees, trades = Decimal(0), Decimal(0), Decimal(0), []
        spot = instrument["kind"] == "spot"
        inverse = instrument.get("instrument_type") == "reversed"
        fee_currency = instrument["base_currency"] if spot else instrument["settlement_currency"]
        order_id = f"{self.currency_of(instrument)}-{next(self._ids)}"
        label = params.get("label", "")
        for level in levels:
            px, avail = level
            beyond = px > limit if direction == "buy" else px < limit
            if beyond or filled >= amount:
                break
            take = min(avail, amount - filled)
            filled += take
            cost += take * px
            level[1] = avail - take
            if instrument["kind"] == "option":  # 0.0003 BTC per contract, at most 12.5% of the price
                fee = min(take * OPTION_FEE_RATE, take * px * OPTION_FEE_CAP).quantize(Decimal("1e-10"))
            else:
                per_unit = 1 if spot else 1 / px if inverse else px  # base coin, BTC, USDC
                fee = (take * self.taker_fee * per_unit).quantize(Decimal("1e-10"))
            fees += fee
            trades.append({"trade_seq": next(self._ids), "trade_id": f"T-{next(self._ids)}",
                           "timestamp": now_ms(), "tick_direction": 0, "state": "closed",
                           "price": _num(str(px)),
                           "order_type": "limit", "order_id": order_id, "matching_id": None, "liquidity": "T",
                           "label": label, "instrument_name": name,
                           "index_price": _num(str(self.index_price if instrument["kind"] == "option"
                                                    else px)),
                           "fee_currency": fee_currency,
                           "fee": _num(str(fee)), "direction": direction,
                           "amount": _num(str(take))})
        book["asks" if direction == "buy" else "bids"] = [lv for lv in levels if lv[1] > 0]
        tif = params.get("time_in_force", "good_til_cancelled")
        immediate = tif in ("immediate_or_cancel", "fill_or_kill")
        state = "filled" if filled == amount else ("cancelled" if immediate else "open")
        order = {"order_id": order_id, "order_state": state, "order_type": "limit", "time_in_force": tif,
                 "instrument_name": name, "direction": direction, "price": _num(str(limit)),
                 "amount": _num(str(amount)), "filled_amount": _num(str(filled)),
                 "average_price": _num(str(cost / filled)) if filled else 0,
                 "commission": _num(str(fees)), "label": label, "post_only": False,
                 "reject_post_only": False, "api": True, "web": False, "max_show": _num(str(amount)),
                 "is_liquidation": False, "replaced": False, "risk_reducing": False, "mmp": False,
                 "creation_timestamp": now_ms(), "last_update_timestamp": now_ms()}
        if instrument["kind"] == "spot":
            order.pop("is_liquidation")
            order["is_rebalance"] = False
        if state == "cancelled":
            order["cancel_reason"] = "user_request"
        self.orders[order_id] = order
        return order, trades

    # --- methods ---------------------------------------------------------------------------

    async def m_public_auth(self, p: dict[str, str]) -> Any:
        if p.get("grant_type") != "client_credentials":
            raise RpcError(13004, "invalid_credentials", {"reason": "the fake takes client_credentials"})
        if p.get("client_id") != API_KEY or p.get("client_secret") != SECRET or self.revoked:
            raise RpcError(13004, "invalid_credentials")
        token = f"{now_ms()}.{next(self._ids)}.fake-access-token"
        self._tokens.add(token)
        return {"access_token": token, "expires_in": 900, "refresh_token": f"{token}.refresh",
                "scope": "connection mainaccount", "enabled_features": [], "token_type": "bearer"}

    async def m_public_get_time(self, _p: dict[str, str]) -> Any:
        return now_ms()

    async def m_public_get_currencies(self, _p: dict[str, str]) -> Any:
        return [{"currency": c, "currency_long": long, "coin_type": kind, "fee_precision": 4,
                 "min_confirmations": 1, "min_withdrawal_fee": 0.0001, "withdrawal_fee": 0.0001,
                 "withdrawal_priorities": [], "apr": 0}
                for c, long, kind in (("BTC", "Bitcoin", "BITCOIN"), ("USDC", "USD Coin", "ERC20"))]

    async def m_public_get_instruments(self, p: dict[str, str]) -> Any:
        out = self.instruments()
        if p.get("currency") not in (None, "", "any"):
            out = [i for i in out if self.currency_of(i) == p["currency"]]
        if p.get("kind"):
            out = [i for i in out if i["kind"] == p["kind"]]
        return out

    def _book_view(self, name: str, depth: int) -> dict[str, Any]:
        self.instrument(name)
        book = self.books.get(name, {"bids": [], "asks": []})
        bids = [[_num(str(px)), _num(str(a))] for px, a in book["bids"][:depth]]
        asks = [[_num(str(px)), _num(str(a))] for px, a in book["asks"][:depth]]
        best_bid, best_ask = (bids[0] if bids else [0, 0]), (asks[0] if asks else [0, 0])
        mid = (best_bid[0] + best_ask[0]) / 2 if bids and asks else 0
        return {"timestamp": now_ms(), "state": "open", "instrument_name": name, "change_id": next(self._ids),
                "bids": bids, "asks": asks, "best_bid_price": best_bid[0], "best_bid_amount": best_bid[1],
                "best_ask_price": best_ask[0], "best_ask_amount": best_ask[1], "mark_price": mid,
                "index_price": mid, "last_price": mid, "min_price": 0, "max_price": 0, "open_interest": 0,
                "settlement_price": mid, "stats": {"volume": 0, "low": 0, "high": 0}}

    async def m_public_get_order_book(self, p: dict[str, str]) -> Any:
        return self._book_view(p["instrument_name"], int(p.get("depth", "20")))

    async def m_public_ticker(self, p: dict[str, str]) -> Any:
        view = self._book_view(p["instrument_name"], 1)
        view.pop("bids")
        view.pop("asks")
        if self.instrument(p["instrument_name"])["kind"] == "option":  # index in USD, premium in BTC
            view.update(index_price=_num(str(self.index_price)), underlying_price=_num(str(self.index_price)),
                        underlying_index="index_price", timestamp=now_ms() - self.index_age_ms,
                        mark_iv=50.0, interest_rate=0, greeks={"delta": -0.3, "gamma": 0, "vega": 0,
                                                               "theta": 0, "rho": 0})
        return view

    async def _order(self, direction: str, p: dict[str, str]) -> Any:
        self.order_requests.append(dict(p))
        if self.on_order is not None:  # the test's market moves as the order arrives
            self.on_order()
        if not p.get("label"):
            self.problems.append(f"private/{direction} without a label: {p}")
            raise RpcError(11050, "bad_request", {"reason": "the fake requires a label on every order"})
        if len(p["label"]) > 64:
            self.problems.append(f"label longer than 64: {p['label']!r}")
            raise RpcError(11050, "bad_request", {"param": "label", "reason": "maximum 64 characters"})
        if self.order_mode == "insufficient":
            raise RpcError(10009, "not_enough_funds")
        if self.order_mode == "rate_limited":  # refused, nothing booked; the next call is normal
            self.order_mode = "normal"
            raise RpcError(10028, "too_many_requests")
        if self.order_mode == "lost":  # received, never booked; answered after the client gave up
            await asyncio.sleep(self.slow_s)
            raise RpcError(10040, "retry")
        order, trades = self._match(direction, p)
        if self.revoke_after_order:
            self.revoked = True
        if self.order_mode == "slow":  # booked and filled, the answer comes after the client gave up
            await asyncio.sleep(self.slow_s)
        return {"order": order, "trades": trades}

    async def m_private_buy(self, p: dict[str, str]) -> Any:
        return await self._order("buy", p)

    async def m_private_sell(self, p: dict[str, str]) -> Any:
        return await self._order("sell", p)

    async def m_private_get_order_state(self, p: dict[str, str]) -> Any:
        self._lookup_gate()
        order = self.orders.get(p.get("order_id", ""))
        if order is None:
            raise RpcError(10004, "order_not_found")
        return order

    async def m_private_get_order_state_by_label(self, p: dict[str, str]) -> Any:
        self.label_lookups.append(dict(p))
        if "currency" not in p:
            raise RpcError(-32602, "Invalid params", {"param": "currency", "reason": "must be present"})
        self._lookup_gate()
        if self.hide_lookups > 0:
            self.hide_lookups -= 1
            return []
        return [o for o in self.orders.values()
                if o["label"] == p.get("label") and self.currency_of(self.instrument(o["instrument_name"]))
                == p["currency"]]

    # --- transport ---------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if self.revoked:
            return False
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ") in self._tokens
        if not header.startswith("deri-hmac-sha256 "):
            return False
        fields = header.removeprefix("deri-hmac-sha256 ").split(",")
        parts = dict(kv.split("=", 1) for kv in fields if "=" in kv)
        if parts.get("id") != API_KEY:
            return False
        data = f"{request.method}\n{request.raw_path}\n\n"
        signed = f"{parts.get('ts', '')}\n{parts.get('nonce', '')}\n{data}"
        expected = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts.get("sig", ""))

    def _envelope(self, started_us: int, rpc_id: Any, **body: Any) -> dict[str, Any]:
        out_us = int(time.time() * 1_000_000)
        envelope: dict[str, Any] = {"jsonrpc": "2.0"}
        if rpc_id is not None:
            envelope["id"] = rpc_id
        envelope.update(body)
        envelope.update(usIn=started_us, usOut=out_us, usDiff=out_us - started_us, testnet=self.testnet)
        return envelope

    async def handle(self, request: web.Request) -> web.Response:
        started = int(time.time() * 1_000_000)
        rpc_id: Any = None
        method = request.path.removeprefix("/api/v2").strip("/")
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            text = await request.text()
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                payload = {}
            if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
                return web.json_response(self._envelope(started, None, error={
                    "code": -32600, "message": "Invalid Request"}), status=400)
            rpc_id = payload.get("id")
            method = str(payload.get("method") or method)
            params = {k: str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in (payload.get("params") or {}).items()}
        handler = getattr(self, "m_" + method.replace("/", "_"), None)
        try:
            if handler is None:
                raise RpcError(-32601, "Method not found", {"method": method})
            if method.startswith("private/") and not self._authorized(request):
                raise RpcError(13009, "unauthorized")
            result = await handler(params)
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.data:
                error["data"] = exc.data
            return web.json_response(self._envelope(started, rpc_id, error=error), status=400)
        return web.json_response(self._envelope(started, rpc_id, result=result))

    async def start(self) -> None:
        self._runner, self.url = await serve(self.handle, "/api/v2", "/api/v2/{tail:.*}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
