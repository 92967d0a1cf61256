"""A fake OTC desk speaking the HTTP contract of ``docs/dealers-rest.md`` (aiohttp server).

It runs on 127.0.0.1 on a free port, under the path prefix ``/api`` (so signing covers the
base URL's path), and checks every request's auth on its own (bearer token, or the HMAC
headers recomputed here from the raw request, independently of the adapter's code).

Behaviours are plain attributes a test sets (latency, an error status, a malformed body, a
hang, expired quotes, rejections, an order that hangs and then fills, an order executed
whose reply is lost, an order lost on the way before the desk took it, lookups answered 503
for a while). It records what it saw: quote requests, POSTs and GETs per
``client_order_id`` (so a test can assert that no second order was placed), orders it
refused or never received, how many it executed, the TCP peers (one session, reused),
auth failures.

As the contract requires, it trades only its ``units`` (a quote request or an order in
another unit is answered ``422 unsupported_unit``), refuses an order that reaches it after
the order's ``expires_at`` (``422 order_expired``, no order created: a later GET is a 404),
and never executes an order after its ``expires_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from rfq_engine.domain import decimal_str, format_ts, new_id, utc_now

TOKEN = "test-token-1"
KEY = "test-key-1"
SECRET = "test-secret-1"
MAX_SKEW_MS = 30_000


@dataclass
class FakeQuote:
    quote_id: str
    request: dict[str, Any]
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal
    expires_at: datetime
    expired: bool


@dataclass
class FakeOrder:
    client_order_id: str
    body: dict[str, Any]
    status: str = "pending"
    trade_id: str = ""
    reason: str = ""

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "client_order_id": self.client_order_id,
            "order_id": f"D-{self.client_order_id[-8:]}",
            "status": self.status,
            "quote_id": self.body["quote_id"],
            "side": self.body["side"],
            "price": self.body["price"],
            "quantity": self.body["quantity"],
        }
        if self.status == "filled":
            out["trade_id"] = self.trade_id
        if self.status == "rejected":
            out["reason"] = self.reason
        return out


def _ts(value: object) -> datetime:
    """An ISO 8601 UTC timestamp from a request (a missing one is the distant past)."""
    if not isinstance(value, str):
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class FakeDesk:
    def __init__(self, *, auth: str = "bearer", bid: str = "39990", ask: str = "40010",
                 units: tuple[str, ...] = ("BTC", "PH/s/day")) -> None:
        assert auth in ("bearer", "hmac")
        self.auth = auth
        self.units = units
        self.token, self.key, self.secret = TOKEN, KEY, SECRET
        self.bid = Decimal(bid)
        self.ask = Decimal(ask)
        # behaviours
        self.quote_delay_s = 0.0
        self.quote_hang = False
        self.quote_status: int | None = None
        self.quote_raw: str | None = None
        self.decline_reason: str | None = None
        self.quote_validity_s = 5.0
        self.expire_quotes = False
        self.order_hang_s = 0.0
        self.order_reject_reason: str | None = None
        self.lose_order_reply = False
        """Execute the order, then drop the connection without answering."""
        self.lose_order_request = False
        """The order never reaches the desk: the connection drops before the desk takes it, so
        no order is created and nothing is executed (a later GET is ``404 not_found``, and once
        the order's ``expires_at`` has passed the desk refuses it for good, as the contract
        says). Recorded in ``lost_order_requests``, not in ``order_posts``."""
        self._gets_fail_until = 0.0
        self.get_hang = False
        """Hold every GET until ``release()`` (the client's read timeout fires first)."""
        self.get_raw: str | None = None
        """Answer every GET with this text (status 200): unreadable on purpose."""
        # records
        self.quote_requests: list[dict[str, Any]] = []
        self.quotes: dict[str, FakeQuote] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.order_posts: Counter[str] = Counter()
        self.order_gets: Counter[str] = Counter()
        self.lost_order_requests: list[str] = []
        """Client order ids of orders dropped on the way (``lose_order_request``)."""
        self.refused_orders: list[tuple[str, str]] = []
        """(client_order_id, error code) of orders refused with no order created."""
        self.auth_failures: list[str] = []
        self.peers: set[tuple[str, int]] = set()
        self.quote_arrived = asyncio.Event()
        self.order_arrived = asyncio.Event()
        self.order_decided = asyncio.Event()
        self.order_looked_up = asyncio.Event()
        self._deciding: set[asyncio.Task[None]] = set()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth_middleware])
        app.router.add_post("/api/v1/quotes", self._quote)
        app.router.add_post("/api/v1/orders", self._order)
        app.router.add_get("/api/v1/orders/{client_order_id}", self._get_order)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/api"
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Let every hung handler finish."""
        self._release.set()

    def fail_gets_for(self, seconds: float) -> None:
        """Answer every ``GET /v1/orders/...`` with 503 for ``seconds`` from now (0 ends it)."""
        self._gets_fail_until = time.monotonic() + seconds

    @property
    def executed_count(self) -> int:
        """Orders the desk executed (filled): what the engine's fills must add up to."""
        return sum(1 for order in self.orders.values() if order.status == "filled")

    def trades_unit(self, unit: object) -> bool:
        return isinstance(unit, str) and unit.casefold() in {u.casefold() for u in self.units}

    # --- auth --------------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((peer[0], peer[1]))
        body = await request.read()
        problem = self._check_auth(request, body)
        if problem is not None:
            self.auth_failures.append(problem)
            return _error(401, "unauthorized", problem)
        response: web.StreamResponse = await handler(request)
        return response

    def _check_auth(self, request: web.Request, body: bytes) -> str | None:
        if self.auth == "bearer":
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return "bad or missing bearer token"
            return None
        if request.headers.get("X-Key") != self.key:
            return "unknown key"
        stamp = request.headers.get("X-Timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > MAX_SKEW_MS:
            return "timestamp missing or too far off"
        message = f"{stamp}\n{request.method}\n{request.raw_path}\n".encode() + body
        expected = hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            return "bad signature"
        return None

    # --- quotes ------------------------------------------------------------------------

    async def _quote(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.quote_requests.append(body)
        self.quote_arrived.set()
        if self.quote_hang:
            await self._release.wait()
        if self.quote_delay_s:
            await asyncio.sleep(self.quote_delay_s)
        if self.quote_status is not None:
            return _error(self.quote_status, "internal", "pricing engine down")
        if self.quote_raw is not None:
            return web.Response(text=self.quote_raw, content_type="application/json")
        if self.decline_reason is not None:
            return _error(422, "declined", self.decline_reason)
        side = body.get("side")
        if side not in ("buy", "sell", "two_way") or not isinstance(body.get("quantity"), str):
            return _error(400, "bad_request", "side and quantity (a string) are required")
        if ("instrument" in body) == ("legs" in body):
            return _error(400, "bad_request", "name an instrument or legs")
        if not isinstance(body.get("quantity_unit"), str):
            return _error(400, "bad_request", "quantity_unit (a string) is required")
        if not self.trades_unit(body["quantity_unit"]):
            return _error(422, "unsupported_unit", f"unit {body['quantity_unit']} not traded")
        quote = FakeQuote(
            quote_id=f"Q-{new_id()[-12:]}",
            request=body,
            bid=self.bid if side in ("sell", "two_way") else None,
            ask=self.ask if side in ("buy", "two_way") else None,
            quantity=Decimal(body["quantity"]),
            expires_at=utc_now() + timedelta(seconds=self.quote_validity_s),
            expired=self.expire_quotes,
        )
        self.quotes[quote.quote_id] = quote
        answer: dict[str, Any] = {
            "quote_id": quote.quote_id,
            "client_rfq_id": body.get("client_rfq_id"),
            "quantity": decimal_str(quote.quantity),
            "expires_at": format_ts(quote.expires_at),
        }
        if quote.bid is not None:
            answer["bid"] = decimal_str(quote.bid)
        if quote.ask is not None:
            answer["ask"] = decimal_str(quote.ask)
        return web.json_response(answer, status=201)

    # --- orders ------------------------------------------------------------------------

    async def _order(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        coid = body.get("client_order_id")
        if not isinstance(coid, str) or not coid:
            return _error(400, "bad_request", "client_order_id is required")
        if self.lose_order_request and request.transport is not None:
            self.lost_order_requests.append(coid)
            request.transport.abort()  # lost before the desk took it: no order, no trade
            return _error(503, "unavailable", "connection lost")
        self.order_posts[coid] += 1
        self.order_arrived.set()
        existing = self.orders.get(coid)
        if existing is not None:  # idempotent: the same order, never a second one
            return web.json_response(existing.answer())
        for key in ("quote_id", "side", "price", "quantity"):
            if not isinstance(body.get(key), str):
                return _error(400, "bad_request", f"{key} must be a string")
        if body.get("time_in_force") != "fok":
            return _error(400, "bad_request", "only fok orders")
        if not isinstance(body.get("quantity_unit"), str):
            return _error(400, "bad_request", "quantity_unit (a string) is required")
        if utc_now() > _ts(body.get("expires_at")):  # too late: no order is created, ever
            self.refused_orders.append((coid, "order_expired"))
            return _error(422, "order_expired", "the order reached the desk after its expires_at")
        if not self.trades_unit(body["quantity_unit"]):
            self.refused_orders.append((coid, "unsupported_unit"))
            return _error(422, "unsupported_unit", f"unit {body['quantity_unit']} not traded")
        order = FakeOrder(coid, body)
        self.orders[coid] = order
        # Decided in its own task: a client that gives up on the answer does not stop the trade.
        task = asyncio.get_running_loop().create_task(self._decide_after(order, self.order_hang_s))
        self._deciding.add(task)
        task.add_done_callback(self._deciding.discard)
        await asyncio.shield(task)
        if self.lose_order_reply and request.transport is not None:
            request.transport.abort()  # executed; the reply never reaches the client
        return web.json_response(order.answer())

    async def _decide_after(self, order: FakeOrder, hang_s: float) -> None:
        if hang_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), hang_s)
        self._decide(order)
        self.order_decided.set()

    def _decide(self, order: FakeOrder) -> None:
        body = order.body
        quote = self.quotes.get(body["quote_id"])
        reason = None
        if quote is None:
            reason = "unknown quote"
        elif quote.expired or utc_now() > quote.expires_at:
            reason = "quote expired"
        elif utc_now() > _ts(body["expires_at"]):
            reason = "not decided before its expires_at"
        else:
            quoted = quote.ask if body["side"] == "buy" else quote.bid
            if quoted is None or Decimal(body["price"]) != quoted:
                reason = "price does not match the quote"
            elif Decimal(body["quantity"]) > quote.quantity:
                reason = "quantity exceeds the quote"
            elif self.order_reject_reason is not None:
                reason = self.order_reject_reason
        if reason is None:
            order.status, order.trade_id = "filled", f"T-{new_id()[-12:]}"
        else:
            order.status, order.reason = "rejected", reason

    async def _get_order(self, request: web.Request) -> web.StreamResponse:
        coid = request.match_info["client_order_id"]
        self.order_gets[coid] += 1
        self.order_looked_up.set()
        if self.get_hang:
            await self._release.wait()
        if time.monotonic() < self._gets_fail_until:
            return _error(503, "unavailable", "order service down")
        if self.get_raw is not None:
            return web.Response(text=self.get_raw, content_type="application/json")
        order = self.orders.get(coid)
        if order is None:
            return _error(404, "not_found", f"no order {coid}")
        return web.json_response(order.answer())
