"""OKX block RFQ, presented to the engine as one dealer whose quote is the venue's best maker quote.

Through ccxt's implicit OKX endpoints (the raw REST calls; their decimals arrive as
strings, so nothing passes through a float):

| step | endpoint | ccxt method |
| --- | --- | --- |
| the engine's RFQ arrives | ``POST /api/v5/rfq/create-rfq`` | ``privatePostRfqCreateRfq`` |
| every ``rfq_poll_interval_ms`` until the deadline | ``GET /api/v5/rfq/quotes`` | ``privateGetRfqQuotes`` |
| the award | ``POST /api/v5/rfq/execute-quote`` | ``privatePostRfqExecuteQuote`` |
| reconciliation | ``GET /api/v5/rfq/trades``, ``/rfqs`` | ``privateGetRfqTrades``, ``privateGetRfqRfqs`` |
| the RFQ closes without our trade | ``POST /api/v5/rfq/cancel-rfq`` | ``privatePostRfqCancelRfq`` |

The venue RFQ carries every leg (multi-leg packages trade as one block, never legged),
each sized in contracts from the RFQ's quantity, ratio and the market's contract size,
with the side the requester takes when the package trades in the RFQ's direction (for
two-way: as buying it). Makers answer with a ``quoteSide``: ``buy`` executes the legs in
their RFQ directions, ``sell`` in the opposite ones; so ``buy`` prices the side the legs
were written for. The best maker quote per side (highest bid, lowest ask, net over the legs
in the engine's orientation) is sent as the dealer's quote, again whenever the best
changes; its validity is the maker quote's ``validUntil`` less ``confirm_margin_ms``.

On the award the chosen maker quote is executed by id, once (an OKX RFQ trades at most
once, which also makes a repeated execute harmless). The block trades at the maker's leg
prices, so the confirm's price is the awarded price exactly; leg fees are recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from rfq_engine.domain import Award, Direction, QuoteSide, RfqId, RfqNew, decimal_str, format_ts, utc_now
from rfq_engine.domain.venue import package_price, quote_sides, requester_leg_side, venue_decimal

__all__ = ["OkxRfqRoute"]

_log = structlog.get_logger(__name__)
_ENDED = frozenset({"canceled", "cancelled", "expired", "traded_away", "failed"})


def _data(response: Any) -> list[dict[str, Any]]:
    data = response.get("data") if isinstance(response, dict) else None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _millis(value: object, field: str) -> datetime:
    return datetime.fromtimestamp(int(venue_decimal(value, field)) / 1000, tz=UTC)


class _VenueRfq:
    __slots__ = ("executed", "legs", "rfq_id", "venue_rfq_id")

    def __init__(self, rfq_id: RfqId, venue_rfq_id: str, legs: list[LegMarket]) -> None:
        self.rfq_id = rfq_id
        self.venue_rfq_id = venue_rfq_id
        self.legs = legs
        self.executed = False


class OkxRfqRoute:
    """One dealer standing for the OKX block-RFQ makers."""

    can_lookup = True

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket]) -> None:
        self.exchange = exchange
        self.config = config
        self.markets = markets
        self.poll_interval_s = config.rfq_poll_interval_ms / 1000
        self._rfqs: dict[RfqId, _VenueRfq] = {}

    async def _create(self, rfq: RfqNew, legs: list[LegMarket]) -> _VenueRfq:
        written_for = QuoteSide.BID if rfq.direction is Direction.SELL else QuoteSide.ASK
        body: dict[str, Any] = {
            "counterparties": list(self.config.rfq_counterparties),
            "anonymous": self.config.rfq_anonymous,
            "clRfqId": client_id(rfq.rfq_id, self.config.client_order_prefix, 32),
            "allowPartialExecution": False,
            "legs": [
                {
                    "instId": lm.market.id,
                    "sz": decimal_str(lm.contracts),
                    "side": requester_leg_side(rfq.direction, written_for, lm.leg).value,
                    **({"tgtCcy": "base_ccy"} if lm.market.type == "spot" else {}),
                }
                for lm in legs
            ],
        }
        response = await self.exchange.privatePostRfqCreateRfq(body)
        created = _data(response)
        if not created or not created[0].get("rfqId"):
            raise RuntimeError(f"okx create-rfq returned no rfqId: {response!r}"[:300])
        venue = _VenueRfq(rfq.rfq_id, str(created[0]["rfqId"]), legs)
        self._rfqs[rfq.rfq_id] = venue
        _log.info("okx_rfq_created", rfq_id=rfq.rfq_id, venue_rfq_id=venue.venue_rfq_id)
        return venue

    def _price_quote(self, rfq: RfqNew, venue: _VenueRfq, quote: dict[str, Any]) -> SideQuote | None:
        written_for = QuoteSide.BID if rfq.direction is Direction.SELL else QuoteSide.ASK
        other = QuoteSide.ASK if written_for is QuoteSide.BID else QuoteSide.BID
        side = written_for if quote.get("quoteSide") == "buy" else other
        if side not in quote_sides(rfq.direction):
            return None
        prices = {str(leg.get("instId")): leg.get("px") for leg in quote.get("legs") or []}
        terms = []
        for lm in venue.legs:
            px = prices.get(lm.market.id)
            if px is None:
                return None  # a quote that does not price every leg is not a package price
            terms.append((requester_leg_side(rfq.direction, side, lm.leg), lm.leg.ratio,
                          venue_decimal(px, "quote.legs.px")))
        valid_until = _millis(quote.get("validUntil"), "quote.validUntil") - timedelta(
            milliseconds=self.config.confirm_margin_ms)
        return SideQuote(side, package_price(side, terms), rfq.quantity, {
            "venue_rfq_id": venue.venue_rfq_id, "venue_quote_id": str(quote.get("quoteId")),
            "valid_until": valid_until,
        })

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None:
        venue = self._rfqs.get(rfq.rfq_id)
        if venue is None:
            legs = resolve_legs(rfq, self.markets, venue="okx block RFQ",
                                currency_aliases=self.config.currency_aliases)
            if isinstance(legs, NoMarket):
                return DeclinePlan(legs.reason)
            venue = await self._create(rfq, legs)
        response = await self.exchange.privateGetRfqQuotes({"rfqId": venue.venue_rfq_id})
        now = utc_now()
        best: dict[QuoteSide, SideQuote] = {}
        for quote in _data(response):
            if quote.get("state") != "active":
                continue
            priced = self._price_quote(rfq, venue, quote)
            if priced is None or priced.detail["valid_until"] <= now:
                continue
            held = best.get(priced.side)
            better = held is None or (priced.price > held.price if priced.side is QuoteSide.BID
                                      else priced.price < held.price)
            if better:
                best[priced.side] = priced
        if not best:
            return None
        sides = tuple(best[s] for s in (QuoteSide.BID, QuoteSide.ASK) if s in best)
        valid_until = min(s.detail["valid_until"] for s in sides)
        key = "/".join(s.detail["venue_quote_id"] for s in sides)
        return QuotePlan(sides, rfq.quantity, valid_until, key=key)

    async def prepare(
        self, award: Award, sent: SentQuote, rfq: RfqNew, client_order_id: str
    ) -> dict[str, Any] | str:
        quoted = sent.side(award.side)
        if quoted is None:
            return f"the quote {sent.quote_id} had no {award.side.value}"
        if award.quantity != sent.plan.quantity:
            return (f"an OKX block RFQ executes its full size {decimal_str(sent.plan.quantity)}; "
                    f"awarded {decimal_str(award.quantity)}")
        if utc_now() > sent.plan.valid_until:
            return f"the maker quote expired at {format_ts(sent.plan.valid_until)}"
        return {
            "route": "okx_rfq",
            "venue_rfq_id": quoted.detail["venue_rfq_id"],
            "venue_quote_id": quoted.detail["venue_quote_id"],
            "client_order_id": client_order_id,
        }

    def _confirmed(self, trade: dict[str, Any], intent: dict[str, Any]) -> Outcome:
        block = str(trade.get("blockTdId") or "")
        fees = [{"instId": leg.get("instId"), "px": leg.get("px"), "sz": leg.get("sz"),
                 "fee": leg.get("fee"), "feeCcy": leg.get("feeCcy"), "tradeId": leg.get("tradeId")}
                for leg in trade.get("legs") or []]
        for rfq in self._rfqs.values():
            if rfq.venue_rfq_id == intent["venue_rfq_id"]:
                rfq.executed = True
        note = f"okx:block:{block}"
        fee_text = ",".join(f"{f['fee']} {f['feeCcy']}" for f in fees if f.get("fee") is not None)
        if fee_text:
            note += f" fees={fee_text}"
        return Outcome(True, Decimal(intent["award"]["quantity"]), Decimal(intent["award"]["price"]),
                       note[:200], "", {"block_trade_id": block, "legs": fees})

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        price = Decimal(intent["award"]["price"])
        try:
            response = await self.exchange.privatePostRfqExecuteQuote(
                {"rfqId": intent["venue_rfq_id"], "quoteId": intent["venue_quote_id"]})
        except Exception as exc:
            failed = await placement_failed(exc, price, "OKX refused to execute the quote", log=_log,
                                            event="okx_rfq_execute_failed",
                                            backoff_ms=self.config.rate_limit_backoff_ms,
                                            venue_rfq_id=intent["venue_rfq_id"])
            return failed if isinstance(failed, Outcome) else None
        trades = _data(response)
        if trades and trades[0].get("blockTdId"):
            return self._confirmed(trades[0], intent)
        return None  # no block trade id in the answer: reconcile

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        venue_rfq_id = intent["venue_rfq_id"]
        try:
            trades = _data(await self.exchange.privateGetRfqTrades({"rfqId": venue_rfq_id}))
            mine = [t for t in trades if str(t.get("quoteId")) == intent["venue_quote_id"]]
            if mine:
                return self._confirmed(mine[0], intent)
            rfqs = _data(await self.exchange.privateGetRfqRfqs({"rfqId": venue_rfq_id}))
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                raise
            _log.info("okx_rfq_lookup", venue_rfq_id=venue_rfq_id, result=describe_error(exc, 120))
            return None
        state = str(rfqs[0].get("state")) if rfqs else ""
        if state in _ENDED or (state == "filled" and not mine):
            return Outcome.reject(Decimal(intent["award"]["price"]),
                                  f"the OKX block RFQ ended {state} without a trade on our quote")
        return None

    async def closed(self, rfq_id: RfqId) -> None:
        venue = self._rfqs.pop(rfq_id, None)
        if venue is None or venue.executed:
            return
        try:
            await self.exchange.privatePostRfqCancelRfq({"rfqId": venue.venue_rfq_id})
        except Exception as exc:  # best effort: the venue RFQ also expires on its own
            _log.info("okx_rfq_cancel_failed", venue_rfq_id=venue.venue_rfq_id,
                      error=describe_error(exc, 200))
