"""Each venue's idempotency key: the field that carries our client order id, and how to
find an order by it again.

Why this table exists (issue 12): ccxt's unified ``clientOrderId`` param is mapped to the
venue's own field on some venues only. On Deribit it is not: ccxt sends ``clientOrderId``
as a stray query param, the venue ignores it, and every look-up by it answers "not
found". An order whose reply was lost then looked unplaced, and the engine awarded the
next dealer: two executions. So the adapter never relies on ccxt's mapping: it sends the
venue's own field and looks the order up with the venue's own call, both named here.

- OKX ``clOrdId``: 1-32 letters and digits, case-sensitive. Look-up:
  ``fetchOrder(None, symbol, {"clOrdId": key})`` (GET /api/v5/trade/order).
- Deribit ``label``: up to 64 characters. Look-up: ``privateGetGetOrderStateByLabel``
  with ``currency`` and ``label`` (private/get_order_state_by_label, a list).
- Bybit ``orderLinkId``: up to 36 letters, digits, ``-`` and ``_``. Look-up:
  ``privateGetV5OrderRealtime``, then ``privateGetV5OrderHistory``, with ``orderLinkId``.
- Binance ``newClientOrderId``: ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``. Look-up:
  ``fetchOrder(None, symbol, {"origClientOrderId": key})`` (GET order).

Sources (the venues' public API documentation):
- OKX place order, ``clOrdId``: https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order
  and order details: https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-details
  (the 1-32 case-sensitive alphanumeric rule as restated, with that link, by
  https://nautilustrader.io/docs/rust-api-nightly/nautilus_okx/common/consts/constant.OKX_MAX_CLORDID_LEN.html).
- Deribit ``label`` and the look-up by label ("user defined label for the order (maximum
  64 characters)", filtered by ``currency`` and ``label``, a list of recent orders):
  https://docs.deribit.com/api-reference/trading/private-get_order_state_by_label and
  https://docs.deribit.com/api-reference/trading/private-buy; labels are *not* unique at
  Deribit ("multiple orders with the same ... DeribitLabel"):
  https://docs.deribit.com/fix-api/production/order-cancel-replace.
- Bybit ``orderLinkId`` ("no longer than 36 characters and should be unique"; numbers,
  letters, dashes and underscores): https://bybit-exchange.github.io/docs/v5/order/create-order,
  https://bybit-exchange.github.io/docs/derivatives/unified/place-order; the look-ups:
  https://bybit-exchange.github.io/docs/v5/order/open-order (open and the 500 most recent
  closed orders) and https://bybit-exchange.github.io/docs/v5/order/order-list (history).
- Binance ``newClientOrderId``: "arbitrary unique ID among open orders" (spot,
  https://developers.binance.com/docs/binance-spot-api-docs/testnet/web-socket-api/trading-requests);
  the charset rule ``^[\\.A-Z\\:/a-z0-9_-]{1,N}$`` is quoted from
  https://developers.binance.com/docs/derivatives/portfolio-margin/trade, where N is 32. The
  table's 36 (spot, USD-M futures) could not be quoted from the documentation searched;
  the 32-character default key fits either limit. The look-up by ``origClientOrderId`` ("either orderId or
  origClientOrderId must be sent"; a cancelled order with no fill is not found after 3
  days, any order after 90):
  https://developers.binance.com/docs/derivatives/coin-margined-futures/trade/Query-Order.

The key (``derive_key``): our prefix, then the SHA-256 of the execution id in hex, cut to
32 characters by default (the shortest limit above: OKX, and Binance portfolio margin).
Only letters and digits, starting with a letter: valid on every venue here, and the same
for every retry and restart. The journal records the key with the intent, so a look-up
always uses the key that was really sent.

What the key is *not*: a venue-side guard against a second order. Binance keeps it unique
among open orders only, Deribit not at all. Exactly once comes from the journal (an
intent is never sent twice); the key is how an order whose reply was lost is found.

Units (issue 16): each dialect also carries its venue's ``Units`` (``units.py``): what order
and book amounts count, the contract size as the venue documents it, the premium and fee
currencies, checked against ``load_markets()`` when a book dealer starts.

This module never imports ccxt; the look-ups call methods on the exchange they are given.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dealer_adapters.ccxt.route import client_id
from dealer_adapters.ccxt.units import BINANCE, BYBIT, DERIBIT, OKX, Units
from rfq_engine.domain.venue import VenueMarket

__all__ = [
    "DEFAULT_KEY_LEN",
    "DIALECTS",
    "Dialect",
    "LookupFn",
    "derive_key",
    "dialect_for",
]

DEFAULT_KEY_LEN = 32
"""Length of a derived key unless ``client_order_id_max_len`` says otherwise."""

LookupFn = Callable[[Any, str, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]
"""``(exchange, key, context) -> orders``: every order the venue has under ``key``, as
ccxt's unified order structures (an empty list: the venue answered and has none). A call
that fails raises; the caller treats that as "cannot say"."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one venue carries and finds our idempotency key."""

    venue: str
    """Display name (``Deribit``)."""
    field: str
    """The order-placement param that carries our key (``label``)."""
    max_len: int
    """Longest key the venue takes."""
    allowed: re.Pattern[str]
    """The venue's rule for a whole key (characters and length), for ``fullmatch``."""
    rule: str
    """The rule in words, for messages and the docs."""
    lookup_call: str
    """The look-up, in words (``private/get_order_state_by_label``)."""
    source: str
    """The venue's documentation of the field."""
    find: LookupFn
    """The look-up itself."""
    context: Callable[[VenueMarket], dict[str, Any]]
    """What ``find`` needs besides the key, from the order's market; journaled with the
    intent so a look-up after a restart does not depend on the markets loaded then."""
    units: Units
    """What the venue's amounts count, its contract sizes and fee currency (``units.py``)."""
    refusals: tuple[str, ...] = ()
    """The venue's error codes for an order it refused (nothing placed), as they appear in the
    error text: ccxt maps some of them by the API host only (Binance: behind a gateway or a
    testnet URL its ``-2019`` "Margin is insufficient." is a bare ``OperationFailed``)."""
    read_back_by_key: bool = False
    """The order is read back with ``find`` (by our key), not ``fetchOrder`` by the venue's id
    (Bybit: ccxt's ``fetchOrder`` there needs an acknowledgement and sees 500 orders only)."""

    def refused(self, exc: BaseException) -> bool:
        """Whether ``exc`` carries one of the venue's documented refusal codes."""
        text = str(exc).replace(" ", "")
        return any(f'"code":{code}' in text for code in self.refusals)

    def valid(self, key: str) -> bool:
        return self.allowed.fullmatch(key) is not None

    def key_len(self, configured: int | None) -> int:
        """The key length for a dealer: ``configured`` (checked against ``max_len`` by the
        config) or the default, never more than the venue takes."""
        return min(configured if configured is not None else DEFAULT_KEY_LEN, self.max_len)


def derive_key(dialect: Dialect, execution_id: str, prefix: str, length: int | None = None) -> str:
    """Our key for ``execution_id`` at this venue: deterministic, and valid by its rule."""
    key = client_id(execution_id, prefix, dialect.key_len(length))
    if not dialect.valid(key):  # cannot happen with letters and digits; a table error if it does
        raise ValueError(f"{dialect.venue} {dialect.field}: derived key {key!r} breaks the rule "
                         f"{dialect.rule}")
    return key


def _not_found(exc: BaseException) -> bool:
    return "OrderNotFound" in {cls.__name__ for cls in type(exc).__mro__}


def _symbol(market: VenueMarket) -> dict[str, Any]:
    return {"symbol": market.symbol}


# --- OKX --------------------------------------------------------------------------------------


async def _okx_find(exchange: Any, key: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        order: dict[str, Any] = await exchange.fetch_order(None, context["symbol"], {"clOrdId": key})
    except Exception as exc:
        if _not_found(exc):  # OKX 51603 "Order does not exist"
            return []
        raise
    return [order] if order else []


# --- Binance ----------------------------------------------------------------------------------


async def _binance_find(exchange: Any, key: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        order: dict[str, Any] = await exchange.fetch_order(
            None, context["symbol"], {"origClientOrderId": key})
    except Exception as exc:
        if _not_found(exc):  # Binance -2013 "Order does not exist"
            return []
        raise
    return [order] if order else []


# --- Bybit ------------------------------------------------------------------------------------


def _bybit_context(market: VenueMarket) -> dict[str, Any]:
    if market.type == "spot":
        category = "spot"
    elif market.type == "option":
        category = "option"
    else:
        category = "inverse" if market.inverse else "linear"
    return {"symbol": market.symbol, "market_id": market.id, "category": category}


async def _bybit_find(exchange: Any, key: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    request = {"category": context["category"], "symbol": context["market_id"], "orderLinkId": key}
    market = exchange.market(context["symbol"])
    for call in (exchange.privateGetV5OrderRealtime, exchange.privateGetV5OrderHistory):
        response = await call(dict(request))
        rows = ((response or {}).get("result") or {}).get("list") or []
        mine = [r for r in rows if isinstance(r, dict) and r.get("orderLinkId") == key]
        if mine:
            return [exchange.parse_order(row, market) for row in mine]
    return []


# --- Deribit ----------------------------------------------------------------------------------


def _deribit_context(market: VenueMarket) -> dict[str, Any]:
    # get_order_state_by_label is filtered by a currency; a USDC-settled linear instrument
    # is listed under its settlement currency, a spot pair under its base. Ask each in turn.
    currencies: list[str] = []
    for ccy in (market.settle, market.base, market.quote):
        if ccy and ccy.upper() not in currencies:
            currencies.append(ccy.upper())
    return {"symbol": market.symbol, "currencies": currencies}


async def _deribit_find(exchange: Any, key: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    for currency in context["currencies"]:
        response = await exchange.privateGetGetOrderStateByLabel({"currency": currency, "label": key})
        rows = (response or {}).get("result") or []
        mine = [r for r in rows if isinstance(r, dict) and r.get("label") == key]
        if mine:
            return [exchange.parse_order(row) for row in mine]
    return []


DIALECTS: dict[str, Dialect] = {}


def _register(ids: tuple[str, ...], dialect: Dialect) -> None:
    for exchange_id in ids:
        DIALECTS[exchange_id] = dialect


_register(("okx",), Dialect(
    venue="OKX", field="clOrdId", max_len=32, allowed=re.compile(r"[A-Za-z0-9]{1,32}"),
    rule="1-32 letters and digits, case-sensitive",
    lookup_call='fetchOrder(None, symbol, {"clOrdId": key}) (GET /api/v5/trade/order)',
    source="https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order",
    find=_okx_find, context=_symbol, units=OKX,
))
_register(("deribit",), Dialect(
    venue="Deribit", field="label", max_len=64, allowed=re.compile(r".{1,64}", re.DOTALL),
    rule="up to 64 characters",
    lookup_call="privateGetGetOrderStateByLabel({currency, label}) (private/get_order_state_by_label)",
    source="https://docs.deribit.com/api-reference/trading/private-get_order_state_by_label",
    find=_deribit_find, context=_deribit_context, units=DERIBIT,
))
_register(("bybit",), Dialect(
    venue="Bybit", field="orderLinkId", max_len=36, allowed=re.compile(r"[A-Za-z0-9_-]{1,36}"),
    rule="up to 36 letters, digits, '-' and '_'",
    lookup_call="privateGetV5OrderRealtime, then privateGetV5OrderHistory, with orderLinkId",
    source="https://bybit-exchange.github.io/docs/v5/order/create-order",
    find=_bybit_find, context=_bybit_context, units=BYBIT, read_back_by_key=True,
))
_register(("binance", "binanceusdm", "binancecoinm"), Dialect(
    venue="Binance", field="newClientOrderId", max_len=36,
    allowed=re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}"),
    rule=r"^[\.A-Z\:/a-z0-9_-]{1,36}$",
    lookup_call='fetchOrder(None, symbol, {"origClientOrderId": key}) (GET order)',
    source="https://developers.binance.com/docs/derivatives/portfolio-margin/trade",
    find=_binance_find, context=_symbol, units=BINANCE,
    refusals=("-2010", "-2018", "-2019"),  # order rejected, balance or margin insufficient
))


def dialect_for(exchange_id: str) -> Dialect | None:
    """The dialect of a ccxt exchange id, or None: this venue's key is not mapped here."""
    return DIALECTS.get(exchange_id)
