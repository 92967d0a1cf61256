"""Spot conversions through the venue's own firm quotes: ccxt's ``fetchConvertQuote`` /
``createConvertTrade``, where the exchange has them (``exchange.has``).

Quoting: a single spot leg (``Spot(BTC, USD)``, currencies through ``currency_aliases``).
A requester selling BTC asks the venue to convert BTC into the quote currency, amount in
BTC: the unified call. A requester buying an exact amount of BTC needs the amount in the
currency *bought*, which the unified call does not express; OKX takes it as
``side = "buy"`` with the amount in the base currency, and that is the only venue this
route buys on (others get a decline on the ask side). The quote's price is what the venue
quotes, all-in (conversion spreads carry the fee), ``to / from`` amounts oriented as quote
currency per unit of base. Its validity is the venue's own expiry (OKX ``ttlMs``), less
``confirm_margin_ms``, capped by ``convert_validity_ms``.

Execution: the award accepts the venue's quote by its id with ``createConvertTrade``, once.
A convert quote is firm for exactly its amount, so an award for another size is rejected.
OKX takes a client request id (``clTReqId``, derived from the execution id) and
``fetchConvertTrade`` finds the trade by it, so a timed-out accept is reconciled there;
on other venues an unresolved accept is left for manual reconciliation (logged), never
re-sent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.markets import NoMarket, VenueMarket
from dealer_adapters.ccxt.route import (
    DeclinePlan,
    ErrorKind,
    Outcome,
    QuotePlan,
    SentQuote,
    SideQuote,
    classify,
    describe_error,
)
from rfq_engine.domain import Award, RfqId, RfqNew, Side, Spot, decimal_str, format_ts, utc_now
from rfq_engine.domain.venue import (
    match_market,
    package_price,
    quote_sides,
    requester_leg_side,
    venue_decimal,
)

__all__ = ["ConvertRoute", "conversion_price"]

_log = structlog.get_logger(__name__)


def conversion_price(conversion: dict[str, Any], base: str) -> tuple[Decimal, Decimal]:
    """``(price in quote per base, base amount)`` of a ccxt conversion structure.

    From the amounts when both are there (``to / from`` when converting from the base,
    ``from / to`` when converting into it), else from the ``price`` field.
    """
    from_ccy = str(conversion.get("fromCurrency") or "").upper()
    from_amount, to_amount = conversion.get("fromAmount"), conversion.get("toAmount")
    if from_amount is not None and to_amount is not None:
        f = venue_decimal(from_amount, "conversion.fromAmount")
        t = venue_decimal(to_amount, "conversion.toAmount")
        if f > 0 and t > 0:
            if from_ccy == base.upper():
                return t / f, f
            return f / t, t
    price = venue_decimal(conversion.get("price"), "conversion.price")
    amount = venue_decimal(from_amount if from_ccy == base.upper() else to_amount, "conversion.amount")
    return price, amount


def _venue_expiry(conversion: dict[str, Any]) -> datetime | None:
    info = conversion.get("info") or {}
    ttl, stamp = info.get("ttlMs"), info.get("quoteTime") or conversion.get("timestamp")
    if ttl is not None and stamp is not None:
        millis = int(venue_decimal(stamp, "quoteTime")) + int(venue_decimal(ttl, "ttlMs"))
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    valid = info.get("validTimestamp")  # binance: ms epoch
    if valid is not None:
        return datetime.fromtimestamp(int(venue_decimal(valid, "validTimestamp")) / 1000, tz=UTC)
    return None


class ConvertRoute:
    """One dealer answering with the venue's firm conversion quotes."""

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket]) -> None:
        self.exchange = exchange
        self.config = config
        self.markets = markets
        self.poll_interval_s = config.requote_interval_ms / 1000
        self.can_lookup = exchange.id == "okx"

    @property
    def venue(self) -> str:
        return str(self.exchange.id)

    def _pair(self, rfq: RfqNew) -> tuple[str, str] | NoMarket:
        if len(rfq.legs) != 1 or not isinstance(rfq.legs[0].instrument, Spot):
            return NoMarket(f"{self.venue} convert: only single-leg spot conversions are quoted")
        leg = rfq.legs[0]
        instrument = leg.instrument
        if leg.ratio != 1:
            return NoMarket(f"{self.venue} convert: a ratio other than 1 is not a conversion")
        if rfq.quantity_unit.strip().upper() != instrument.underlying.upper():
            return NoMarket(f"{self.venue} convert: quantity must be in {instrument.underlying}")
        found = match_market(instrument, self.markets, currency_aliases=self.config.currency_aliases)
        if isinstance(found, NoMarket):
            # a conversion pair need not be a listed spot market: ask with the RFQ's own codes
            return instrument.underlying.upper(), instrument.quote_ccy.upper()
        return found.base, found.quote

    async def _quote(self, base: str, quote: str, amount: Decimal, order_side: Side) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if order_side is Side.BUY:
            params["side"] = "buy"  # OKX: buy `amount` of the base currency
        result: dict[str, Any] = await self.exchange.fetch_convert_quote(
            base, quote, decimal_str(amount), params)
        return result

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None:
        if not self.exchange.has.get("fetchConvertQuote") or not self.exchange.has.get("createConvertTrade"):
            return DeclinePlan(f"{self.venue} has no unified convert API in this ccxt version")
        pair = self._pair(rfq)
        if isinstance(pair, NoMarket):
            return DeclinePlan(pair.reason)
        base, quote = pair
        leg = rfq.legs[0]
        sides: list[SideQuote] = []
        problems: list[str] = []
        expiries: list[datetime] = []
        now = utc_now()
        for side in quote_sides(rfq.direction):
            order_side = requester_leg_side(rfq.direction, side, leg)
            if order_side is Side.BUY and self.venue != "okx":
                problems.append(f"{self.venue} convert sizes in the currency sold: buying an exact "
                                f"{base} amount is not supported")
                continue
            try:
                conversion = await self._quote(base, quote, rfq.quantity, order_side)
            except Exception as exc:
                if classify(exc) is ErrorKind.AUTH:
                    raise
                problems.append(f"{self.venue} convert quote failed: {describe_error(exc, 200)}")
                continue
            price, amount = conversion_price(conversion, base)
            if amount < rfq.quantity and not rfq.allow_partial:
                problems.append(f"{self.venue} convert quoted {decimal_str(amount)} of "
                                f"{decimal_str(rfq.quantity)} {base}")
                continue
            venue_expiry = _venue_expiry(conversion)
            expiry = venue_expiry if venue_expiry is not None else (
                now + timedelta(milliseconds=self.config.quote_validity_ms))
            expiry -= timedelta(milliseconds=self.config.confirm_margin_ms)
            if self.config.convert_validity_ms is not None:
                expiry = min(expiry, now + timedelta(milliseconds=self.config.convert_validity_ms))
            expiries.append(expiry)
            package = package_price(side, [(order_side, Decimal(1), price)])
            sides.append(SideQuote(side, package, min(amount, rfq.quantity), {
                "venue_quote_id": str(conversion.get("id") or ""), "base": base, "quote": quote,
                "order_side": order_side.value, "amount": decimal_str(min(amount, rfq.quantity)),
                "venue_expiry": format_ts(expiry),
            }))
        if not sides:
            return DeclinePlan("; ".join(problems))
        quantity = min(s.quantity for s in sides)
        valid_until = min(expiries)
        if valid_until <= utc_now():
            return DeclinePlan(f"{self.venue} convert quote expires too soon to be awarded")
        return QuotePlan(tuple(sides), quantity, valid_until)

    async def prepare(
        self, award: Award, sent: SentQuote, rfq: RfqNew, client_id: str
    ) -> dict[str, Any] | str:
        quoted = sent.side(award.side)
        if quoted is None:
            return f"the quote {sent.quote_id} had no {award.side.value}"
        if award.quantity != quoted.quantity:
            return (f"a convert quote is firm for exactly {decimal_str(quoted.quantity)}; "
                    f"awarded {decimal_str(award.quantity)}")
        if utc_now() > sent.plan.valid_until:
            return f"the venue's convert quote expired at {format_ts(sent.plan.valid_until)}"
        detail = quoted.detail
        return {
            "route": "convert",
            "venue_quote_id": detail["venue_quote_id"],
            "base": detail["base"],
            "quote": detail["quote"],
            "side": detail["order_side"],
            "amount": detail["amount"],
            "client_order_id": client_id,
        }

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        price = Decimal(intent["award"]["price"])
        params: dict[str, Any] = {}
        if intent["side"] == Side.BUY.value:
            params["side"] = "buy"
        if self.venue == "okx":
            params["clTReqId"] = intent["client_order_id"]
        try:
            trade = await self.exchange.create_convert_trade(
                intent["venue_quote_id"], intent["base"], intent["quote"], intent["amount"], params)
        except Exception as exc:
            kind = classify(exc)
            if kind is ErrorKind.AUTH:
                raise
            if kind is ErrorKind.REJECTED:
                return Outcome.reject(price, f"venue refused the conversion: {describe_error(exc)}",
                                      error=type(exc).__name__)
            _log.warning("ccxt_convert_call_failed", exchange=self.venue, error=describe_error(exc),
                         client_order_id=intent["client_order_id"], kind=kind.value)
            if kind is ErrorKind.RATE_LIMIT:
                await asyncio.sleep(self.config.rate_limit_backoff_ms / 1000)
            return None
        return self._outcome(trade, intent)

    def _outcome(self, trade: dict[str, Any], intent: dict[str, Any]) -> Outcome | None:
        price = Decimal(intent["award"]["price"])
        info = trade.get("info") or {}
        state = str(info.get("state") or "")
        trade_id = str(info.get("tradeId") or trade.get("id") or "")
        if state in ("rejected", "failed"):
            return Outcome.reject(price, f"the venue rejected the conversion ({state})", trade_id=trade_id)
        if state and state not in ("fullyFilled", "filled", "success", "SUCCESS"):
            return None  # still processing
        details: dict[str, Any] = {"trade_id": trade_id, "state": state}
        note = f"{self.venue}:convert:{trade_id}"
        try:
            fill_price, amount = conversion_price(trade, intent["base"])
            details.update(price=decimal_str(fill_price), amount=decimal_str(amount))
            note += f" px={decimal_str(fill_price)}"
        except (ValueError, ArithmeticError):  # a venue that reports no amounts: the quote stands
            pass
        quantity = Decimal(intent["award"]["quantity"])
        return Outcome(True, quantity, price, note[:200], "", details)

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        if not self.can_lookup:
            return None
        try:
            trade = await self.exchange.fetch_convert_trade(intent["client_order_id"])
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            _log.info("ccxt_convert_lookup", exchange=self.venue, result=describe_error(exc, 120))
            return None
        if not trade or not (trade.get("info") or {}):
            return None
        return self._outcome(trade, intent)

    async def closed(self, rfq_id: RfqId) -> None:
        return None
