"""Deribit Block RFQ, presented to the engine as one dealer whose quote is the makers' best.

ccxt has no unified call for it (nor implicit methods), so each documented method goes
through ccxt's signed raw request, ``exchange.request(method, ["private"], "GET", params)``:
ccxt's ``deri-hmac-sha256`` signing, its error mapping and its rate limiter run as for any
call; arrays and objects travel as JSON text in the query (the OpenAPI spec types ``hedge``
as "JSON string"; ``legs`` and ``makers`` the same), decimals as their exact digits.

| step | method (Deribit API v2) |
| --- | --- |
| the engine's RFQ arrives | ``private/create_block_rfq`` (``legs``, ``label``, ``makers``) |
| every ``rfq_poll_interval_ms`` until the deadline | ``private/get_block_rfqs``: ``bids``/``asks`` |
| the award | ``private/accept_block_rfq`` (``price``, ``amount``, ``direction``, ``legs``) |
| reconciliation | ``private/get_block_rfqs`` (``state``), ``private/get_block_trades`` |
| fence; the RFQ closes without our trade | ``private/cancel_block_rfq`` |

Sources: https://docs.deribit.com/api-reference/block-rfq/private-create_block_rfq,
``private-get_block_rfqs``, ``private-accept_block_rfq``, ``private-cancel_block_rfq``,
https://docs.deribit.com/api-reference/block-trade/private-get_block_trades and
https://docs.deribit.com/articles/block-rfq-api-walkthrough.

Units. Leg amounts are Deribit's ("for options and linear futures it is the underlying base
currency coin"; USD for inverse futures): each leg's size is the RFQ's quantity times its
ratio, in whole lots of the instrument (``markets.resolve_legs`` through the venue dialect,
``units.DERIBIT``). Deribit answers with a total ``amount`` and integer leg ``ratio``s
("this value multiplied by the ratio of a leg gives trade size on that leg"); the adapter
checks that ``amount * ratio`` is every leg's size, or cancels and declines. A maker's
price is the structure's: leg prices times ratios, added for a leg bought and subtracted
for a leg sold, per unit of ``amount``, in the legs' price currency; so the engine's price
per unit of its quantity is that price times ``amount / quantity``, with its sign from the
side (taker ``buy`` trades the legs as listed). Legs are listed with the side the requester
takes when the package trades in the RFQ's direction, as in ``okx_rfq.py``.

BTC options (premium in BTC per BTC, ``units.DERIBIT``): the quote carries the premium as
the venue quoted it (``CoinPremium``: per unit of the RFQ's quantity, in BTC), the fee by
Deribit's options schedule (``units.DERIBIT_OPTION_FEES``, uncapped: see ``_with_fees``) and
the index read then (``public/ticker`` ``index_price``); the engine converts it
(``domain.premium``) and awards the converted price. USDC options are quoted in USDC, the
same fee in USDC at the index included; linear contracts as the makers priced them. The fees
Deribit charged are recorded with the fill.

Declined with the reason: inverse futures and perpetuals as legs (priced per USD contract,
not per coin: use a ``book`` dealer); legs in different price currencies (BTC options with a
USDC leg); an RFQ whose window is shorter than the grace period ("after Block RFQ creation, a
grace period of 5 seconds begins, during which the taker cannot see quotes or trade the
Block RFQ": ``rfq_grace_ms``).

Quotes. The taker sees the best quotes per price level. For each side the RFQ asks for,
the levels are taken best first until they hold the whole ``amount`` ("the taker can only
trade for the amount requested"); the last level's price is the quote and the accept's
limit, so a fill-or-kill at it fills. Validity: the earliest ``expires_at`` of the levels
used (and the Block RFQ's expiry) less ``confirm_margin_ms``.

Exactly once. ``private/accept_block_rfq`` takes no label or client id. Our key is the
Block RFQ itself: one per engine RFQ, labelled with a key derived from the RFQ id, its
``block_rfq_id`` journaled in the intent before the accept leaves; a Block RFQ trades once
(fill-or-kill, for the whole amount), so the venue refuses a second trade on it. An accept
whose answer is lost is looked up, never re-sent: ``filled`` is the trade (its block trades
read back for the legs), ``cancelled``/``expired`` is no trade; while it is ``open`` the
look-up cancels it first (``private/cancel_block_rfq``), which settles the race with an
accept still in flight either way (cancelled: the accept cannot trade; "already filled":
the next read finds the trade). The confirm's price is the awarded price; what the venue
did (each maker's price, the legs, their fees in ``fee_currency``) is in the details.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

import structlog

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.markets import LegMarket, NoMarket, VenueMarket, resolve_legs
from dealer_adapters.ccxt.route import (
    DeclinePlan,
    ErrorKind,
    Outcome,
    QuotePlan,
    SentQuote,
    SideQuote,
    classify,
    client_id,
    describe_error,
    placement_failed,
)
from dealer_adapters.ccxt.units import DERIBIT, check_markets
from rfq_engine.domain import Award, Direction, QuoteSide, RfqId, RfqNew, decimal_str, format_ts, utc_now
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.premium import CoinPremium, convert_premium
from rfq_engine.domain.venue import AmountUnit, quote_sides, requester_leg_side, venue_decimal

__all__ = ["DeribitBlockRoute", "rpc_json"]

_log = structlog.get_logger(__name__)
_ENDED = frozenset({"cancelled", "expired", "closed"})
_VENUE = "deribit block RFQ"


def rpc_json(value: Any) -> str:
    """``value`` as JSON text, a ``Decimal`` as its exact digits (never through a float)."""
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(rpc_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{rpc_json(str(k))}:{rpc_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _millis(value: object, what: str) -> datetime:
    return datetime.fromtimestamp(int(venue_decimal(value, what)) / 1000, tz=UTC)


def _side_of(direction: Direction) -> QuoteSide:
    """The engine side the legs are written for (the taker ``buy`` at Deribit)."""
    return QuoteSide.BID if direction is Direction.SELL else QuoteSide.ASK


@dataclass(slots=True)
class _BlockRfq:
    block_rfq_id: int
    label: str
    amount: Decimal
    legs: list[dict[str, Any]]
    """As Deribit listed them: ``instrument_name``, ``direction``, ``ratio``."""
    scale: Decimal
    """``amount / quantity``: the engine's price per unit is the venue's times this."""
    expires: datetime
    settled: bool = False
    """Traded, or found ended: ``closed`` leaves it alone."""
    coin: str | None = None
    """The premium's coin (``BTC``) when the legs are coin-premium options, else None."""
    index_market: VenueMarket | None = None
    """The first option leg's market: its ticker's ``index_price`` prices the fee (and a coin premium)."""
    option_units: Decimal = Decimal(0)
    """Underlying of the option legs per unit of the RFQ's quantity (what the fee is charged on)."""


class DeribitBlockRoute:
    """One dealer standing for the Deribit Block RFQ makers."""

    can_lookup = True

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket]) -> None:
        self.exchange = exchange
        self.config = config
        self.markets, self.refused = check_markets(DERIBIT, getattr(exchange, "markets", None), markets)
        self.poll_interval_s = config.rfq_poll_interval_ms / 1000
        self._rfqs: dict[RfqId, _BlockRfq] = {}
        self._seen: set[RfqId] = set()
        """RFQs this process priced: one closed without a Block RFQ here never had one."""

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        response = await self.exchange.request(method, ["private"], "GET", params)
        if not isinstance(response, dict) or "result" not in response:
            raise RuntimeError(f"deribit {method} answered no result: {response!r}"[:300])
        return response["result"]

    # --- quoting ---------------------------------------------------------------------------------

    def _check_legs(self, rfq: RfqNew, legs: list[LegMarket]) -> str | None:
        """Why these legs cannot be one Block RFQ here, or None."""
        currencies = set()
        for lm in legs:
            market = lm.market
            if market.amount_unit is not AmountUnit.BASE:
                return (f"{_VENUE}: {market.symbol} is sized in {market.quote} contracts and priced per "
                        "contract, not per coin: not supported in a Block RFQ here (a book dealer trades it)")
            if market.type == "option" and market.inverse:
                return f"{_VENUE}: {market.symbol} is an inverse option the venue dialect did not state"
            currencies.add(market.premium_ccy or market.quote)
        if len(currencies) > 1:
            return (f"{_VENUE}: the legs are priced in {', '.join(sorted(currencies))}: one currency "
                    "per Block RFQ")
        left_ms = (rfq.deadline - utc_now()).total_seconds() * 1000
        if left_ms < self.config.rfq_grace_ms + self.config.rfq_poll_interval_ms:
            return (f"{_VENUE}: the RFQ's window ends in {left_ms / 1000:.1f} s; Deribit shows makers' "
                    f"quotes only after a {self.config.rfq_grace_ms / 1000:g} s grace period")
        return None

    def _label(self, rfq_id: RfqId) -> str:
        """The Block RFQ's label: derived from the RFQ id, so a restarted adapter finds it."""
        return client_id(f"block-rfq:{rfq_id}", self.config.client_order_prefix, 32)

    async def _create(self, rfq: RfqNew, legs: list[LegMarket]) -> _BlockRfq | str:
        written_for = _side_of(rfq.direction)
        sent = [{"instrument_name": lm.market.id, "amount": lm.contracts,
                 "direction": requester_leg_side(rfq.direction, written_for, lm.leg).value} for lm in legs]
        label = self._label(rfq.rfq_id)
        params: dict[str, Any] = {"legs": rpc_json(sent), "label": label}
        if self.config.rfq_counterparties:
            params["makers"] = rpc_json(list(self.config.rfq_counterparties))
        params["disclosed"] = not self.config.rfq_anonymous
        created = await self._call("create_block_rfq", params)
        if not isinstance(created, dict) or created.get("block_rfq_id") is None:
            raise RuntimeError(f"deribit create_block_rfq returned no block_rfq_id: {created!r}"[:300])
        block_rfq_id = int(venue_decimal(created["block_rfq_id"], "block_rfq_id"))
        amount = venue_decimal(created.get("amount"), "block_rfq.amount")
        venue_legs = [{"instrument_name": str(x.get("instrument_name")), "direction": str(x.get("direction")),
                       "ratio": int(venue_decimal(x.get("ratio"), "block_rfq.legs.ratio"))}
                      for x in created.get("legs") or [] if isinstance(x, dict)]
        block = _BlockRfq(block_rfq_id, label, amount, venue_legs, Decimal(0),
                          _millis(created.get("expiration_timestamp"), "block_rfq.expiration_timestamp"))
        self._rfqs[rfq.rfq_id] = block
        _log.info("deribit_block_rfq_created", rfq_id=rfq.rfq_id, block_rfq_id=block_rfq_id, label=label)
        mismatch = self._units_mismatch(rfq, block, sent)
        if mismatch:
            await self.closed(rfq.rfq_id)
            return mismatch
        with localcontext() as ctx:
            ctx.prec = 40
            block.scale = amount / rfq.quantity
        if block.scale * rfq.quantity != amount:
            await self.closed(rfq.rfq_id)
            return (f"{_VENUE}: amount {decimal_str(amount)} is no exact multiple of "
                    f"{decimal_str(rfq.quantity)}")
        return block

    @staticmethod
    def _units_mismatch(rfq: RfqNew, block: _BlockRfq, sent: list[dict[str, Any]]) -> str | None:
        if block.amount <= 0 or len(block.legs) != len(sent):
            return (f"{_VENUE}: Deribit listed {len(block.legs)} legs of amount {block.amount}, "
                    f"sent {len(sent)}")
        for ours, theirs in zip(sent, block.legs, strict=True):
            same = all(ours[k] == theirs[k] for k in ("instrument_name", "direction"))
            if not same or block.amount * theirs["ratio"] != ours["amount"]:
                return (f"{_VENUE}: Deribit sized {theirs['instrument_name']} {theirs['direction']} as "
                        f"{decimal_str(block.amount)} x {theirs['ratio']}, we asked "
                        f"{decimal_str(ours['amount'])} {ours['direction']}: refused, not traded at a "
                        "guessed size")
        return None

    def _best(self, rfq: RfqNew, block: _BlockRfq, levels: list[Any], taker: str) -> SideQuote | None:
        """The price at which the whole amount fills from ``levels`` (best first), as a quote side."""
        written_for = _side_of(rfq.direction)
        other = QuoteSide.ASK if written_for is QuoteSide.BID else QuoteSide.BID
        side = written_for if taker == "buy" else other
        if side not in quote_sides(rfq.direction):
            return None
        horizon = utc_now() + timedelta(milliseconds=self.config.confirm_margin_ms)
        rows = []
        for level in levels:
            try:
                price = venue_decimal(level.get("price"), "block_rfq.level.price")
                amount = venue_decimal(level.get("amount"), "block_rfq.level.amount")
                expires = _millis(level.get("expires_at"), "block_rfq.level.expires_at")
                if amount <= 0:
                    raise ValidationError("block_rfq.level.amount", f"must be positive, got {amount}")
            except (ValidationError, AttributeError, ValueError, OverflowError, OSError) as exc:
                _log.warning("deribit_block_rfq_level_refused", block_rfq_id=block.block_rfq_id,
                             level=repr(level)[:200], error=str(exc)[:200])
                continue  # a level the venue mis-stated is no price; the others still are
            if expires > horizon:
                rows.append((price, amount, expires, level.get("execution_instruction")))
        rows.sort(key=lambda r: r[0], reverse=taker == "sell")
        left, used = block.amount, []
        for price, amount, expires, instruction in rows:
            if left <= 0:
                break
            if instruction == "all_or_none" and amount > left:
                continue
            used.append((price, expires))
            left -= min(amount, left)
        if left > 0 or not used:
            return None
        venue_price = used[-1][0]
        natural = "buy" if side is QuoteSide.ASK else "sell"  # paying on an ask, receiving on a bid
        with localcontext() as ctx:
            ctx.prec = 40
            price = venue_price * block.scale * (1 if taker == natural else -1)
        valid_until = min([e for _, e in used] + [block.expires]) - timedelta(
            milliseconds=self.config.confirm_margin_ms)
        return SideQuote(side, price, rfq.quantity, {
            "block_rfq_id": block.block_rfq_id, "direction": taker, "venue_price": decimal_str(venue_price),
            "valid_until": valid_until,
        })

    async def _with_fees(self, block: _BlockRfq, sides: list[SideQuote]
                         ) -> tuple[list[SideQuote], CoinPremium | None]:
        """Option legs: the sides' prices with Deribit's options fee, read against the index now;
        for coin-premium legs also the premium as the venue quoted it, for the engine to convert
        (``domain.premium``).

        The fee is Deribit's options schedule per leg, ``underlying_rate`` of each leg's size (in
        the coin for BTC options; times the index, in USDC, for USDC options). Its cap (a share
        of the leg's premium) needs the legs' prices, which the taker does not see before the
        trade, so the quote carries the uncapped rate: never less than Deribit charges.
        """
        if block.index_market is None or DERIBIT.index is None:
            return sides, None
        schedule = DERIBIT.option_fees
        rate = (schedule.underlying_rate if schedule is not None else None) or Decimal(0)
        index = await DERIBIT.index(self.exchange, block.index_market)
        fee = rate * block.option_units * (Decimal(1) if block.coin else index.price)
        out, natives = [], {}
        for quote in sides:
            natives[quote.side] = quote.price
            price = quote.price + fee if quote.side is QuoteSide.ASK else quote.price - fee
            out.append(SideQuote(quote.side, price, quote.quantity, {
                **quote.detail, "fee_per_unit": decimal_str(fee), "index_price": decimal_str(index.price),
                **({"premium_currency": block.coin} if block.coin else {})}))
        if block.coin is None:
            return out, None
        premium = CoinPremium(block.coin, natives.get(QuoteSide.BID), natives.get(QuoteSide.ASK), index,
                              fee if QuoteSide.BID in natives else Decimal(0),
                              fee if QuoteSide.ASK in natives else Decimal(0))
        return out, premium

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None:
        block = self._rfqs.get(rfq.rfq_id)
        self._seen.add(rfq.rfq_id)
        if block is None:
            legs = resolve_legs(rfq, self.markets, venue=_VENUE,
                                currency_aliases=self.config.currency_aliases, refused=self.refused)
            if isinstance(legs, NoMarket):
                return DeclinePlan(legs.reason)
            why = self._check_legs(rfq, legs)
            if why:
                return DeclinePlan(why)
            made = await self._create(rfq, legs)
            if isinstance(made, str):
                return DeclinePlan(made)
            block = made
            options = [lm for lm in legs if lm.market.type == "option"]
            if options:
                block.coin, block.index_market = options[0].market.premium_ccy, options[0].market
                block.option_units = sum((abs(lm.leg.ratio) for lm in options), Decimal(0))
        found = await self._call("get_block_rfqs", {"block_rfq_id": block.block_rfq_id})
        views = found.get("block_rfqs") if isinstance(found, dict) else None
        view = next((v for v in views or [] if isinstance(v, dict)
                     and str(v.get("block_rfq_id")) == str(block.block_rfq_id)), None)
        if view is None or view.get("state") not in ("created", "open"):
            return None
        sides = [q for q in (self._best(rfq, block, view.get("asks") or [], "buy"),
                             self._best(rfq, block, view.get("bids") or [], "sell")) if q is not None]
        if not sides:
            return None
        sides.sort(key=lambda s: s.side is QuoteSide.ASK)
        valid_until = min(s.detail["valid_until"] for s in sides)
        key = "/".join(f"{s.detail['direction']}@{s.detail['venue_price']}" for s in sides)
        key += format_ts(valid_until)
        priced, premium = await self._with_fees(block, sides)
        return QuotePlan(tuple(priced), rfq.quantity, valid_until, key=key, premium=premium)

    # --- execution -------------------------------------------------------------------------------

    async def prepare(self, award: Award, sent: SentQuote, rfq: RfqNew, client_order_id: str
                      ) -> dict[str, Any] | str:
        quoted = sent.side(award.side)
        block = self._rfqs.get(award.rfq_id)
        if quoted is None or block is None or quoted.detail["block_rfq_id"] != block.block_rfq_id:
            return f"the quote {sent.quote_id} had no {award.side.value} on a live Deribit Block RFQ"
        if award.quantity != sent.plan.quantity:
            return (f"a Deribit Block RFQ trades only its full amount {decimal_str(sent.plan.quantity)}; "
                    f"awarded {decimal_str(award.quantity)}")
        expected = quoted.price
        if sent.plan.premium is not None:  # the engine awards the conversion it ranked
            conversion = convert_premium(sent.plan.premium)
            expected = conversion.bid if award.side is QuoteSide.BID else conversion.ask  # type: ignore[assignment]
        if award.price != expected:
            return f"awarded at {decimal_str(award.price)}, the makers' quote was {decimal_str(expected)}"
        if utc_now() > sent.plan.valid_until:
            return f"the makers' quote expired at {format_ts(sent.plan.valid_until)}"
        return {
            "route": "deribit_block_rfq", "block_rfq_id": block.block_rfq_id, "block_rfq_label": block.label,
            "direction": quoted.detail["direction"], "price": quoted.detail["venue_price"],
            "amount": decimal_str(block.amount), "legs": block.legs, "client_order_id": client_order_id,
            "client_order_field": "none: private/accept_block_rfq takes no label; the key is block_rfq_id",
            **({"premium_currency": quoted.detail["premium_currency"],
                "index_price": quoted.detail["index_price"]} if "premium_currency" in quoted.detail else {}),
        }

    def _confirmed(self, intent: dict[str, Any], block_trades: list[dict[str, Any]]) -> Outcome | None:
        legs = intent["legs"]
        first = legs[0]
        traded, out_legs, ids = Decimal(0), [], []
        for block in block_trades:
            ids.append(str(block.get("id")))
            for trade in block.get("trades") or []:
                amount = venue_decimal(trade.get("amount"), "block_trade.amount")
                out_legs.append({k: trade.get(k) for k in ("instrument_name", "direction", "price", "fee",
                                                           "fee_currency", "trade_id")}
                                | {"amount": decimal_str(amount)})
                if trade.get("instrument_name") == first["instrument_name"]:
                    traded += amount / first["ratio"]
        if not ids or traded <= 0:
            return None
        award = intent["award"]
        quantity = Decimal(award["quantity"]) * traded / Decimal(intent["amount"])
        for leg in out_legs:
            for key in ("price", "fee"):
                if leg.get(key) is not None:
                    leg[key] = decimal_str(venue_decimal(leg[key], f"block_trade.{key}"))
        fees = ",".join(f"{x['fee']} {x['fee_currency']}" for x in out_legs if x.get("fee") is not None)
        note = f"deribit:block_rfq:{intent['block_rfq_id']}:{'+'.join(ids)}"
        if fees:
            note += f" fees={fees}"
        details = {"block_rfq_id": intent["block_rfq_id"], "block_trade_ids": ids, "legs": out_legs}
        if intent.get("premium_currency"):
            details.update(premium_currency=intent["premium_currency"], index_price=intent["index_price"])
        return Outcome(True, quantity, Decimal(award["price"]), note[:200], "", details)

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        price = Decimal(intent["award"]["price"])
        params = {"block_rfq_id": intent["block_rfq_id"], "price": intent["price"],
                  "amount": intent["amount"], "direction": intent["direction"],
                  "legs": rpc_json(intent["legs"]), "time_in_force": "fill_or_kill"}
        try:
            result = await self._call("accept_block_rfq", params)
        except Exception as exc:
            failed = await placement_failed(exc, price, "Deribit refused the accept", log=_log,
                                            event="deribit_block_rfq_accept_failed",
                                            backoff_ms=self.config.rate_limit_backoff_ms,
                                            block_rfq_id=intent["block_rfq_id"])
            if failed is ErrorKind.RATE_LIMIT:
                return await self._after_rate_limit(intent, exc)
            return failed if isinstance(failed, Outcome) else None
        trades = result.get("block_trades") if isinstance(result, dict) else None
        outcome = self._confirmed(intent, [t for t in trades or [] if isinstance(t, dict)])
        if outcome is not None:
            self._settle(intent["block_rfq_id"])
        return outcome  # no block trade in the answer: reconcile

    async def _after_rate_limit(self, intent: dict[str, Any], exc: BaseException) -> Outcome | None:
        """The venue refused the accept with its rate limit (a request it did not process): after
        the back-off one look-up (with its fence) decides, and a Block RFQ that shows no trade
        makes a reject that says "rate limit"; an unresolved look-up leaves it unknown."""
        found = await self.lookup(intent)
        if found is None or found.confirmed:
            return found
        return Outcome.reject(
            Decimal(intent["award"]["price"]),
            f"rate limit: Deribit refused private/accept_block_rfq ({describe_error(exc, 160)}); after "
            f"{self.config.rate_limit_backoff_ms} ms {found.reason}", error=type(exc).__name__)

    def _settle(self, block_rfq_id: int) -> None:
        """The Block RFQ traded or ended: nothing to cancel when the RFQ closes."""
        for block in self._rfqs.values():
            if block.block_rfq_id == block_rfq_id:
                block.settled = True

    async def _state(self, block_rfq_id: int) -> dict[str, Any] | None:
        found = await self._call("get_block_rfqs", {"block_rfq_id": block_rfq_id})
        views = found.get("block_rfqs") if isinstance(found, dict) else None
        return next((v for v in views or [] if isinstance(v, dict)
                     and str(v.get("block_rfq_id")) == str(block_rfq_id)), None)

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        block_rfq_id = intent["block_rfq_id"]
        try:
            view = await self._state(block_rfq_id)
            if view is not None and view.get("state") in ("created", "open"):
                try:  # the fence: after it the state is final (cancelled, or filled by the accept)
                    await self._call("cancel_block_rfq", {"block_rfq_id": block_rfq_id})
                except Exception as exc:
                    if classify(exc) is ErrorKind.AUTH:
                        raise
                    _log.info("deribit_block_rfq_fence", block_rfq_id=block_rfq_id,
                              result=describe_error(exc, 120))
                view = await self._state(block_rfq_id)
            state = str((view or {}).get("state") or "")
            if state == "filled":
                return await self._filled(intent, view or {})
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            _log.info("deribit_block_rfq_lookup", block_rfq_id=block_rfq_id, result=describe_error(exc, 120))
            return None
        if state in _ENDED:
            self._settle(block_rfq_id)
            return Outcome.reject(Decimal(intent["award"]["price"]),
                                  f"the Deribit Block RFQ {block_rfq_id} ended {state} without our trade")
        return None

    async def _filled(self, intent: dict[str, Any], view: dict[str, Any]) -> Outcome | None:
        trades = [t for t in view.get("trades") or [] if isinstance(t, dict)]
        if any(str(t.get("direction")) != intent["direction"] for t in trades):
            _log.error("deribit_block_rfq_foreign_trade", block_rfq_id=intent["block_rfq_id"], trades=trades,
                       alert=True)
            return None  # filled, but not as we accepted: a person looks at it
        try:
            blocks = await self._call("get_block_trades", {"block_rfq_id": intent["block_rfq_id"]})
        except Exception as exc:  # block_trade:read is a separate scope: the RFQ's own trades still tell
            if classify(exc) is ErrorKind.AUTH:
                raise
            blocks = []
            _log.info("deribit_block_trades_unreadable", error=describe_error(exc, 120))
        outcome = self._confirmed(intent, [b for b in blocks or [] if isinstance(b, dict)])
        if outcome is None and trades:
            first = intent["legs"][0]
            synthetic = [{"id": f"rfq-{intent['block_rfq_id']}", "trades": [
                {"instrument_name": first["instrument_name"], "direction": t.get("direction"),
                 "price": t.get("price"),
                 "amount": venue_decimal(t.get("amount"), "trades.amount") * first["ratio"]}
                for t in trades]}]
            outcome = self._confirmed(intent, synthetic)
        if outcome is not None:
            self._settle(intent["block_rfq_id"])
        return outcome

    async def closed(self, rfq_id: RfqId) -> None:
        """The RFQ closed: its Block RFQ, unless it traded, is cancelled, so the makers stop
        seeing it. One this process did not create (before a restart) is found by its label."""
        block = self._rfqs.pop(rfq_id, None)
        seen = rfq_id in self._seen
        self._seen.discard(rfq_id)
        if (block is None and seen) or (block is not None and block.settled):
            return
        try:
            if block is not None:
                ids = [block.block_rfq_id]
            else:
                found = await self._call("get_block_rfqs", {"role": "taker", "state": "open"})
                views = found.get("block_rfqs") if isinstance(found, dict) else None
                ids = [int(venue_decimal(v.get("block_rfq_id"), "block_rfq_id")) for v in views or []
                       if isinstance(v, dict) and v.get("label") == self._label(rfq_id)]
            for block_rfq_id in ids:
                await self._call("cancel_block_rfq", {"block_rfq_id": block_rfq_id})
        except Exception as exc:  # best effort: a Block RFQ also expires on its own after 5 minutes
            _log.info("deribit_block_rfq_cancel_failed", rfq_id=rfq_id, error=describe_error(exc, 200))
