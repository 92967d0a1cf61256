"""Positions, marks and P&L from fills (pure: fills and their RFQ specs in, numbers out).

A fill is of the *package*: ``quantity`` units at one net ``price`` in the RFQ's orientation
(``rfq_engine.domain.rfq``). Each leg becomes a trade in its instrument:

- **Quantity:** ``quantity * ratio``, positive when the requester bought the leg. A leg's
  ``side`` is the requester's side when the package trades in the RFQ's direction; a
  two-way RFQ's legs are written as buying, so a private side of ``sell`` flips them.
- **Price:** a single-leg fill's price is the leg's price. A multi-leg fill has only a
  net price, so it is allocated: every leg but one takes its reference price at submission
  (``rfq.submitted``'s ``reference.legs``; the current mark when none was recorded) and the
  leg that expires last absorbs the rest, so that ``sum(sign * ratio * leg price)`` equals
  the traded net price exactly. The package's total P&L is therefore exact; only its
  split across legs is an allocation (``allocated: true``).

Per instrument, trades are netted in fill order at average cost: a trade that reduces a
position realizes ``(price - average) * closed * multiplier`` (signed for shorts). The
multiplier is 1, except a hashprice NDF's, which is its ``days`` (one unit of quantity is
1 PH/s for every day of the contract; the price is per PH/s per day).

Inverse contracts (a fill whose ``TradeRecord.contract`` says so: Deribit BTC-PERPETUAL and
dated BTC futures, OKX BTC-USD-SWAP; ``fill_terms`` reads the terms the ccxt dealer writes
into ``dealer_trade_id``) are netted in their quote-currency notional, the contracts, not
in BTC: closing 5,000 USD of contracts at another price is a different number of BTC.
Their P&L is in coin: a position of notional ``N`` (signed, USD) entered at ``average``
gains ``N * (1 / average - 1 / price)`` BTC when closed at ``price``; the average of
trades that add is the notional over their BTC (``sum N / sum (N / price)``). Short 5,000
one-USD contracts at 5,000 and close at 6,000: ``-5000 * (1/5000 - 1/6000) = -0.1667``
BTC; close at 4,000: ``+0.25`` BTC. In USD the coin P&L is valued at the position's mark
(``pnl_usd_at`` says which price; without a mark, the price of the last trade), so the
report's totals stay in one currency. An inverse position is kept apart from a linear one
in the same instrument (an OTC desk's USD-settled perpetual and Deribit's are different
risks). The settlement currency is recorded with every fill where the dealer stated it,
typed by ``terms.settlement_kind`` (coin, stablecoin, fiat).

Coin-premium options (Deribit's BTC options, OKX's coin-margined ones: ``ContractTerms``
with ``premium_currency`` and the ``index_price`` the quote was converted at) are netted
like any option in the underlying, and also in coin: a trade's coin price is its USD price
over that index (918 USD at 60,000 is 0.0153 BTC). Their P&L is in coin, the mark in coin
at spot (``mark / spot``), and in USD at spot (``pnl_usd_at``): the premium paid in BTC is
worth more USD when BTC rises, which the USD prices traded alone would not show.

Marks: the ``settlements`` given (an index or final settlement, by instrument key) first;
else the model fair value from the ``MarketSnapshot`` (a future at or past expiry is worth
spot; an expired option its intrinsic value at spot; an NDF the snapshot's hashprice, an
estimate of its settlement index). An instrument past its last date is *expired*: its
P&L at the mark is realized (settled). Each calendar roll's result from the price traded is
``rolls.roll_results``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import (
    Future,
    HashpriceNdf,
    Instrument,
    Option,
    OptionType,
    Perpetual,
    Spot,
    last_date,
)
from rfq_engine.domain.pricing import MarketSnapshot, PriceUnavailable, fair_price
from rfq_engine.domain.rfq import Direction, RfqSpec, Side
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.terms import (
    ContractTerms,
    SettlementKind,
    fill_terms,
    inverse_pnl,
    settlement_kind,
)

__all__ = [
    "ContractTerms",
    "LegTrade",
    "Position",
    "PositionKey",
    "SettlementKind",
    "TradeRecord",
    "apply_legs",
    "build_positions",
    "executed_sides",
    "fill_order",
    "fill_terms",
    "instrument_key",
    "inverse_pnl",
    "leg_trades",
    "mark_positions",
    "net_quantities",
    "parse_instrument_key",
]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _d(value: Decimal) -> str:
    return decimal_str(_OUT.plus(value))


def instrument_key(instrument: Instrument) -> str:
    """A readable, unique key: ``BTC-USD-FUT-2026-12-25``, ``BTC-USD-OPT-2026-12-25-35000-P``,
    ``HASHPRICE-USD-NDF-2026-12-01-31D``, ``BTC-USD-PERP``, ``BTC-USD-SPOT``."""
    base = f"{instrument.underlying}-{instrument.quote_ccy}"
    if isinstance(instrument, Future):
        return f"{base}-FUT-{instrument.expiry.isoformat()}"
    if isinstance(instrument, Option):
        kind = "P" if instrument.option_type is OptionType.PUT else "C"
        return f"{base}-OPT-{instrument.expiry.isoformat()}-{decimal_str(instrument.strike)}-{kind}"
    if isinstance(instrument, HashpriceNdf):
        return f"{base}-NDF-{instrument.start.isoformat()}-{instrument.days}D"
    if isinstance(instrument, Perpetual):
        return f"{base}-PERP"
    return f"{base}-SPOT"


def parse_instrument_key(key: str) -> Instrument:
    """The inverse of ``instrument_key``; a ``ValidationError`` names the malformed key."""
    from rfq_engine.domain.instruments import instrument_from_dict

    parts = key.strip().split("-")
    try:
        underlying, ccy, kind = parts[0], parts[1], parts[2]
        if kind == "FUT" and len(parts) == 6:
            return instrument_from_dict({"kind": "future", "underlying": underlying, "quote_ccy": ccy,
                                         "expiry": "-".join(parts[3:6])})
        if kind == "OPT" and len(parts) == 8:
            return instrument_from_dict({
                "kind": "option", "underlying": underlying, "quote_ccy": ccy,
                "expiry": "-".join(parts[3:6]), "strike": parts[6],
                "option_type": {"P": "put", "C": "call"}[parts[7]]})
        if kind == "NDF" and len(parts) == 7 and parts[6].endswith("D"):
            return instrument_from_dict({"kind": "hashprice_ndf", "underlying": underlying,
                                         "quote_ccy": ccy, "start": "-".join(parts[3:6]),
                                         "days": int(parts[6][:-1])})
        if kind == "PERP" and len(parts) == 3:
            return Perpetual(underlying, ccy)
        if kind == "SPOT" and len(parts) == 3:
            return Spot(underlying, ccy)
    except (IndexError, KeyError, ValueError):
        pass
    raise ValidationError("instrument", f"not an instrument key like 'BTC-USD-FUT-2026-12-25' or "
                          f"'HASHPRICE-USD-NDF-2026-12-01-31D': {key!r}")


def multiplier(instrument: Instrument) -> Decimal:
    return Decimal(instrument.days) if isinstance(instrument, HashpriceNdf) else Decimal(1)


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One fill with what is needed to split it into legs: the RFQ's spec and the reference leg
    prices recorded at submission (None when the engine had no reference); ``contract``, the
    fill's settlement terms where its dealer stated them (a single-leg fill only)."""

    fill_id: str
    rfq_id: str
    spec: RfqSpec
    price: Decimal
    quantity: Decimal
    filled_at: datetime
    dealer_id: str = ""
    reference_legs: tuple[Decimal, ...] | None = None
    contract: ContractTerms | None = None


@dataclass(frozen=True, slots=True)
class LegTrade:
    instrument: Instrument
    quantity: Decimal
    """Signed: positive bought, negative sold."""
    price: Decimal
    fill_id: str
    rfq_id: str
    filled_at: datetime
    allocated: bool
    notional: Decimal | None = None
    """An inverse contract's signed quote-currency notional (positive bought); None: linear."""
    settlement: str = ""
    contract_value: Decimal | None = None
    index_price: Decimal | None = None
    """A coin premium's index (its price in coin is ``price / index_price``); None: not one."""
    premium_currency: str = ""


def executed_sides(spec: RfqSpec) -> list[Side]:
    """The side each leg traded on, for the requester (a two-way RFQ sold flips them)."""
    flip = spec.direction is Direction.TWO_WAY and spec.requester_side is Side.SELL
    return [leg.side.opposite if flip else leg.side for leg in spec.legs]


def _residual_leg(spec: RfqSpec) -> int:
    dates = [last_date(leg.instrument) or date.min for leg in spec.legs]
    latest = max(dates)
    return dates.index(latest)


def leg_trades(trade: TradeRecord, snapshot: MarketSnapshot | None = None,
               today: date | None = None) -> list[LegTrade]:
    """The fill as one trade per leg (see the module docstring for the price allocation)."""
    spec = trade.spec
    sides = executed_sides(spec)
    legs = spec.legs
    if len(legs) == 1:
        prices = [trade.price]
        allocated = False
    else:
        references: list[Decimal] | None = None
        if trade.reference_legs is not None and len(trade.reference_legs) == len(legs):
            references = list(trade.reference_legs)
        elif snapshot is not None and today is not None:
            try:
                references = [fair_price(leg.instrument, snapshot, today) for leg in legs]
            except PriceUnavailable:
                references = None
        if references is None:
            raise ValidationError(f"fill {trade.fill_id}", "a multi-leg fill without reference leg "
                                  "prices or a market to allocate its net price from")
        signs = spec.package.leg_signs(spec.direction)
        j = _residual_leg(spec)
        with localcontext(_WORK):
            implied = sum((s * leg.ratio * p for i, (s, leg, p)
                           in enumerate(zip(signs, legs, references, strict=True)) if i != j), Decimal(0))
            references[j] = (trade.price - implied) / (signs[j] * legs[j].ratio)
        prices = [_OUT.plus(p) for p in references]
        allocated = True
    terms = trade.contract
    if terms is not None and (terms.inverse or terms.coin_premium) and len(legs) != 1:
        raise ValidationError(f"fill {trade.fill_id}", "inverse or coin-premium terms on a multi-leg fill")
    coin = terms is not None and terms.coin_premium
    out = []
    for leg, side, price in zip(legs, sides, prices, strict=True):
        sign = 1 if side is Side.BUY else -1
        notional = None
        with localcontext(_WORK):
            qty = trade.quantity * leg.ratio * sign
            if terms is not None and terms.inverse:
                notional = sign * (terms.notional if terms.notional is not None else abs(qty) * price)
        out.append(LegTrade(leg.instrument, _OUT.plus(qty), price, trade.fill_id, trade.rfq_id,
                            trade.filled_at, allocated, notional,
                            terms.settlement if terms is not None else "",
                            terms.contract_value if terms is not None else None,
                            terms.index_price if terms is not None and coin else None,
                            terms.premium_currency if terms is not None and coin else ""))
    return out


def net_quantities(trades: Iterable[TradeRecord]) -> dict[Instrument, Decimal]:
    """Signed net quantity per instrument (no prices needed), in the underlying; an inverse
    position counts its BTC at entry (its notional over its average price)."""
    out: dict[Instrument, Decimal] = {}
    inverse: dict[Instrument, Position] = {}
    for trade in sorted(trades, key=lambda t: (t.filled_at, t.fill_id)):
        if trade.contract is not None and trade.contract.inverse:
            for lt in leg_trades(trade):
                inverse.setdefault(lt.instrument, Position(lt.instrument, inverse=True)).apply(lt)
            continue
        sides = executed_sides(trade.spec)
        for leg, side in zip(trade.spec.legs, sides, strict=True):
            qty = trade.quantity * leg.ratio * (1 if side is Side.BUY else -1)
            out[leg.instrument] = out.get(leg.instrument, Decimal(0)) + qty
    for instrument, position in inverse.items():
        out[instrument] = out.get(instrument, Decimal(0)) + position.quantity
    return {k: v for k, v in out.items() if v != 0}


@dataclass
class Position:
    instrument: Instrument
    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    traded_quantity: Decimal = Decimal(0)
    trades: int = 0
    allocated: bool = False
    mark: Decimal | None = None
    mark_source: str = ""
    unrealized_pnl: Decimal | None = None
    status: str = "open"
    settled_pnl: Decimal = Decimal(0)
    inverse: bool = False
    notional: Decimal = Decimal(0)
    """Inverse: the signed quote-currency notional (the contracts times their value)."""
    realized_pnl_coin: Decimal = Decimal(0)
    unrealized_pnl_coin: Decimal | None = None
    pnl_usd_at: str = ""
    settlement: str = ""
    contract_value: Decimal | None = None
    last_price: Decimal = Decimal(0)
    premium_currency: str = ""
    """A coin-premium option (``BTC``): also netted in coin, its P&L in coin and at spot."""
    average_price_coin: Decimal = Decimal(0)

    @property
    def key(self) -> str:
        return instrument_key(self.instrument)

    def _apply_inverse(self, trade: LegTrade) -> None:
        n, dn, p = self.notional, trade.notional, trade.price
        assert dn is not None
        with localcontext(_WORK):
            if n == 0 or (n > 0) == (dn > 0):
                coin = (abs(n) / self.average_price if n else Decimal(0)) + abs(dn) / p
                self.average_price = (abs(n) + abs(dn)) / coin
            else:
                closed = min(abs(dn), abs(n))
                self.realized_pnl_coin += inverse_pnl(closed if n > 0 else -closed, self.average_price, p)
                if abs(dn) > abs(n):
                    self.average_price = p
                elif abs(dn) == abs(n):
                    self.average_price = Decimal(0)
            self.notional = n + dn
            self.quantity = self.notional / self.average_price if self.average_price else Decimal(0)
            self.traded_quantity += abs(trade.quantity)

    def apply(self, trade: LegTrade) -> None:
        if trade.settlement:
            self.settlement = trade.settlement
        self.contract_value = trade.contract_value or self.contract_value
        self.last_price = trade.price
        if self.inverse:
            self._apply_inverse(trade)
            self.trades += 1
            self.allocated = self.allocated or trade.allocated
            return
        q, dq = self.quantity, trade.quantity
        if self.premium_currency and trade.index_price:
            with localcontext(_WORK):
                coin_price = trade.price / trade.index_price
            self.average_price_coin, self.realized_pnl_coin = _net(
                q, dq, self.average_price_coin, self.realized_pnl_coin, coin_price, Decimal(1))
        self.average_price, self.realized_pnl = _net(q, dq, self.average_price, self.realized_pnl,
                                                     trade.price, multiplier(self.instrument))
        self.quantity = q + dq
        self.traded_quantity += abs(dq)
        self.trades += 1
        self.allocated = self.allocated or trade.allocated

    def to_dict(self) -> dict[str, Any]:
        out = self._linear_dict()
        if self.settlement:
            out["settlement_currency"] = self.settlement
            out["settlement_kind"] = SettlementKind.COIN.value if self.inverse else settlement_kind(
                self.settlement)
        if self.premium_currency:
            unrealized_coin = self.unrealized_pnl_coin
            out.update({
                "contract": "coin_premium", "premium_currency": self.premium_currency,
                "average_price_coin": _d(self.average_price_coin),
                "realized_pnl_coin": _d(self.realized_pnl_coin),
                "unrealized_pnl_coin": None if unrealized_coin is None else _d(unrealized_coin),
                "pnl_usd_at": self.pnl_usd_at,
            })
        if self.inverse:
            unrealized = self.unrealized_pnl_coin
            out.update({
                "contract": "inverse",
                "notional": _d(self.notional),
                "realized_pnl_coin": _d(self.realized_pnl_coin),
                "unrealized_pnl_coin": None if unrealized is None else _d(unrealized),
                "pnl_usd_at": self.pnl_usd_at,
            })
            if self.contract_value:
                out["contracts"] = _d(self.notional / self.contract_value)
        return out

    def _linear_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.key,
            "kind": self.instrument.kind.value,
            "quantity": _d(self.quantity),
            "average_price": _d(self.average_price),
            "multiplier": _d(multiplier(self.instrument)),
            "mark": None if self.mark is None else _d(self.mark),
            "mark_source": self.mark_source,
            "realized_pnl": _d(self.realized_pnl),
            "unrealized_pnl": None if self.unrealized_pnl is None else _d(self.unrealized_pnl),
            "status": self.status,
            "trades": self.trades,
            "allocated": self.allocated,
        }


def _net(q: Decimal, dq: Decimal, average: Decimal, realized: Decimal, price: Decimal,
         mult: Decimal) -> tuple[Decimal, Decimal]:
    """Average cost and realized P&L after a trade of ``dq`` at ``price`` on a position ``q``."""
    with localcontext(_WORK):
        if q == 0 or (q > 0) == (dq > 0):
            return (average * abs(q) + price * abs(dq)) / (abs(q) + abs(dq)), realized
        closed = min(abs(dq), abs(q))
        realized += (price - average) * closed * (1 if q > 0 else -1) * mult
        if abs(dq) > abs(q):
            return price, realized
        return (Decimal(0) if abs(dq) == abs(q) else average), realized


def _mark(instrument: Instrument, snapshot: MarketSnapshot, today: date,
          settlements: Mapping[str, Decimal]) -> tuple[Decimal | None, str]:
    key = instrument_key(instrument)
    if key in settlements:
        return settlements[key], "settlement"
    expired = (last_date(instrument) or date.max) < today
    try:
        if isinstance(instrument, Option) and expired:
            spot = snapshot.spot.get(instrument.underlying.upper())
            if spot is None:
                return None, f"unavailable: no spot for {instrument.underlying}"
            intrinsic = (instrument.strike - spot if instrument.option_type is OptionType.PUT
                         else spot - instrument.strike)
            return max(intrinsic, Decimal(0)), "intrinsic at spot"
        if isinstance(instrument, HashpriceNdf):
            return fair_price(instrument, snapshot, today), "hashprice (estimate of the index)"
        return fair_price(instrument, snapshot, today), "model"
    except PriceUnavailable as exc:
        return None, f"unavailable: {exc.missing}"


PositionKey = tuple[Instrument, bool, str]
"""A position's identity: instrument, inverse, premium currency (``Position.inverse``...)."""


def fill_order(trade: TradeRecord) -> tuple[datetime, str]:
    """The order fills are netted in: by time, then id."""
    return trade.filled_at, trade.fill_id


def apply_legs(book: dict[PositionKey, Position], legs: Iterable[LegTrade]) -> None:
    """Net each leg trade into its position in ``book`` (created at its first trade)."""
    for leg in legs:
        inverse = leg.notional is not None
        book.setdefault((leg.instrument, inverse, leg.premium_currency), Position(
            leg.instrument, inverse=inverse, premium_currency=leg.premium_currency)).apply(leg)


def build_positions(trades: Sequence[TradeRecord], snapshot: MarketSnapshot, today: date,
                    settlements: Mapping[str, Decimal] | None = None) -> list[Position]:
    """Every instrument's position, marked, in key order (see the module docstring)."""
    book: dict[PositionKey, Position] = {}
    for trade in sorted(trades, key=fill_order):
        apply_legs(book, leg_trades(trade, snapshot, today))
    return mark_positions(book.values(), snapshot, today, settlements)


def mark_positions(book: Iterable[Position], snapshot: MarketSnapshot, today: date,
                   settlements: Mapping[str, Decimal] | None = None) -> list[Position]:
    """Mark netted positions (in place: their mark, status and P&L at it), in key order."""
    settlements = dict(settlements or {})
    book = list(book)
    for position in book:
        instrument = position.instrument
        mark, source = _mark(instrument, snapshot, today, settlements)
        position.mark, position.mark_source = mark, source
        expired = (last_date(instrument) or date.max) < today
        if position.inverse:
            _mark_inverse(position, mark, expired or source == "settlement")
            continue
        if position.premium_currency:
            _mark_coin(position, mark, snapshot.spot.get(instrument.underlying.upper()),
                       expired or source == "settlement")
            continue
        if position.quantity == 0:
            position.status = "closed"
            position.unrealized_pnl = Decimal(0)
            continue
        if mark is None:
            position.unrealized_pnl = None
            position.status = "expired" if expired else "open"
            continue
        with localcontext(_WORK):
            pnl = (mark - position.average_price) * position.quantity * multiplier(instrument)
        if expired or source == "settlement":
            position.status = "settled"
            position.settled_pnl = _OUT.plus(pnl)
            position.realized_pnl = _OUT.plus(position.realized_pnl + pnl)
            position.unrealized_pnl = Decimal(0)
        else:
            position.unrealized_pnl = _OUT.plus(pnl)
        position.realized_pnl = _OUT.plus(position.realized_pnl)
    return sorted(book, key=lambda p: (p.key, p.inverse, p.premium_currency))


def _mark_coin(position: Position, mark: Decimal | None, spot: Decimal | None, settles: bool) -> None:
    """A coin-premium option: P&L in coin (its premium paid in coin, its mark in coin at spot),
    and in USD at spot (without a spot, realized P&L at the USD prices traded)."""
    closed = position.quantity == 0
    with localcontext(_WORK):
        coin_mark = None if mark is None or not spot or spot <= 0 else mark / spot
        unrealized = (Decimal(0) if closed else None if coin_mark is None
                      else (coin_mark - position.average_price_coin) * position.quantity)
        position.mark = mark
        position.status = "closed" if closed else "settled" if settles and unrealized is not None else "open"
        if settles and unrealized is not None and not closed:
            position.realized_pnl_coin += unrealized
            unrealized = Decimal(0)
        position.unrealized_pnl_coin = None if unrealized is None else _OUT.plus(unrealized)
        position.realized_pnl_coin = _OUT.plus(position.realized_pnl_coin)
        if spot is None or spot <= 0:  # realized stays in USD as traded; nothing valued at spot
            position.pnl_usd_at = "no spot: USD at the prices traded"
            position.unrealized_pnl = Decimal(0) if closed else None
            return
        position.pnl_usd_at = f"spot {decimal_str(_OUT.plus(spot))}"
        position.realized_pnl = _OUT.plus(position.realized_pnl_coin * spot)
        position.unrealized_pnl = None if unrealized is None else _OUT.plus(unrealized * spot)
        if position.status == "settled":
            position.settled_pnl = position.realized_pnl


def _mark_inverse(position: Position, mark: Decimal | None, settles: bool) -> None:
    """An inverse position's coin P&L at ``mark``, and both in USD at the mark (or, without
    one, at the last trade's price)."""
    at = mark if mark is not None and mark > 0 else position.last_price
    position.pnl_usd_at = (f"mark {decimal_str(_OUT.plus(at))}" if at is mark
                           else f"last trade {decimal_str(_OUT.plus(at))}")
    if position.notional == 0:
        position.status = "closed"
        position.unrealized_pnl_coin = Decimal(0)
    elif mark is None or mark <= 0:
        position.unrealized_pnl_coin = None
    else:
        coin = inverse_pnl(position.notional, position.average_price, mark)
        if settles:
            position.status = "settled"
            position.settled_pnl = _OUT.plus(coin * mark)
            position.realized_pnl_coin += coin
            position.unrealized_pnl_coin = Decimal(0)
        else:
            position.unrealized_pnl_coin = coin
    with localcontext(_WORK):
        position.realized_pnl_coin = _OUT.plus(position.realized_pnl_coin)
        position.realized_pnl = _OUT.plus(position.realized_pnl_coin * at)
        unrealized = position.unrealized_pnl_coin
        position.unrealized_pnl = None if unrealized is None else _OUT.plus(unrealized * at)
        if unrealized is not None:
            position.unrealized_pnl_coin = _OUT.plus(unrealized)
