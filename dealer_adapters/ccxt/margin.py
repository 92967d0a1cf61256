"""Read-only: a venue's margin account through ccxt (``fetch_balance``, ``fetch_positions``).

Nothing here decides: it carries what the venue states into ``rfq_engine.domain.margin``, and
the risk monitor (``rfq_engine.hedging.risk``) compares it with its thresholds. No order is
placed, no setting changed.

ccxt's unified fields are floats, so every figure is taken, as a ``Decimal``, from the venue's
own string in ``info`` first, and from the unified field only where the venue gave no string:

- **Deribit** (``private/get_account_summary`` for the currency, ``private/get_positions``):
  the account's ``margin_balance`` (else ``equity``), ``initial_margin`` and
  ``maintenance_margin`` in the currency (BTC); a position's ``size`` (USD for inverse
  contracts, signed), ``average_price``, ``mark_price``, ``estimated_liquidation_price``,
  ``initial_margin`` and ``maintenance_margin``. Deribit states no margin ratio.
- **OKX** (``GET /api/v5/account/balance``, ``GET /api/v5/account/positions``): the balance's
  ``details`` entry of the currency: ``eq``, ``imr``, ``mmr``, ``mgnRatio``; a position's
  ``pos`` (contracts, signed in net mode), ``avgPx``, ``markPx``, ``liqPx``, ``imr`` (cross;
  ``margin`` when isolated), ``mmr``, ``mgnRatio``, in its margin currency ``ccy``: positions
  margined in another currency are not this account's.
- **Any other venue**: ccxt's unified ``total`` of the currency as the equity, and each
  position's ``initialMargin``, ``maintenanceMargin``, ``liquidationPrice``, ``entryPrice``,
  ``markPrice``, ``contracts``; the account's margins are then unknown.

A read that fails (the venue unreachable, a refused key, a malformed answer) gives a
``VenueAccountMargin`` with its ``error`` and no figures: the monitor then uses its estimate
and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.exchange import create_exchange
from rfq_engine.domain.margin import VenueAccountMargin, VenuePositionMargin
from rfq_engine.domain.values import utc_now
from rfq_engine.domain.venue import VenueMarket

__all__ = ["MarginReader", "parse_account", "read_account"]


def _dec(value: Any) -> Decimal | None:
    """A venue's number as a ``Decimal``: its string as given, a float through ``repr``; none when
    empty, not a number or not finite."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        out = Decimal(value if isinstance(value, str | int) else repr(float(value)))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return out if out.is_finite() else None


def _first(*values: Any) -> Decimal | None:
    for value in values:
        out = _dec(value)
        if out is not None:
            return out
    return None


def _info(row: Mapping[str, Any]) -> Mapping[str, Any]:
    info = row.get("info")
    return info if isinstance(info, Mapping) else {}


def _market(markets: Mapping[str, Any] | None, symbol: str, precision_mode: int) -> VenueMarket | None:
    market = (markets or {}).get(symbol)
    return VenueMarket.from_ccxt(market, precision_mode) if isinstance(market, Mapping) else None


def _position(exchange_id: str, row: Mapping[str, Any], market: VenueMarket | None) -> VenuePositionMargin:
    info = _info(row)
    side = str(row.get("side") or "")
    if exchange_id == "deribit":
        size = _dec(info.get("size"))
        return VenuePositionMargin(
            str(row.get("symbol")), market, side, size,
            _first(info.get("average_price"), row.get("entryPrice")),
            _first(info.get("mark_price"), row.get("markPrice")),
            _first(info.get("estimated_liquidation_price"), row.get("liquidationPrice")),
            _first(info.get("initial_margin"), row.get("initialMargin")),
            _first(info.get("maintenance_margin"), row.get("maintenanceMargin")))
    if exchange_id == "okx":
        initial = info.get("margin") if info.get("mgnMode") == "isolated" else info.get("imr")
        liquidation = _dec(info.get("liqPx"))
        return VenuePositionMargin(
            str(row.get("symbol")), market, side, _dec(info.get("pos")),
            _first(info.get("avgPx"), row.get("entryPrice")),
            _first(info.get("markPx"), row.get("markPrice")),
            liquidation if liquidation is not None and liquidation > 0 else None,
            _first(initial, row.get("initialMargin")),
            _first(info.get("mmr"), row.get("maintenanceMargin")),
            _dec(info.get("mgnRatio")))
    contracts = _dec(row.get("contracts"))
    if contracts is not None and side == "short":
        contracts = -contracts
    return VenuePositionMargin(
        str(row.get("symbol")), market, side, contracts, _dec(row.get("entryPrice")),
        _dec(row.get("markPrice")), _dec(row.get("liquidationPrice")), _dec(row.get("initialMargin")),
        _dec(row.get("maintenanceMargin")))


def _okx_details(balance: Mapping[str, Any], currency: str) -> Mapping[str, Any]:
    data = _info(balance).get("data")
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
    details = first.get("details")
    for row in details if isinstance(details, list) else []:
        if isinstance(row, Mapping) and str(row.get("ccy", "")).upper() == currency:
            return row
    return {}


def parse_account(*, exchange_id: str, dealer: str, currency: str, balance: Mapping[str, Any],
                  positions: list[Mapping[str, Any]], markets: Mapping[str, Any] | None,
                  precision_mode: int, read_at: datetime) -> VenueAccountMargin:
    """What ``fetch_balance`` and ``fetch_positions`` answered, as the domain's account (pure)."""
    currency = currency.upper()
    unified = balance.get(currency)
    total = unified.get("total") if isinstance(unified, Mapping) else None
    ratio: Decimal | None = None
    if exchange_id == "deribit":
        info = _info(balance)
        equity = _first(info.get("margin_balance"), info.get("equity"), total)
        initial, maintenance = _dec(info.get("initial_margin")), _dec(info.get("maintenance_margin"))
    elif exchange_id == "okx":
        row = _okx_details(balance, currency)
        equity = _first(row.get("eq"), total)
        initial, maintenance, ratio = _dec(row.get("imr")), _dec(row.get("mmr")), _dec(row.get("mgnRatio"))
    else:
        equity, initial, maintenance = _dec(total), None, None
    mine = []
    for row in positions:
        if exchange_id == "okx" and str(_info(row).get("ccy") or currency).upper() != currency:
            continue  # margined in another currency: another account's
        if _dec(row.get("contracts")) == 0:
            continue
        symbol = str(row.get("symbol"))
        mine.append(_position(exchange_id, row, _market(markets, symbol, precision_mode)))
    return VenueAccountMargin(dealer, exchange_id, currency, read_at, equity, initial, maintenance,
                              ratio, tuple(mine))


def _params(exchange_id: str, currency: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if exchange_id == "deribit":  # one currency's summary and positions
        return {"code": currency}, {"currency": currency}
    if exchange_id == "okx":
        return {"ccy": currency}, {}
    return {}, {}


async def read_account(exchange: Any, dealer: str, currency: str,
                       clock: Callable[[], datetime] = utc_now) -> VenueAccountMargin:
    """The account's margin in ``currency`` now, read from ``exchange`` (a ccxt async exchange);
    a failure is the account's ``error``, never raised."""
    exchange_id = str(getattr(exchange, "id", "?"))
    try:
        if getattr(exchange, "markets", None) is None:
            await exchange.load_markets()
        balance_params, position_params = _params(exchange_id, currency.upper())
        balance = await exchange.fetch_balance(balance_params)
        positions = await exchange.fetch_positions(None, position_params)
        return parse_account(exchange_id=exchange_id, dealer=dealer, currency=currency, balance=balance,
                             positions=list(positions or []), markets=exchange.markets,
                             precision_mode=int(exchange.precisionMode), read_at=clock())
    except Exception as exc:  # ccxt's errors, the network's, a malformed answer: reported, never raised
        return VenueAccountMargin.unread(dealer, exchange_id, currency.upper(), clock(),
                                         f"{type(exc).__name__}: {str(exc)[:300]}")


class MarginReader:
    """The margin accounts of some ccxt dealers: ``accounts`` maps a dealer id to its settings and the
    account's margin currency. Each dealer gets an exchange of its own (``create_exchange``, made on
    the first read and kept); ``read`` reads them all at once, ``close`` closes the exchanges."""

    def __init__(self, accounts: Mapping[str, tuple[CcxtDealerConfig, str]],
                 environ: Mapping[str, str] | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self._accounts = dict(accounts)
        self._environ = environ
        self._clock = clock
        self._exchanges: dict[str, Any] = {}

    @property
    def dealers(self) -> list[str]:
        return sorted(self._accounts)

    async def _read(self, dealer: str) -> VenueAccountMargin:
        config, currency = self._accounts[dealer]
        exchange = self._exchanges.get(dealer)
        if exchange is None:
            try:
                exchange = self._exchanges[dealer] = create_exchange(config, self._environ)
            except Exception as exc:  # a missing key, an unknown exchange: the account is unread
                return VenueAccountMargin.unread(dealer, config.exchange, currency.upper(), self._clock(),
                                                 f"{type(exc).__name__}: {exc}")
        return await read_account(exchange, dealer, currency, self._clock)

    async def read(self) -> dict[str, VenueAccountMargin]:
        dealers = self.dealers
        read = await asyncio.gather(*(self._read(d) for d in dealers))
        return dict(zip(dealers, read, strict=True))

    async def close(self) -> None:
        exchanges, self._exchanges = self._exchanges, {}
        for exchange in exchanges.values():
            with contextlib.suppress(Exception):  # a session that already failed: nothing to release
                await exchange.close()
