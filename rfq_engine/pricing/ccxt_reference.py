"""Reference prices from an exchange's live market data, through ccxt (``[reference]``).

    [reference]
    exchange = "okx"          # a ccxt exchange id; public market data, no keys needed
    price = "mid"             # "mid" (top of the book) or "mark" (the venue's mark price)
    max_age_s = 5             # data older than this is refused, never used
    spot = { BTC = "USDT" }   # where each underlying's spot is read (notionals, tolerance base)
    currency_aliases = { USD = ["USDT", "USDC"] }
    urls = { rest = "https://gateway.internal" }   # optional, as for ccxt dealers

``CcxtReferenceProvider`` implements ``ReferencePriceProvider``:

- ``package_reference(spec)``: each leg's market is matched by structure with the same
  code the ccxt dealers use (``rfq_engine.domain.venue``), priced at its mid (best bid +
  best ask) / 2, or its mark price (``fetchTicker``'s ``markPrice``; spot has none and
  uses the mid), and netted with the RFQ's leg signs, exactly like the model reference.
  ``underlying_price`` (the base the mandate's tolerance is measured in) is the spot mid
  of the package's underlying. An unlisted leg, an empty book or data older than
  ``max_age_s`` raises ``ReferenceUnavailable`` with the reason; the engine records it,
  and a mandate with a price tolerance then rejects the quotes rather than judge them
  against nothing.
- ``snapshot()`` (notionals for caps and credit) is the ``[market]`` snapshot with each
  configured underlying's spot replaced by the venue's spot mid, stamped with the venue's
  time; volatility, rates and hashprice still come from ``[market]``.

Freshness is judged from the venue's own timestamp (the order book's or ticker's
``timestamp``), falling back to the time the answer arrived when the venue sends none.
ccxt's floats become Decimals once, with ``Decimal(str(x))`` (``venue_decimal``).

The engine stores each RFQ's reference in ``rfq.submitted``; ``rfq_engine.pricing.tca``
turns a fill and the references into slippage in bps.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from rfq_engine.configtypes import STRICT
from rfq_engine.domain.instruments import Future, Instrument, Perpetual, Spot
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.domain.values import decimal_str, format_ts, utc_now
from rfq_engine.domain.venue import NoMarket, OrderBook, VenueMarket, match_market, venue_decimal
from rfq_engine.pricing.config import Seconds
from rfq_engine.pricing.reference import PackageReference, ReferenceUnavailable

__all__ = ["CcxtReferenceConfig", "CcxtReferenceProvider", "LegPrice", "open_ccxt_reference"]


class CcxtReferenceConfig(BaseModel):
    """The ``[reference]`` section: live reference prices from one exchange."""

    model_config = STRICT

    exchange: str
    price: Literal["mid", "mark"] = "mid"
    max_age_s: Seconds = 5.0
    spot: dict[str, str] = Field(default_factory=dict)
    """Underlying -> quote currency of the spot market its price is read from."""
    currency_aliases: dict[str, list[str]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    urls: dict[str, Any] | None = None
    sandbox: bool = Field(default=False, strict=True)
    timeout_ms: int = Field(default=3000, ge=50, le=60_000, strict=True)
    api_key_env: str | None = None
    """Only for venues whose market data needs keys; names an environment variable."""
    secret_env: str | None = None
    password_env: str | None = None

    @field_validator("spot", "currency_aliases")
    @classmethod
    def _upper(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {k.strip().upper(): (v.strip().upper() if isinstance(v, str) else [a.upper() for a in v])
                for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class LegPrice:
    """One instrument's reference at the venue: mid, mark (if any), the price used, and when."""

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    mid: Decimal | None
    mark: Decimal | None
    price: Decimal
    as_of: datetime


def _seconds(delta: timedelta) -> str:
    micros = delta // timedelta(microseconds=1)
    return decimal_str((Decimal(micros) / 1_000_000).quantize(Decimal("0.001")))


class CcxtReferenceProvider:
    """A ``ReferencePriceProvider`` reading one exchange's public market data.

    ``exchange`` is a ccxt ``async_support`` exchange (its markets are loaded by ``start``);
    ``base`` gives what the venue does not (vol, rates, hashprice) for ``snapshot``.
    """

    def __init__(
        self,
        exchange: Any,
        base: Callable[[], MarketSnapshot],
        *,
        max_age: timedelta,
        price: Literal["mid", "mark"] = "mid",
        spot: Mapping[str, str] | None = None,
        currency_aliases: Mapping[str, list[str]] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.exchange = exchange
        self._base = base
        self._max_age = max_age
        self._price = price
        self._spot = dict(spot or {})
        self._aliases = dict(currency_aliases or {})
        self._clock = clock
        self._markets: list[VenueMarket] = []

    @property
    def source(self) -> str:
        return f"ccxt:{self.exchange.id}:{self._price}"

    async def start(self) -> None:
        """Load the venue's markets (once; ``reload`` to refresh listings)."""
        await self.reload()

    async def reload(self) -> None:
        await self.exchange.load_markets(True)
        self._markets = [m for m in (VenueMarket.from_ccxt(raw, int(self.exchange.precisionMode))
                                     for raw in (self.exchange.markets or {}).values()) if m is not None]

    async def close(self) -> None:
        await self.exchange.close()

    def market(self, instrument: Instrument) -> VenueMarket:
        found = match_market(instrument, self._markets, currency_aliases=self._aliases)
        if isinstance(found, NoMarket):
            raise ReferenceUnavailable(f"{self.exchange.id}: {found.reason}")
        return found

    def _fresh(self, symbol: str, stamp: datetime) -> None:
        age = self._clock() - stamp
        if age > self._max_age:
            raise ReferenceUnavailable(
                f"stale: {self.exchange.id} {symbol} as_of {format_ts(stamp)} is {_seconds(age)} s old, "
                f"limit {_seconds(self._max_age)} s"
            )

    async def leg_price(self, instrument: Instrument) -> LegPrice:
        """Mid and mark of ``instrument`` at the venue, checked for staleness."""
        market = self.market(instrument)
        try:
            raw = await self.exchange.fetch_order_book(market.symbol, 5)
            book = OrderBook.from_ccxt(raw)
            stamp = book.timestamp or self._clock()
            mark: Decimal | None = None
            mark_stamp = stamp
            if self._price == "mark" and market.contract:
                ticker = await self.exchange.fetch_ticker(market.symbol)
                if ticker.get("markPrice") is not None:
                    mark = venue_decimal(ticker["markPrice"], f"{market.symbol}.markPrice")
                    if ticker.get("timestamp") is not None:
                        mark_stamp = datetime.fromtimestamp(int(ticker["timestamp"]) / 1000,
                                                            tz=stamp.tzinfo)
        except ReferenceUnavailable:
            raise
        except Exception as exc:  # the venue's errors become "no reference", never a crash
            reason = f"{self.exchange.id} {market.symbol}: {type(exc).__name__}: {exc}"
            raise ReferenceUnavailable(reason[:300]) from exc
        mid = book.mid()
        bid = book.bids[0].price if book.bids else None
        ask = book.asks[0].price if book.asks else None
        if mark is not None:
            self._fresh(market.symbol, mark_stamp)
            return LegPrice(market.symbol, bid, ask, mid, mark, mark, mark_stamp)
        if mid is None:
            raise ReferenceUnavailable(f"{self.exchange.id} {market.symbol}: no two-sided book for a mid")
        self._fresh(market.symbol, stamp)
        return LegPrice(market.symbol, bid, ask, mid, None, mid, stamp)

    async def _underlying_price(self, spec: RfqSpec, legs: list[LegPrice]) -> tuple[Decimal, datetime]:
        instrument = spec.legs[0].instrument
        quote = self._spot.get(instrument.underlying.upper(), instrument.quote_ccy)
        spot = Spot(instrument.underlying, quote)
        if not isinstance(match_market(spot, self._markets, currency_aliases=self._aliases), NoMarket):
            price = await self.leg_price(spot)
            return price.price, price.as_of
        for leg, priced in zip(spec.legs, legs, strict=True):
            if isinstance(leg.instrument, Spot | Perpetual | Future):
                return priced.price, priced.as_of
        raise ReferenceUnavailable(
            f"{self.exchange.id}: no spot, perpetual or future of {instrument.underlying} to measure "
            "quote distances in"
        )

    async def package_reference(self, spec: RfqSpec) -> PackageReference:
        """The package at the venue's mids (or marks), in the RFQ's orientation."""
        legs = list(await asyncio.gather(*(self.leg_price(leg.instrument) for leg in spec.legs)))
        signs = spec.package.leg_signs(spec.direction)
        value = sum((sign * leg.ratio * priced.price for sign, leg, priced in zip(signs, spec.legs, legs,
                                                                                 strict=True)), Decimal(0))
        base, base_as_of = await self._underlying_price(spec, legs)
        as_of = min([base_as_of, *(p.as_of for p in legs)])
        return PackageReference(value=value, underlying_price=base, as_of=as_of, source=self.source,
                                legs=tuple(p.price for p in legs))

    async def snapshot(self) -> MarketSnapshot:
        """``base()`` with each configured underlying's spot read from the venue."""
        base = self._base()
        if not self._spot:
            return base
        spots = dict(base.spot)
        stamps: list[datetime] = []
        for underlying, quote in self._spot.items():
            priced = await self.leg_price(Spot(underlying, quote))
            spots[underlying] = priced.price
            stamps.append(priced.as_of)
        return MarketSnapshot(spot=spots, vol=base.vol, rate=base.rate, basis=base.basis,
                              hashprice=base.hashprice, as_of=min(stamps))


def _exchange(config: CcxtReferenceConfig) -> Any:
    import ccxt.async_support as ccxt_async  # lazy: only when [reference] is configured

    if config.exchange not in ccxt_async.exchanges:
        raise ValueError(f"reference.exchange: {config.exchange!r} is not a ccxt exchange id")
    settings: dict[str, Any] = {"enableRateLimit": True, "timeout": config.timeout_ms,
                                "options": dict(config.options)}
    for key, name in (("apiKey", config.api_key_env), ("secret", config.secret_env),
                      ("password", config.password_env)):
        if name is not None:
            value = os.environ.get(name)
            if not value:
                raise ValueError(f"reference: environment variable {name} is not set")
            settings[key] = value
    exchange = getattr(ccxt_async, config.exchange)(settings)
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.urls:
        api = exchange.urls.get("api")
        exchange.urls["api"] = ({**api, **config.urls} if isinstance(api, dict)
                                else next(iter(config.urls.values())))
    return exchange


async def open_ccxt_reference(config: CcxtReferenceConfig, base: Callable[[], MarketSnapshot],
                              *, exchange: Any = None) -> CcxtReferenceProvider:
    """Build, start (load markets) and return the provider; the caller closes it."""
    provider = CcxtReferenceProvider(
        exchange if exchange is not None else _exchange(config), base,
        max_age=timedelta(seconds=config.max_age_s), price=config.price, spot=config.spot,
        currency_aliases=config.currency_aliases,
    )
    try:
        await provider.start()
    except BaseException:
        await provider.close()
        raise
    return provider
