"""Quotes from the order book and their execution as one limit IOC order.

Quoting (``BookRoute.price``), single-leg packages only:
- the leg's market is matched by structure; the RFQ's size becomes the venue's amount in
  the unit the venue dialect states (``units.py``: contracts, base or quote; checked against
  ``load_markets()`` when the route is built, a market that does not match is refused);
  an inverse contract's size is whole contracts at the walked price (``sizing.py``), the
  residual reported;
- the book is fetched and walked for that size on each side the RFQ needs (the
  requester's sell hits the bids, its buy lifts the asks); the quote is the size-weighted
  price *including* the taker fee (a buyer pays ``vwap * (1 + fee)``, a seller receives
  ``vwap * (1 - fee)``), so it compares with an OTC desk's all-in price; rounded against
  the requester to a thousandth of the venue's tick;
- with ``allow_partial`` the quantity is what the book can fill; otherwise a book too thin
  for the whole size gets a decline;
- it is firm for ``quote_validity_ms`` and refreshed every ``requote_interval_ms``.
A multi-leg package is declined: legging into a collar one order at a time is exactly
the execution risk a package RFQ exists to avoid (on Deribit, ``routes.PackageBookRoute``
trades it as one order on its combo instead: ``combos.py``).

Execution (``prepare`` then ``place``), exactly once:
1. last look, ours: the quote must be known and unexpired, and the book is walked again
   for the awarded size. If the fee-inclusive price moved against the quote by more than
   ``last_look_tolerance_bps``, the award is rejected and nothing is sent;
2. the intent (client order id, market, side, amount, limit) is journaled and fsynced;
3. one limit IOC order: the amount is the awarded size in contracts, the limit the
   deepest level the re-walk reached (the level that makes the quoted size fill; a
   limit at the fee-inclusive average would leave the deeper levels untouched);
4. the order is read back until the venue reports it closed; its filled amount, average
   price and fee make the outcome. A partial fill is a confirm for the filled quantity,
   converted back from the venue's units (``sizing.executed_underlying``). The fee and its
   currency are recorded as the venue states them (the dialect's fee rule: ccxt labels a
   Deribit linear order's USDC fee as BTC), converted to the quote only when charged in the
   base coin.

The client order id travels in the venue's own field (``dialects.py``: OKX ``clOrdId``,
Deribit ``label``, Bybit ``orderLinkId``, Binance ``newClientOrderId``), never in ccxt's
unified ``clientOrderId``, which ccxt does not map on every venue (issue 12: on Deribit it
was dropped, so a look-up by it never found the order). A look-up uses the venue's own
call for that field (``Dialect.find``) and the market context journaled with the intent.
A venue without a dialect gets no ``BookRoute`` (the config refuses it; the route refuses
again, for an exchange built by a custom factory).

Errors of the order call (``classify``): a network error or timeout is reconciled by
looking the order up by client order id, never by sending it again; a rate limit waits
``rate_limit_backoff_ms`` and then does the same; insufficient funds or an invalid order
is a reject with the venue's reason; an authentication error rejects and marks the
dealer down (the adapter does that part).

Price reported to the engine: the engine accepts a confirm only at the awarded price
exactly. An IOC can fill *better* than the quote (the book improved), so the confirm
repeats the awarded price and the real average, fee and price improvement are recorded
in the journal and in ``dealer_trade_id`` (``okx:123 avg=40010.5 fee=2.0005 USDT
improvement_bps=1.2``). See docs/dealers-ccxt.md for the engine change that would let
the fill carry the real price.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal, localcontext
from typing import Any

import structlog

from dealer_adapters.ccxt.book import BookFill, book_from_ccxt, taker_fee
from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.dialects import Dialect, dialect_for
from dealer_adapters.ccxt.exchange import ExchangeSetupError
from dealer_adapters.ccxt.markets import LegMarket, NoMarket, VenueMarket, resolve_legs
from dealer_adapters.ccxt.route import (
    AuthLostAfterSend,
    DeclinePlan,
    ErrorKind,
    Outcome,
    QuotePlan,
    SentQuote,
    SideQuote,
    classify,
    describe_error,
)
from dealer_adapters.ccxt.sizing import (
    QUANTUM,
    executed_underlying,
    floor_quantity,
    intent_units,
    order_amount,
)
from dealer_adapters.ccxt.units import check_markets
from rfq_engine.domain import Award, QuoteSide, RfqId, RfqNew, Side, decimal_str, format_ts, utc_now
from rfq_engine.domain.premium import CoinPremium, IndexPrice
from rfq_engine.domain.venue import (
    package_price,
    quote_sides,
    requester_leg_side,
    round_price,
    venue_decimal,
    walk_market,
)

__all__ = ["BookRoute", "order_outcome"]

_log = structlog.get_logger(__name__)
BPS = Decimal(10_000)
_FINAL = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})


def _quantum(market: VenueMarket) -> Decimal | None:
    """A thousandth of the tick, as a power of ten: quotes keep a sane number of digits."""
    if market.price_step is None:
        return None
    return Decimal(1).scaleb(market.price_step.adjusted() - 3)


def _moved_bps(order_side: Side, quoted: Decimal, now: Decimal) -> Decimal:
    """How far ``now`` is worse than ``quoted`` for the order's side, in bps (negative: better)."""
    if quoted == 0:
        return Decimal(0)
    edge = (now - quoted) if order_side is Side.BUY else (quoted - now)
    return edge / abs(quoted) * BPS


def _fee_in_quote(order: dict[str, Any], intent: dict[str, Any], average: Decimal,
                  stated: tuple[Decimal, str] | None) -> tuple[Decimal, str, Decimal] | None:
    """The order's total fee as charged (``stated`` by the venue dialect's rule, else ccxt's
    fees), its currency, and the same in the quote currency: multiplied by the price only
    when it was charged in the base coin."""
    fees = ([{"cost": stated[0], "currency": stated[1]}] if stated is not None
            else order.get("fees") or ([order["fee"]] if order.get("fee") else []))
    total = Decimal(0)
    currency = ""
    for fee in fees:
        if not fee or fee.get("cost") is None:
            continue
        cost = abs(venue_decimal(fee["cost"], "order.fee.cost"))
        ccy = str(fee.get("currency") or "").upper()
        if currency and ccy and ccy != currency:
            return None  # fees in two currencies: recorded raw, not netted into a price
        currency = currency or ccy
        total += cost
    if not currency and total == 0:
        return Decimal(0), "", Decimal(0)
    if currency == str(intent.get("premium_currency") or "").upper():  # a coin premium: same units
        return total, currency, total
    if currency == str(intent["base"]).upper():
        return total, currency, total * average
    return total, currency, total


def _residual_reason(market: VenueMarket, fill: BookFill, asked: Decimal, unit: str) -> str:
    """A decline for an inverse size that whole contracts do not reach (``sizing.py``'s rule)."""
    count = fill.contracts / market.contract_amount
    return (f"{decimal_str(asked)} {unit} is not a whole number of {market.symbol} contracts of "
            f"{decimal_str(market.contract_size)} {market.contract_ccy} at {decimal_str(fill.vwap)}: "
            f"{decimal_str(count)} contracts (rounded down) are {decimal_str(floor_quantity(fill.quantity))} "
            f"{unit}, a residual of {decimal_str(fill.residual.quantize(QUANTUM).normalize())} {unit}; "
            "the RFQ does not allow partial fills")


def order_outcome(order: dict[str, Any], intent: dict[str, Any], exchange_id: str) -> Outcome | None:
    """The outcome of a closed IOC order, or None while the venue still reports it open.

    Quantities: the venue's filled amount is in its units (``intent["amount_unit"]``); the
    confirm is in package units (the underlying converted back, ``/ ratio``, rounded down so
    it never exceeds the award).
    """
    status = str(order.get("status") or "")
    filled_raw = order.get("filled")
    if status not in _FINAL and not (status == "open" and filled_raw is not None
                                     and venue_decimal(filled_raw, "order.filled")
                                     >= Decimal(intent["amount"])):
        return None
    award_price = Decimal(intent["award"]["price"])
    order_id = str(order.get("id") or "")
    filled = Decimal(0) if filled_raw is None else venue_decimal(filled_raw, "order.filled")
    if filled <= 0:
        return Outcome.reject(award_price, f"IOC order {order_id} filled nothing (status {status}): "
                              "the book moved before the order arrived", order_id=order_id, status=status)
    underlying = executed_underlying(intent, filled)
    quantity = floor_quantity(underlying / Decimal(intent["ratio"]))
    average = venue_decimal(order["average"], "order.average") if order.get("average") is not None else None
    if average is None and order.get("cost") is not None and not intent.get("inverse"):
        average = venue_decimal(order["cost"], "order.cost") / underlying
    settle = str(intent.get("settle") or "")
    details: dict[str, Any] = {"order_id": order_id, "status": status, "filled": decimal_str(filled),
                               "amount_unit": intent.get("amount_unit", "contracts"),
                               "underlying": decimal_str(floor_quantity(underlying))}
    note = f"{exchange_id}:{order_id}"
    if settle:
        details["settlement_currency"] = settle
    premium_ccy = str(intent.get("premium_currency") or "")
    if premium_ccy:
        details.update(premium_currency=premium_ccy, index_price=intent.get("index_price", ""))
    if intent.get("inverse"):
        notional = filled * Decimal(str(intent["amount_value"]))
        details.update(notional=decimal_str(notional), notional_currency=intent.get("contract_ccy", ""),
                       conversion_price=intent["conversion_price"])
    if average is not None:
        details["average"] = decimal_str(average)
        note += f" avg={decimal_str(average)}" + (f" {premium_ccy}" if premium_ccy else "")
        dialect = dialect_for(exchange_id)
        stated = dialect.units.fee_of(intent, order) if dialect is not None else None
        fee = _fee_in_quote(order, intent, average, stated)
        side = Side(intent["side"])
        if fee is not None:
            fee_cost, fee_ccy, fee_quote = fee
            per_unit = fee_quote / underlying
            allin = average + per_unit if side is Side.BUY else average - per_unit
            improvement = -_moved_bps(side, Decimal(intent["quoted_leg_price"]), allin)
            details.update(fee=decimal_str(fee_cost), fee_currency=fee_ccy,
                           fee_in_quote=decimal_str(fee_quote),
                           all_in=decimal_str(allin.quantize(Decimal(1).scaleb(-10))),
                           improvement_bps=decimal_str(improvement.quantize(Decimal("0.01"))))
            note += f" fee={decimal_str(fee_cost)} {fee_ccy}".rstrip()
            note += f" improvement_bps={details['improvement_bps']}"
        else:
            details["fees"] = order.get("fees") or order.get("fee")
    if intent.get("inverse"):
        note += f" notional={details['notional']} {details['notional_currency']}".rstrip()
    if premium_ccy and intent.get("index_price"):  # the fill's price is its conversion at this index
        note += f" premium={premium_ccy} index={intent['index_price']}"
    if settle:
        note += f" settle={settle}"
    return Outcome(True, quantity, award_price, note[:200], "", details)


class BookRoute:
    """One dealer quoting from its venue's order book and executing as a limit IOC order."""

    can_lookup = True

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket]) -> None:
        dialect = dialect_for(str(exchange.id))
        if dialect is None:
            raise ExchangeSetupError(
                f"exchange {exchange.id!r} has no idempotency-key dialect "
                "(dealer_adapters/ccxt/dialects.py): a book dealer there cannot execute exactly once")
        self.dialect: Dialect = dialect
        self.exchange = exchange
        self.config = config
        self.markets, self.refused = check_markets(dialect.units, getattr(exchange, "markets", None), markets)
        if self.refused:
            _log.warning("ccxt_markets_refused", exchange=exchange.id, count=len(self.refused),
                         refused=dict(list(self.refused.items())[:10]),
                         detail="units not as the venue documents them: these markets are not traded")
        self.poll_interval_s = config.requote_interval_ms / 1000

    @property
    def venue(self) -> str:
        return str(self.exchange.id)

    def _resolve(self, rfq: RfqNew) -> LegMarket | NoMarket:
        if len(rfq.legs) > 1:
            return NoMarket(
                f"{self.venue}: a {len(rfq.legs)}-leg package is not executed leg by leg on an order "
                "book (that would leg into it); this venue trades no packages natively"
            )
        legs = resolve_legs(rfq, self.markets, venue=self.venue,
                            currency_aliases=self.config.currency_aliases,
                            require_whole_lots=not rfq.allow_partial, allow_inverse=True,
                            refused=self.refused)
        return legs if isinstance(legs, NoMarket) else legs[0]

    async def _book(self, market: VenueMarket) -> Any:
        return book_from_ccxt(await self.exchange.fetch_order_book(market.symbol, self.config.book_depth))

    def _walk(self, book: Any, market: VenueMarket, side: Side, quantity: Decimal,
              index: Decimal | None = None) -> tuple[Any, Decimal]:
        """The walk with the venue's fee in its price, and the fee as a fraction of the price.

        An option under a published schedule (``Units.option_fees``) pays a fee per unit of
        underlying that depends on the premium: the book is walked without it, the schedule
        gives the fee at that premium, and that fee as a fraction of it is the walk's taker fee
        (``price = vwap +/- fee``). A coin premium's schedule is in the coin; one in USDC or
        USDT (Bybit, Binance) applies its rate to ``index``, the venue's index read at quote
        time (``Units.option_index``)."""
        schedule = self.dialect.units.option_fees
        linear = market.type == "option" and not market.premium_ccy and index is not None
        if schedule is None or not (market.premium_ccy or linear):
            fee = taker_fee(market, self.config.taker_fee)
            return walk_market(book, market, side, quantity, fee), fee
        bare = walk_market(book, market, side, quantity, Decimal(0))
        if bare is None or bare.vwap <= 0:
            return bare, Decimal(0)
        fraction = schedule.per_unit(market, bare.vwap, index if linear and index else Decimal(1)) / bare.vwap
        return walk_market(book, market, side, quantity, fraction), fraction

    def _fee_per_unit(self, market: VenueMarket, premium: Decimal, fraction: Decimal) -> Decimal:
        """The fee per unit of underlying in the premium's coin: the venue's schedule exactly
        (not through the walk's fraction, which rounds), else ``fraction`` of the premium."""
        schedule = self.dialect.units.option_fees
        if schedule is not None:
            return schedule.per_unit(market, premium)
        with localcontext() as ctx:
            ctx.prec = 40
            return abs(premium) * fraction

    async def _index(self, market: VenueMarket) -> IndexPrice | None:
        rule = self.dialect.units.index
        return None if rule is None or not market.premium_ccy else await rule(self.exchange, market)

    async def _fee_index(self, market: VenueMarket) -> Decimal | None:
        """An option priced in USDC or USDT under a published schedule: the index its fee's rate
        applies to (``Units.option_index``); None for anything else."""
        rule = self.dialect.units.option_index
        if rule is None or market.type != "option" or market.premium_ccy:
            return None
        return (await rule(self.exchange, market)).price

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None:
        resolved = self._resolve(rfq)
        if isinstance(resolved, NoMarket):
            return DeclinePlan(resolved.reason)
        market, leg = resolved.market, resolved.leg
        if market.premium_ccy and self.dialect.units.index is None:
            return DeclinePlan(f"{self.venue}: {market.symbol} quotes its premium in {market.premium_ccy} "
                               "and this venue has no index price to convert it at")
        book = await self._book(market)
        index = await self._index(market)
        fee_index = await self._fee_index(market)
        problems: list[str] = []
        fills = {}
        fees: dict[QuoteSide, Decimal] = {}
        for side in quote_sides(rfq.direction):
            order_side = requester_leg_side(rfq.direction, side, leg)
            fill, fees[side] = self._walk(book, market, order_side, resolved.quantity, fee_index)
            book_side = "asks" if order_side is Side.BUY else "bids"
            if fill is None:
                problems.append(
                    f"no {book_side} in the {market.symbol} book" if not market.inverse else
                    f"{decimal_str(resolved.quantity)} {leg.instrument.underlying} is less than one "
                    f"{market.symbol} contract of {decimal_str(market.contract_size)} "
                    f"{market.contract_ccy} (or the {book_side} are empty)")
            elif not fill.complete and not rfq.allow_partial:
                problems.append(f"the {market.symbol} {book_side} hold {decimal_str(fill.quantity)} of "
                                f"{decimal_str(resolved.quantity)} {leg.instrument.underlying}")
            elif fill.residual > 0 and not rfq.allow_partial:
                problems.append(_residual_reason(market, fill, resolved.quantity, leg.instrument.underlying))
            elif market.min_amount is not None and fill.contracts < market.min_amount:
                problems.append(f"the fillable size is below the minimum of {market.symbol}")
            else:
                fills[side] = (order_side, fill)
        if not fills:
            return DeclinePlan(f"{self.venue}: " + "; ".join(problems))
        # one quantity for the quote: the smallest side, each side re-walked at it
        quantity = min(fill.quantity for _, fill in fills.values())
        priced = []
        for side, (order_side, fill) in fills.items():
            if fill.quantity != quantity:
                refill, fees[side] = self._walk(book, market, order_side, quantity, fee_index)
                if refill is None:
                    return DeclinePlan(f"{self.venue}: the {market.symbol} book has no whole contract "
                                       f"for {decimal_str(quantity)} on the {order_side.value} side")
                fill = refill
            priced.append((side, order_side, fill))
        package_qty = floor_quantity(min(fill.quantity for _, _, fill in priced) / leg.ratio)
        sides: list[SideQuote] = []
        natives: dict[QuoteSide, tuple[Decimal, Decimal]] = {}
        for side, order_side, fill in priced:
            up = side is QuoteSide.ASK
            if index is not None:  # the venue's premium and fee in its coin; the engine converts
                native = round_price(package_price(side, [(order_side, leg.ratio, fill.vwap)]),
                                     _quantum(market), up=up)
                fee_unit = self._fee_per_unit(market, fill.vwap, fees[side]) * leg.ratio
                natives[side] = (native, fee_unit)
                price = native + fee_unit if up else native - fee_unit
            else:
                raw = package_price(side, [(order_side, leg.ratio, fill.price)])
                price = round_price(raw, _quantum(market), up=up)
            detail = {
                "symbol": market.symbol, "order_side": order_side.value,
                "leg_price": decimal_str(fill.price), "vwap": decimal_str(fill.vwap),
                "limit_price": decimal_str(fill.limit_price), "contracts": decimal_str(fill.contracts),
                "amount_unit": market.amount_unit.value, "fee": decimal_str(fees[side]),
            }
            if market.inverse:  # the conversion the award and the confirm use (sizing.py)
                detail.update(conversion_price=decimal_str(fill.vwap),
                              residual=decimal_str(resolved.quantity - fill.quantity))
            if index is not None:
                detail.update(premium_currency=market.premium_ccy or "", index_price=decimal_str(index.price))
            if fee_index is not None:
                detail["fee_index_price"] = decimal_str(fee_index)
            sides.append(SideQuote(side, price, package_qty, detail))
        valid_until = utc_now() + timedelta(milliseconds=self.config.quote_validity_ms)
        premium = None
        if index is not None and market.premium_ccy:
            bid, ask = natives.get(QuoteSide.BID), natives.get(QuoteSide.ASK)
            premium = CoinPremium(market.premium_ccy, bid[0] if bid else None, ask[0] if ask else None,
                                  index, bid[1] if bid else Decimal(0), ask[1] if ask else Decimal(0))
        return QuotePlan(tuple(sides), package_qty, valid_until, premium=premium)

    async def prepare(
        self, award: Award, sent: SentQuote, rfq: RfqNew, client_id: str
    ) -> dict[str, Any] | str:
        quoted = sent.side(award.side)
        if quoted is None:
            return f"the quote {sent.quote_id} had no {award.side.value}"
        if award.quantity > sent.plan.quantity:
            return f"awarded {decimal_str(award.quantity)}, quoted {decimal_str(sent.plan.quantity)}"
        now = utc_now()
        if now > sent.plan.valid_until:
            return f"the quote expired at {format_ts(sent.plan.valid_until)}"
        resolved = self._resolve(rfq)
        if isinstance(resolved, NoMarket):
            return resolved.reason
        market, leg = resolved.market, resolved.leg
        order_side = Side(quoted.detail["order_side"])
        quantity = award.quantity * leg.ratio
        try:
            book = await self._book(market)
        except Exception as exc:  # nothing was sent: a safe reject (auth is handled by the caller)
            if classify(exc) is ErrorKind.AUTH:
                raise
            return f"last look: could not read the {market.symbol} book: {describe_error(exc)}"
        conversion = Decimal(quoted.detail["conversion_price"]) if market.inverse else None
        # the whole awarded size: with a thinner book (allow_partial) the IOC takes what is there
        contracts = order_amount(market, quantity, conversion, slack=QUANTUM * leg.ratio)
        if contracts <= 0:
            return f"the awarded {decimal_str(award.quantity)} is less than one {market.symbol} contract"
        fee_index = quoted.detail.get("fee_index_price")
        fill, _fee = self._walk(book, market, order_side, quantity,
                                None if fee_index is None else Decimal(fee_index))
        if fill is None:
            return f"last look: the {market.symbol} book has nothing on the {order_side.value} side"
        if not fill.complete and not rfq.allow_partial:
            return (f"last look: the {market.symbol} book now holds {decimal_str(fill.quantity)} of "
                    f"{decimal_str(quantity)} {leg.instrument.underlying}")
        if market.inverse and fill.contracts < contracts and not rfq.allow_partial:
            return (f"last look: the {market.symbol} book now holds {decimal_str(fill.contracts)} of the "
                    f"{decimal_str(contracts)} {market.amount_unit.value} awarded")
        quoted_leg = Decimal(quoted.detail["leg_price"])
        moved = _moved_bps(order_side, quoted_leg, fill.price)
        tolerance = self.config.last_look_tolerance_bps
        if moved > tolerance:
            return (f"last look: the book moved {decimal_str(moved.quantize(Decimal('0.01')))} bps "
                    f"against the quote (tolerance {decimal_str(tolerance)} bps)")
        return {
            "route": "book",
            "symbol": market.symbol,
            "base": market.base,
            "side": order_side.value,
            "amount": decimal_str(contracts),
            "limit_price": decimal_str(fill.limit_price),
            "client_order_id": client_id,
            "client_order_field": self.dialect.field,
            "venue_lookup": self.dialect.context(market),
            **intent_units(market, conversion),
            "ratio": decimal_str(leg.ratio),
            "quoted_leg_price": decimal_str(quoted_leg),
            "last_look_leg_price": decimal_str(fill.price),
            "last_look_moved_bps": decimal_str(moved.quantize(Decimal("0.01"))),
            **({"index_price": quoted.detail["index_price"]} if "index_price" in quoted.detail else {}),
        }

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        """One ``create_order``; then read the order back until it is closed."""
        price = Decimal(intent["award"]["price"])
        params = {self.dialect.field: intent["client_order_id"], "timeInForce": "IOC"}
        try:
            order = await self.exchange.create_order(intent["symbol"], "limit", intent["side"],
                                                     intent["amount"], intent["limit_price"], params)
        except Exception as exc:
            kind = classify(exc)
            if kind is ErrorKind.UNKNOWN and self.dialect.refused(exc):
                kind = ErrorKind.REJECTED
            if kind in (ErrorKind.REJECTED, ErrorKind.AUTH):
                if kind is ErrorKind.AUTH:
                    raise
                return Outcome.reject(price, f"venue refused the order: {describe_error(exc)}",
                                      error=type(exc).__name__)
            if kind is ErrorKind.RATE_LIMIT:
                _log.warning("ccxt_order_rate_limited", exchange=self.venue,
                             client_order_id=intent["client_order_id"], error=describe_error(exc))
                await asyncio.sleep(self.config.rate_limit_backoff_ms / 1000)
                return await self._after_rate_limit(intent, exc)
            else:
                _log.warning("ccxt_order_call_failed", exchange=self.venue,
                             client_order_id=intent["client_order_id"], error=describe_error(exc),
                             kind=kind.value)
            return None  # unknown fate: the caller reconciles by client order id
        outcome = order_outcome(order, intent, self.venue) if order.get("filled") is not None else None
        order_id = order.get("id")
        attempts = self.config.order_poll_attempts
        while outcome is None and attempts > 0:
            attempts -= 1
            try:
                if order_id and not self.dialect.read_back_by_key:
                    order = await self.exchange.fetch_order(order_id, intent["symbol"])
                else:
                    order = await self._find_one(intent) or {}
            except Exception as exc:
                if classify(exc) is ErrorKind.AUTH:  # the order call went out: fate unknown
                    raise AuthLostAfterSend(describe_error(exc)) from exc
                _log.warning("ccxt_order_read_failed", exchange=self.venue, order_id=order_id,
                             error=describe_error(exc))
                order = {}
            if order:
                outcome = order_outcome(order, intent, self.venue)
            if outcome is None:
                await asyncio.sleep(self.config.reconcile_interval_ms / 1000)
        return outcome

    async def _after_rate_limit(self, intent: dict[str, Any], exc: BaseException) -> Outcome | None:
        """The venue answered the order call with its rate limit: a refusal, not a lost reply
        (every venue here documents it as a request it did not process). After the back-off,
        one look-up by our key decides: the order found is its outcome; a look-up that
        answers "none" makes a reject that says "rate limit"; a look-up that fails (or an
        order still open) leaves the outcome unknown, reconciled as any other."""
        try:
            order = await self._find_one(intent)
        except Exception as lookup_exc:
            if classify(lookup_exc) is ErrorKind.AUTH:
                raise AuthLostAfterSend(describe_error(lookup_exc)) from lookup_exc
            return None
        if order is not None:
            return order_outcome(order, intent, self.venue)
        return Outcome.reject(
            Decimal(intent["award"]["price"]),
            f"rate limit: {self.venue} refused the order call ({describe_error(exc, 160)}); after "
            f"{self.config.rate_limit_backoff_ms} ms it shows no order under {self.dialect.field}="
            f"{intent['client_order_id']}", error=type(exc).__name__)

    def _lookup_context(self, intent: dict[str, Any]) -> dict[str, Any]:
        """The journaled look-up context, or (an intent journaled before it was recorded) the
        same built from the market loaded now."""
        context = intent.get("venue_lookup")
        if isinstance(context, dict):
            return context
        market = next((m for m in self.markets if m.symbol == intent["symbol"]), None)
        if market is None:
            raise LookupError(f"{self.venue}: market {intent['symbol']} is not loaded: "
                              "cannot look the order up")
        return self.dialect.context(market)

    async def _find_one(self, intent: dict[str, Any]) -> dict[str, Any] | None:
        """The one order the venue has under our key; None when it has none. Raises when the
        call fails, or when the venue holds several orders under the key (it cannot be told
        which is ours: left for a person, never guessed)."""
        key = intent["client_order_id"]
        orders = await self.dialect.find(self.exchange, key, self._lookup_context(intent))
        ids = {str(o.get("id") or "") for o in orders}
        if len(ids) > 1:
            _log.error("ccxt_client_order_id_ambiguous", exchange=self.venue, client_order_id=key,
                       field=self.dialect.field, order_ids=sorted(ids), alert=True)
            raise LookupError(f"{self.venue}: {len(ids)} orders carry {self.dialect.field}={key}")
        return orders[0] if orders else None

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        """One look-up by our key in the venue's field: the outcome, or None (not found yet,
        still open, or the call failed: nothing is proven either way)."""
        try:
            order = await self._find_one(intent)
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            _log.info("ccxt_reconcile_lookup", exchange=self.venue, field=self.dialect.field,
                      client_order_id=intent["client_order_id"], result=describe_error(exc, 120))
            return None
        if order is None:
            _log.info("ccxt_reconcile_lookup", exchange=self.venue, field=self.dialect.field,
                      client_order_id=intent["client_order_id"], result="not found")
            return None
        return order_outcome(order, intent, self.venue)

    async def closed(self, rfq_id: RfqId) -> None:
        return None
