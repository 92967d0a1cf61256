"""The simulated desk's quoting and last-look model: pure decisions, no I/O, no clock.

The simulated dealer *is* a dealer (it plays the remote desk), so unlike a transport
adapter it decides: whether to answer, at what price and size, and whether to stand
by an award. Everything random comes from the desk's own seeded ``random.Random``
streams, one for RFQs and one for awards, so a run is reproducible from its seeds and
the RFQ stream does not shift when an award is added to a scenario. Every RFQ draws
the same three numbers whatever the outcome, for the same reason.

Prices: ``bid = value - half_spread + skew``, ``ask = value + half_spread - skew``, where
``value`` is ``package_value`` in the RFQ's orientation (for two-way: the buy orientation,
as the legs are written) and spread and skew are bps of ``reference_underlying_price``.
The bid is rounded down and the ask up to ``tick_size`` (default 0.01 for every
instrument, including BTC futures whose exchange tick is 0.5: the package price is a
net over legs, so an exchange tick does not apply to it), never tighter than the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_adapters.simulated.wire import quote_body
from rfq_engine.domain import (
    Award,
    DealerId,
    Direction,
    QuoteId,
    QuoteSide,
    RfqId,
    RfqNew,
)
from rfq_engine.domain.pricing import (
    MarketSnapshot,
    PriceUnavailable,
    package_value,
    reference_underlying_price,
)
from rfq_engine.domain.rfq import Package

__all__ = [
    "BPS",
    "DECLINE_NOT_QUOTED",
    "DECLINE_NO_APPETITE",
    "DECLINE_NO_PRICE",
    "DECLINE_SIZE",
    "REJECT_FENCED",
    "REJECT_LAST_LOOK",
    "REJECT_LATE",
    "DealerModel",
    "DeclinePlan",
    "QuotePlan",
    "RfqPlan",
    "SentQuote",
    "quote_body",
    "quote_prices",
    "unit_not_traded",
]

BPS = Decimal(10_000)
DECLINE_NOT_QUOTED = "instrument not quoted"
DECLINE_SIZE = "size too large"
DECLINE_NO_APPETITE = "no appetite"
DECLINE_NO_PRICE = "no price"
REJECT_LAST_LOOK = "last look: price moved"
REJECT_LATE = "award arrived after confirm_by"
REJECT_FENCED = "execution id already reported not found"
"""The answer to an award whose execution id the desk already told a lookup it had no
record of: it is never booked, so that "not found" stays true."""


def unit_not_traded(unit: str) -> str:
    """The decline / reject reason for a quantity unit the desk does not trade."""
    return f"unit {unit or '(none)'} not traded"


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """Prices and size the desk will quote (the side not asked for is None)."""

    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class DeclinePlan:
    reason: str


@dataclass(frozen=True, slots=True)
class RfqPlan:
    """The desk's answer to one RFQ and when it arrives; ``answer is None`` is silence."""

    answer: QuotePlan | DeclinePlan | None
    delay_s: float


@dataclass(frozen=True, slots=True)
class SentQuote:
    """A quote the desk sent: what an award must match."""

    rfq_id: RfqId
    quote_id: QuoteId
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal
    valid_until: datetime
    quantity_unit: str = ""
    """The RFQ's unit: what an award on this quote is in."""


def _round(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def quote_prices(
    value: Decimal,
    reference: Decimal,
    direction: Direction,
    config: SimulatedDealerConfig,
) -> tuple[Decimal | None, Decimal | None]:
    """(bid, ask) around ``value``: only the side a one-way RFQ needs, both for two-way."""
    half_spread = reference * config.spread_bps / BPS / 2
    skew = reference * config.skew_bps / BPS
    bid: Decimal | None = None
    ask: Decimal | None = None
    if direction in (Direction.SELL, Direction.TWO_WAY):
        bid = _round(value - half_spread + skew, config.tick_size, ROUND_FLOOR)
    if direction in (Direction.BUY, Direction.TWO_WAY):
        ask = _round(value + half_spread - skew, config.tick_size, ROUND_CEILING)
    return bid, ask


class DealerModel:
    """One desk's decisions. Not thread-safe; the adapter calls it on the event loop."""

    def __init__(self, dealer_id: DealerId, config: SimulatedDealerConfig) -> None:
        self.dealer_id = dealer_id
        self.config = config
        seed = config.seed if config.seed is not None else random.SystemRandom().getrandbits(64)
        # String seeds hash deterministically (sha512), so the streams are stable across
        # processes, and two desks configured with the same seed still draw differently.
        self._rfq_rng = random.Random(f"{dealer_id}:{seed}:rfq")
        self._award_rng = random.Random(f"{dealer_id}:{seed}:award")
        self._lose_rng = random.Random(f"{dealer_id}:{seed}:lose")

    def loses_confirm(self) -> bool:
        """Whether the confirm of a trade just booked is lost on the way (``lose_confirm_rate``);
        its own stream, so the RFQ and award draws do not shift when it is turned on."""
        return self._lose_rng.random() < self.config.lose_confirm_rate

    def plan_rfq(self, rfq: RfqNew, market: MarketSnapshot, today: date) -> RfqPlan:
        """Decide the answer to ``rfq``; ``market`` is the desk's view when it received it."""
        config = self.config
        silent = self._rfq_rng.random() < config.silence_rate
        declines = self._rfq_rng.random() < config.decline_rate
        jitter = config.latency_jitter_ms
        latency_ms = max(0.0, self._rfq_rng.uniform(config.latency_ms - jitter, config.latency_ms + jitter))
        delay_s = latency_ms / 1000.0
        if silent:
            return RfqPlan(None, delay_s)
        return RfqPlan(self._answer(rfq, market, today, declines), delay_s)

    def _answer(
        self, rfq: RfqNew, market: MarketSnapshot, today: date, declines: bool
    ) -> QuotePlan | DeclinePlan:
        config = self.config
        if any(leg.instrument.kind not in config.instruments for leg in rfq.legs):
            return DeclinePlan(DECLINE_NOT_QUOTED)
        if not config.trades_unit(rfq.quantity_unit):
            return DeclinePlan(unit_not_traded(rfq.quantity_unit))
        quantity = rfq.quantity
        if config.max_quantity is not None and quantity > config.max_quantity:
            if not rfq.allow_partial:
                return DeclinePlan(DECLINE_SIZE)
            quantity = config.max_quantity
        if declines:
            return DeclinePlan(DECLINE_NO_APPETITE)
        package = Package(rfq.legs)
        try:
            value = package_value(package, rfq.direction, market, today)
            reference = reference_underlying_price(package, market)
        except PriceUnavailable as exc:
            return DeclinePlan(f"{DECLINE_NO_PRICE}: {exc}")
        bid, ask = quote_prices(value, reference, rfq.direction, config)
        return QuotePlan(bid, ask, quantity)

    def plan_award(self, award: Award, quote: SentQuote | None, now: datetime) -> str | None:
        """The reason to reject ``award``, or None to confirm it.

        A desk stands only by what it quoted: the award must be in a unit it trades (the
        quote's unit when the award names none), name a live quote of this RFQ, repeat its
        price on a side it quoted, and not exceed its size. Then last look.
        """
        last_look_rejects = self._award_rng.random() < self.config.last_look_reject_rate
        if now > award.confirm_by:
            return REJECT_LATE
        unit = award.quantity_unit or (quote.quantity_unit if quote is not None else "")
        if unit and not self.config.trades_unit(unit):
            return unit_not_traded(unit)
        if quote is None or quote.rfq_id != award.rfq_id:
            return "unknown quote"
        if now > quote.valid_until:
            return "quote expired"
        if (award.quantity_unit and quote.quantity_unit
                and award.quantity_unit.strip().casefold() != quote.quantity_unit.strip().casefold()):
            return f"unit {award.quantity_unit} does not match the quote's unit {quote.quantity_unit}"
        quoted = quote.bid if award.side is QuoteSide.BID else quote.ask
        if quoted is None:
            return f"no {award.side.value} was quoted"
        if award.price != quoted:
            return "price does not match the quote"
        if award.quantity > quote.quantity:
            return "quantity exceeds the quote"
        if last_look_rejects:
            return REJECT_LAST_LOOK
        return None
