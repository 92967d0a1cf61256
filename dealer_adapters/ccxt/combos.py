"""Multi-leg packages on Deribit's order books, as one combo: never legged.

A ``book`` dealer on Deribit quotes and executes a package of option legs (a collar) on
Deribit's *combo* book for exactly those legs, so the package trades atomically (one order,
on one instrument) or not at all. Venues without combos keep declining a package
(``BookRoute``: "not executed leg by leg").

| step | Deribit API v2 (through ccxt's signed raw request) |
| --- | --- |
| the combo of these legs | ``public/get_combos``, else ``private/create_combo`` (``trades``) |
| quote | ``public/get_order_book`` of the combo's ``id`` |
| the award | one ``private/buy`` / ``sell`` on the combo's ``id``, limit IOC, ``label`` our key |
| look-up | ``private/get_order_state_by_label``, then ``private/get_user_trades_by_order`` |

What Deribit documents (https://docs.deribit.com/api-reference/combo-books/public-get_combos,
``private-create_combo``, ``public-get_combo_details``; "Deribit introducing combos",
https://insights.deribit.com/exchange-updates/deribit-introducing-combos/): a combo is listed
as its own instrument; its ``legs`` are ``instrument_name`` and an integer ``amount``, the
"size multiplier of a leg. A negative value indicates that the trades on given leg are in
opposite direction to the combo trades they originate from"; orders are entered "using the
API request private/buy specifying the combo instrument name"; "one would not see open orders
for the combo legs but only for the combo", and the trades are reported on the legs.
``private/create_combo`` "verifies and creates a combo book or returns an existing combo
matching the given trades".

Sizes. The package's legs have ratios (1 and 0.5 for a collar of 10 BTC of puts and 5 of
calls); the combo's multipliers are the smallest integers in the same proportion (2 and 1),
and ``scale`` is multiplier over ratio (2): a package quantity Q is a combo amount
``Q / scale``... precisely ``amount = Q * ratio_i / multiplier_i`` for every leg (5 for 10 BTC),
and leg i trades ``amount * |multiplier_i|``. Each leg's size must be whole lots of its market.

The rule for the quote. The combo's own book is the only executable source: it is walked for
the combo amount on the side the requester trades (buying the package buys a combo listed with
our signs, sells one listed with the opposite signs). The price per unit of the package is the
walk's VWAP over ``scale`` (a combo price is per unit of its amount, which is ``1/scale`` of a
unit of package), its sign as the requester pays (ask) or receives (bid). Deribit documents no
implied matching of a combo order against the legs' own books, so a price built from the legs'
books could not be executed as one combo order: when the combo has no book (just created, or
empty on the side and size needed) the package is declined with that reason and the legs'
books are not quoted (docs/dealers-ccxt.md, "Packages on Deribit's combo books").

Fees: Deribit's options schedule per leg, ``0.0003`` of each leg's underlying; its cap (12.5%
of the leg's premium) needs the legs' prices, which a combo book does not show, so the quote
carries the uncapped rate (never less than Deribit charges), as the Block RFQ route does.
BTC options: the premium and fee in BTC with the index (``public/ticker`` ``index_price``) as a
``CoinPremium``, converted by the engine; USDC options: in USDC, the fee at the index.

Execution, exactly once: the intent (combo, side, amount, limit, our ``label``) is journaled
before the one order; an answer lost is looked up by the label, never re-sent. The confirm is
at the awarded price; the details record the combo's fill and each leg's fills (instrument,
direction, amount, average price, fee and its currency) as the venue's trades state them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from math import gcd, lcm
from typing import Any

import structlog

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.deribit_block import rpc_json
from dealer_adapters.ccxt.markets import LegMarket, NoMarket, VenueMarket, resolve_legs
from dealer_adapters.ccxt.route import (
    DeclinePlan,
    ErrorKind,
    Outcome,
    QuotePlan,
    SentQuote,
    SideQuote,
    classify,
    describe_error,
    placement_failed,
)
from dealer_adapters.ccxt.sizing import floor_quantity
from dealer_adapters.ccxt.units import DERIBIT
from rfq_engine.domain import (
    Award,
    Direction,
    QuoteSide,
    RfqId,
    RfqNew,
    Side,
    decimal_str,
    format_ts,
    utc_now,
)
from rfq_engine.domain.premium import CoinPremium, IndexPrice
from rfq_engine.domain.venue import (
    AmountUnit,
    BookLevel,
    OrderBook,
    requester_leg_side,
    round_price,
    venue_decimal,
    walk_book,
)

__all__ = ["COMBO_VENUES", "ComboBook", "multipliers"]

_log = structlog.get_logger(__name__)
COMBO_VENUES = frozenset({"deribit"})
"""ccxt exchange ids whose books trade packages as combos (this module)."""
_FINAL = frozenset({"filled", "cancelled", "rejected"})
BPS = Decimal(10_000)


def multipliers(ratios: list[Decimal]) -> tuple[list[int], Decimal]:
    """The smallest positive integers in the proportion of ``ratios`` and ``scale`` (an integer
    over its ratio): ``[1, 0.5] -> ([2, 1], 2)``."""
    fractions = [Fraction(r) for r in ratios]
    if not fractions or any(f <= 0 for f in fractions):
        raise ValueError("ratios must be positive")
    num = 0
    den = 1
    for f in fractions:
        num = gcd(num, f.numerator)
        den = lcm(den, f.denominator)
    unit = Fraction(num, den)
    ints = [int(f / unit) for f in fractions]
    scale = Fraction(ints[0]) / fractions[0]
    return ints, Decimal(scale.numerator) / Decimal(scale.denominator)


def _written_for(direction: Direction) -> QuoteSide:
    return QuoteSide.BID if direction is Direction.SELL else QuoteSide.ASK


def _book(raw: Any) -> OrderBook:
    """A combo's ``public/get_order_book``: levels ``[price, amount]``; a combo's price may be
    negative (a net credit), an amount must be positive."""
    def levels(key: str) -> list[BookLevel]:
        out = []
        for i, row in enumerate(raw.get(key) or [] if isinstance(raw, dict) else []):
            amount = venue_decimal(row[1], f"combo.{key}[{i}].amount")
            if amount > 0:
                out.append(BookLevel(venue_decimal(row[0], f"combo.{key}[{i}].price"), amount))
        return out
    return OrderBook(bids=tuple(sorted(levels("bids"), key=lambda lv: lv.price, reverse=True)),
                     asks=tuple(sorted(levels("asks"), key=lambda lv: lv.price)))


class ComboBook:
    """A Deribit book dealer's packages, through the combo of their legs."""

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket],
                 refused: dict[str, str]) -> None:
        self.exchange = exchange
        self.config = config
        self.markets = markets
        self.refused = refused
        self._combos: dict[RfqId, dict[str, Any]] = {}

    async def _call(self, scope: str, method: str, params: dict[str, Any]) -> Any:
        response = await self.exchange.request(method, [scope], "GET", params)
        if not isinstance(response, dict) or "result" not in response:
            raise RuntimeError(f"deribit {scope}/{method} answered no result: {response!r}"[:300])
        return response["result"]

    # --- the package's combo -----------------------------------------------------------------

    def _legs(self, rfq: RfqNew) -> tuple[list[LegMarket], list[int], Decimal] | str:
        legs = resolve_legs(rfq, self.markets, venue="deribit", currency_aliases=self.config.currency_aliases,
                            refused=self.refused)
        if isinstance(legs, NoMarket):
            return legs.reason
        currencies = set()
        for lm in legs:
            if lm.market.type != "option" or lm.market.amount_unit is not AmountUnit.BASE:
                return (f"deribit: {lm.market.symbol} is not an option: a package trades here as a combo "
                        "of option legs only (a future spread is not supported by this dealer)")
            currencies.add(lm.market.premium_ccy or lm.market.quote)
        if len(currencies) > 1:
            return f"deribit: the legs are priced in {', '.join(sorted(currencies))}: one currency per combo"
        ints, scale = multipliers([lm.leg.ratio for lm in legs])
        return legs, ints, scale

    @staticmethod
    def _signed(rfq: RfqNew, legs: list[LegMarket], ints: list[int]) -> dict[str, int]:
        """Our combo: each leg's multiplier, positive for a leg the requester buys when the
        package trades on the side the legs were written for."""
        side = _written_for(rfq.direction)
        return {lm.market.id: m if requester_leg_side(rfq.direction, side, lm.leg) is Side.BUY else -m
                for lm, m in zip(legs, ints, strict=True)}

    @staticmethod
    def _orientation(combo: Any, ours: dict[str, int]) -> int:
        """+1: listed with our signs; -1: with the opposite ones; 0: another combo."""
        if not isinstance(combo, dict) or combo.get("state") != "active":
            return 0
        try:
            theirs = {str(x["instrument_name"]): int(venue_decimal(x["amount"], "combo.legs.amount"))
                      for x in combo.get("legs") or []}
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return 0
        if theirs == ours:
            return 1
        return -1 if theirs == {k: -v for k, v in ours.items()} else 0

    async def _combo(self, rfq: RfqNew, legs: list[LegMarket],
                     ours: dict[str, int]) -> tuple[dict[str, Any], int]:
        """The listed combo of these legs (``public/get_combos``), else the one
        ``private/create_combo`` verifies or creates; remembered for the RFQ."""
        known = self._combos.get(rfq.rfq_id)
        if known is not None:
            return known, self._orientation(known, ours)
        currency = legs[0].market.settle or legs[0].market.base
        for combo in await self._call("public", "get_combos", {"currency": currency}) or []:
            flip = self._orientation(combo, ours)
            if flip:
                self._combos[rfq.rfq_id] = combo
                return combo, flip
        trades = [{"instrument_name": name, "amount": str(abs(m)), "direction": "buy" if m > 0 else "sell"}
                  for name, m in ours.items()]
        created = await self._call("private", "create_combo", {"trades": rpc_json(trades)})
        _log.info("deribit_combo_created", rfq_id=rfq.rfq_id, combo=repr(created)[:200])
        if isinstance(created, dict):
            self._combos[rfq.rfq_id] = created
        return created, self._orientation(created, ours)

    def _order_side(self, rfq: RfqNew, side: QuoteSide, flip: int) -> Side:
        ours_bought = side is _written_for(rfq.direction)
        return Side.BUY if ours_bought == (flip > 0) else Side.SELL

    # --- quoting -------------------------------------------------------------------------------

    async def _index(self, market: VenueMarket) -> IndexPrice:
        assert DERIBIT.index is not None
        return await DERIBIT.index(self.exchange, market)

    def _fee_per_unit(self, legs: list[LegMarket], index: IndexPrice) -> Decimal:
        schedule = DERIBIT.option_fees
        rate = (schedule.underlying_rate if schedule is not None else None) or Decimal(0)
        units = sum((abs(lm.leg.ratio) for lm in legs), Decimal(0))
        return rate * units * (Decimal(1) if legs[0].market.premium_ccy else index.price)

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan:
        resolved = self._legs(rfq)
        if isinstance(resolved, str):
            return DeclinePlan(resolved)
        legs, ints, scale = resolved
        ours = self._signed(rfq, legs, ints)
        combo, flip = await self._combo(rfq, legs, ours)
        if not flip:
            return DeclinePlan(f"deribit: no active combo of these legs ({ours}): {repr(combo)[:160]}")
        combo_id = str(combo["id"])
        amount = rfq.quantity / scale
        book = _book(await self._call("public", "get_order_book", {"instrument_name": combo_id,
                                                                   "depth": self.config.book_depth}))
        index = await self._index(legs[0].market)
        fee = self._fee_per_unit(legs, index)
        quantum = legs[0].market.price_step
        sides, natives, problems = [], {}, []
        for side in ((QuoteSide.BID,) if rfq.direction is Direction.SELL else (QuoteSide.ASK,)
                     if rfq.direction is Direction.BUY else (QuoteSide.BID, QuoteSide.ASK)):
            order_side = self._order_side(rfq, side, flip)
            fill = walk_book(book, order_side, amount)
            held = "asks" if order_side is Side.BUY else "bids"
            if fill is None or not fill.complete:
                held_qty = decimal_str(fill.quantity) if fill else "0"
                problems.append(f"the {combo_id} combo book's {held} hold {held_qty} of amount "
                                f"{decimal_str(amount)}")
                continue
            pays = (order_side is Side.BUY) == (side is QuoteSide.ASK)
            with localcontext() as ctx:
                ctx.prec = 40
                raw = fill.vwap / scale * (1 if pays else -1)
            up = side is QuoteSide.ASK
            native = round_price(raw, None if quantum is None else Decimal(1).scaleb(quantum.adjusted() - 3),
                                 up=up)
            natives[side] = native
            sides.append(SideQuote(side, native + fee if up else native - fee, rfq.quantity, {
                "route": "combo", "combo_id": combo_id, "order_side": order_side.value,
                "vwap": decimal_str(fill.vwap), "limit_price": decimal_str(fill.limit_price),
                "amount": decimal_str(amount), "fee_per_unit": decimal_str(fee),
                "index_price": decimal_str(index.price), "quoted_native": decimal_str(native)}))
        if problems or not sides:
            return DeclinePlan("deribit: " + "; ".join(problems) + " (a package trades only on its combo's "
                               "book here, never legged; the legs' own books are not quoted)")
        valid_until = utc_now() + timedelta(milliseconds=self.config.quote_validity_ms)
        coin = legs[0].market.premium_ccy
        premium = None
        if coin:
            bid, ask = natives.get(QuoteSide.BID), natives.get(QuoteSide.ASK)
            premium = CoinPremium(coin, bid, ask, index, fee if bid is not None else Decimal(0),
                                  fee if ask is not None else Decimal(0))
        return QuotePlan(tuple(sides), rfq.quantity, valid_until, premium=premium)

    # --- execution -----------------------------------------------------------------------------

    async def prepare(self, award: Award, sent: SentQuote, rfq: RfqNew,
                      client_id: str) -> dict[str, Any] | str:
        quoted = sent.side(award.side)
        if quoted is None:
            return f"the quote {sent.quote_id} had no {award.side.value}"
        if award.quantity > sent.plan.quantity:
            return f"awarded {decimal_str(award.quantity)}, quoted {decimal_str(sent.plan.quantity)}"
        if utc_now() > sent.plan.valid_until:
            return f"the quote expired at {format_ts(sent.plan.valid_until)}"
        resolved = self._legs(rfq)
        if isinstance(resolved, str):
            return resolved
        legs, ints, scale = resolved
        combo = self._combos.get(rfq.rfq_id)
        if combo is None:
            return "no combo was priced for this RFQ"
        combo_id, order_side = quoted.detail["combo_id"], Side(quoted.detail["order_side"])
        amount = award.quantity / scale
        for lm, m in zip(legs, ints, strict=True):
            size = amount * m / lm.market.amount_value
            step = lm.market.amount_step
            if step is not None and size % step != 0:
                return (f"the awarded {decimal_str(award.quantity)} makes {decimal_str(size)} of "
                        f"{lm.market.symbol}, not whole lots of {decimal_str(step)}")
        try:  # our last look: the combo's book again, the move in bps of the underlying
            book = _book(await self._call("public", "get_order_book", {"instrument_name": combo_id,
                                                                       "depth": self.config.book_depth}))
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            return f"last look: could not read the {combo_id} book: {describe_error(exc)}"
        fill = walk_book(book, order_side, amount)
        if fill is None or not fill.complete:
            return f"last look: the {combo_id} book no longer holds amount {decimal_str(amount)}"
        quoted_vwap = Decimal(quoted.detail["vwap"])
        worse = fill.vwap - quoted_vwap if order_side is Side.BUY else quoted_vwap - fill.vwap
        per_underlying = worse / scale / (Decimal(1) if legs[0].market.premium_ccy
                                          else Decimal(quoted.detail["index_price"]))
        moved = per_underlying * BPS
        if moved > self.config.last_look_tolerance_bps:
            shown = decimal_str(moved.quantize(Decimal("0.01")))
            return (f"last look: the {combo_id} book moved {shown} bps of the underlying against the "
                    "quote (tolerance "
                    f"{decimal_str(self.config.last_look_tolerance_bps)} bps)")
        ours = self._signed(rfq, legs, ints)
        flip = 1 if (order_side is Side.BUY) == (award.side is _written_for(rfq.direction)) else -1
        return {
            "route": "combo", "symbol": combo_id, "combo_id": combo_id, "side": order_side.value,
            "amount": decimal_str(amount), "limit_price": decimal_str(fill.limit_price),
            "client_order_id": client_id, "client_order_field": "label",
            "venue_lookup": {"currency": legs[0].market.settle or legs[0].market.base},
            "legs": {name: m * flip for name, m in ours.items()}, "scale": decimal_str(scale),
            "premium_currency": legs[0].market.premium_ccy or "", "index_price": quoted.detail["index_price"],
            "settle": legs[0].market.settle or "", "quoted_vwap": decimal_str(quoted_vwap),
            "last_look_vwap": decimal_str(fill.vwap),
        }

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        """One order on the combo; its answer (with the legs' trades) is the outcome."""
        price = Decimal(intent["award"]["price"])
        params = {"instrument_name": intent["combo_id"], "amount": intent["amount"], "type": "limit",
                  "price": intent["limit_price"], "time_in_force": "immediate_or_cancel",
                  "label": intent["client_order_id"]}
        try:
            answer = await self._call("private", intent["side"], params)
        except Exception as exc:
            failed = await placement_failed(exc, price, "venue refused the combo order", log=_log,
                                            event="deribit_combo_order_failed",
                                            backoff_ms=self.config.rate_limit_backoff_ms,
                                            combo=intent["combo_id"], label=intent["client_order_id"])
            if isinstance(failed, Outcome):
                return failed
            if failed is ErrorKind.RATE_LIMIT:
                found = await self.lookup(intent)
                return found if found is not None else Outcome.reject(
                    price, f"rate limit: deribit refused the combo order ({describe_error(exc, 160)}); "
                    f"after {self.config.rate_limit_backoff_ms} ms it shows no order under label="
                    f"{intent['client_order_id']}", error=type(exc).__name__)
            return None  # unknown: reconciled by label, never sent again
        order = answer.get("order") if isinstance(answer, dict) else None
        trades = answer.get("trades") if isinstance(answer, dict) else None
        if not isinstance(order, dict) or str(order.get("order_state")) not in _FINAL:
            return None
        return self.outcome(intent, order, trades if isinstance(trades, list) else [])

    async def _find(self, intent: dict[str, Any]) -> dict[str, Any] | None:
        found = await self._call("private", "get_order_state_by_label", {
            "currency": intent["venue_lookup"]["currency"], "label": intent["client_order_id"]})
        orders = [o for o in found or []
                  if isinstance(o, dict) and o.get("instrument_name") == intent["combo_id"]]
        ids = {str(o.get("order_id")) for o in orders}
        if len(ids) > 1:
            _log.error("ccxt_client_order_id_ambiguous", exchange="deribit",
                       client_order_id=intent["client_order_id"], field="label", order_ids=sorted(ids),
                       alert=True)
            raise LookupError(f"deribit: {len(ids)} combo orders carry label={intent['client_order_id']}")
        return orders[0] if orders else None

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        try:
            order = await self._find(intent)
            if order is None or str(order.get("order_state")) not in _FINAL:
                return None
            trades = await self._call("private", "get_user_trades_by_order", {"order_id": order["order_id"]})
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            _log.info("ccxt_reconcile_lookup", exchange="deribit", field="label",
                      client_order_id=intent["client_order_id"], result=describe_error(exc, 120))
            return None
        return self.outcome(intent, order, trades if isinstance(trades, list) else [])

    @staticmethod
    def outcome(intent: dict[str, Any], order: dict[str, Any], trades: list[Any]) -> Outcome:
        """A final combo order and its legs' trades as the execution's outcome."""
        price = Decimal(intent["award"]["price"])
        order_id = str(order.get("order_id") or "")
        filled = venue_decimal(order.get("filled_amount") or 0, "order.filled_amount")
        if filled <= 0:
            return Outcome.reject(price, f"IOC combo order {order_id} on {intent['combo_id']} filled nothing "
                                  f"({order.get('order_state')}): the combo's book moved", order_id=order_id)
        quantity = floor_quantity(filled * Decimal(intent["scale"]))
        legs: dict[str, dict[str, Decimal | str]] = {}
        fees: dict[str, Decimal] = {}
        for trade in trades:
            if not isinstance(trade, dict) or str(trade.get("order_id", order_id)) != order_id:
                continue
            name = str(trade.get("instrument_name"))
            amount = venue_decimal(trade.get("amount"), "trade.amount")
            row = legs.setdefault(name, {"direction": str(trade.get("direction")), "amount": Decimal(0),
                                         "cost": Decimal(0), "fee": Decimal(0),
                                         "fee_currency": str(trade.get("fee_currency") or "")})
            row["amount"] = Decimal(row["amount"]) + amount
            row["cost"] = Decimal(row["cost"]) + amount * venue_decimal(trade.get("price"), "trade.price")
            fee = venue_decimal(trade.get("fee") or 0, "trade.fee")
            row["fee"] = Decimal(row["fee"]) + fee
            ccy = str(row["fee_currency"])
            fees[ccy] = fees.get(ccy, Decimal(0)) + fee
        leg_rows = [{"instrument_name": name, "direction": str(r["direction"]),
                     "amount": decimal_str(Decimal(r["amount"])),
                     "average": decimal_str(Decimal(r["cost"]) / Decimal(r["amount"])),
                     "fee": decimal_str(Decimal(r["fee"])), "fee_currency": str(r["fee_currency"])}
                    for name, r in legs.items() if Decimal(r["amount"]) > 0]
        average = venue_decimal(order.get("average_price") or 0, "order.average_price")
        settle, coin = str(intent.get("settle") or ""), str(intent.get("premium_currency") or "")
        details: dict[str, Any] = {"order_id": order_id, "combo_id": intent["combo_id"],
                                   "status": str(order.get("order_state")), "filled": decimal_str(filled),
                                   "average": decimal_str(average), "legs": leg_rows,
                                   "fees": {c: decimal_str(f) for c, f in fees.items()},
                                   "settlement_currency": settle, "premium_currency": coin,
                                   "index_price": intent.get("index_price", "")}
        fee_text = " ".join(f"{decimal_str(f)} {c}" for c, f in fees.items())
        leg_text = ",".join(f"{r['instrument_name']}:{r['direction']}:{r['amount']}" for r in leg_rows)
        note = f"deribit:{order_id} combo={intent['combo_id']}"
        if coin:
            note += f" premium={coin} index={intent.get('index_price', '')}"
        note += (f" settle={settle} avg={decimal_str(average)}{' ' + coin if coin else ''} fee={fee_text}"
                 f" legs={leg_text}")  # the legs in full are in the journal's details
        return Outcome(True, quantity, price, note[:200], "", details)

    def closed(self, rfq_id: RfqId) -> None:
        self._combos.pop(rfq_id, None)
