"""Exchange markets and order books as pure values: matching, depth walks, package prices.

Exchanges describe what they list with one unified *market structure* (ccxt's
``load_markets()`` result: ``type``, ``base``/``quote``/``settle``, ``expiry``,
``strike``, ``optionType``, ``contractSize``, ``precision``, ``taker``...) and their
depth with one *order-book structure* (``bids``/``asks`` as ``[price, amount]``). This
module reads those plain mappings; it imports no exchange library and does no I/O, so
the dealer adapter (``dealer_adapters.ccxt``) and the engine's reference prices
(``rfq_engine.pricing.ccxt_reference``) share it without crossing a layer.

Floats: an exchange library hands numbers over as Python floats. ``venue_decimal`` is
the one place they become ``Decimal``, as ``Decimal(str(x))``: ``str`` of a float is its
shortest round-tripping repr, which is the decimal string the venue sent for every value
of up to 15 significant digits (all prices and sizes in practice). ``Decimal(x)`` would
keep the binary expansion (``0.1`` -> ``0.1000000000000000055...``) and is never used.
Everything after that boundary is Decimal, computed in a local context: some libraries
change the thread's default decimal context (rounding mode, traps) as a side effect.

Instruments map to markets by structure, never by building symbol strings:

| instrument | market |
| --- | --- |
| ``Spot(BTC, USD)`` | ``type == "spot"``, base BTC, quote USD (or a configured alias) |
| ``Perpetual`` | ``type == "swap"``, linear (settled in the quote currency) |
| ``Future`` | ``type == "future"``, linear, expiry on the same UTC date |
| ``Option`` | ``type == "option"``, linear, same expiry date, strike and put/call |

Amounts (``AmountUnit``): ccxt's unified convention is that an amount counts contracts of
``contractSize`` (base units for spot). Venues do not all follow it (Deribit sizes linear
futures in the base coin and inverse futures in USD, whatever ``contractSize`` says), so a
market carries the unit its venue documents (set by the dealer's venue dialect) and every
conversion goes through ``amount_value`` / ``contract_amount``.

Inverse futures and perpetuals (settled in the base currency, sized in quote-currency
contracts) match only when the caller can size them (``allow_inverse``): ``walk_inverse``
turns a quantity of the underlying into whole contracts at the walked price and reports
the residual. Inverse options (premiums quoted in the base currency) are always declined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
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
)
from rfq_engine.domain.rfq import Direction, Leg, QuoteSide, Side
from rfq_engine.domain.values import decimal_str

__all__ = [
    "PRECISION_DECIMAL_PLACES",
    "PRECISION_SIGNIFICANT_DIGITS",
    "PRECISION_TICK_SIZE",
    "AmountUnit",
    "BookFill",
    "BookLevel",
    "NoMarket",
    "OrderBook",
    "VenueMarket",
    "describe_instrument",
    "leg_sign",
    "match_market",
    "package_price",
    "quote_sides",
    "requester_leg_side",
    "round_price",
    "round_to_step",
    "venue_decimal",
    "walk_book",
    "walk_inverse",
    "walk_market",
]

PRECISION_DECIMAL_PLACES = 2
PRECISION_SIGNIFICANT_DIGITS = 3
PRECISION_TICK_SIZE = 4
"""ccxt's ``precisionMode`` values (``ccxt.base.decimal_to_precision``)."""

_CTX = Context(prec=40, rounding=ROUND_HALF_EVEN)
"""Local arithmetic context: independent of whatever the thread's default was set to."""
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)
"""Results are rounded to 28 significant digits, as in ``domain.pricing``."""

_KIND_TO_TYPE = {Spot: "spot", Perpetual: "swap", Future: "future", Option: "option"}


def venue_decimal(value: object, field: str) -> Decimal:
    """A finite Decimal from a venue number (float, int, numeric string or Decimal).

    ``Decimal(str(x))`` for floats (see the module docstring). ``None``, booleans, NaN and
    infinities raise ``ValidationError`` naming ``field``.
    """
    if value is None or isinstance(value, bool):
        raise ValidationError(field, f"must be a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except ArithmeticError:
            raise ValidationError(field, f"not a number: {value!r}") from None
    else:
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValidationError(field, f"must be finite, got {value!r}")
    return result


def _opt_decimal(value: object, field: str) -> Decimal | None:
    return None if value is None else venue_decimal(value, field)


def round_to_step(value: Decimal, step: Decimal | None, *, up: bool = False) -> Decimal:
    """``value`` rounded down (or ``up``) to a whole multiple of ``step``; unchanged without one."""
    if step is None or step <= 0:
        return value
    with localcontext(_CTX):
        units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
        return units * step


def round_price(price: Decimal, quantum: Decimal | None, *, up: bool) -> Decimal:
    """A quoted price to ``quantum`` (a power of ten), ``up`` or down; unchanged without one."""
    if quantum is None or quantum <= 0:
        return price
    with localcontext(_CTX):
        return price.quantize(quantum, rounding=ROUND_CEILING if up else ROUND_FLOOR)


# --- markets ---------------------------------------------------------------------------------


def _step(precision: object, mode: int, field: str) -> Decimal | None:
    """A precision entry as a step: a tick size as is, decimal places as 10^-n."""
    if precision is None:
        return None
    if mode == PRECISION_TICK_SIZE:
        step = venue_decimal(precision, field)
        return step if step > 0 else None
    if mode == PRECISION_DECIMAL_PLACES:
        places = venue_decimal(precision, field)
        return Decimal(1).scaleb(-int(places))
    return None  # significant digits: no fixed step; the venue library rounds on its own


def _expiry_date(value: object) -> date | None:
    if value is None:
        return None
    millis = venue_decimal(value, "market.expiry")
    return datetime.fromtimestamp(int(millis) / 1000, tz=UTC).date()


class AmountUnit(StrEnum):
    """What a venue's order and book amounts count for one market."""

    CONTRACTS = "contracts"
    """Contracts of ``contract_size`` (ccxt's unified convention; OKX swaps and futures)."""
    BASE = "base"
    """The base currency (spot; Deribit's linear futures and options)."""
    QUOTE = "quote"
    """The quote currency, in whole contracts of ``contract_size`` (Deribit's inverse futures: USD)."""


@dataclass(frozen=True, slots=True)
class VenueMarket:
    """One market a venue lists, in Decimal; built from the unified structure by ``from_ccxt``.

    ``contract_size`` is one contract in ``contract_ccy``: the base currency for a linear
    contract (1 for spot), the quote currency for an inverse one (10 USD on Deribit).
    ``amount_unit`` says what the venue's amounts count (``from_ccxt`` assumes ccxt's
    convention; the venue dialect states the venue's own). Prices are per unit of the base
    currency. ``taker_fee`` is a fraction of traded value (0.0005 = 5 bps), when the venue says.
    """

    symbol: str
    id: str
    type: str
    base: str
    quote: str
    settle: str | None
    inverse: bool
    contract_size: Decimal
    expiry: date | None
    strike: Decimal | None
    option_type: OptionType | None
    active: bool
    amount_step: Decimal | None
    price_step: Decimal | None
    min_amount: Decimal | None
    taker_fee: Decimal | None
    amount_unit: AmountUnit = AmountUnit.CONTRACTS
    premium_ccy: str | None = None
    """An option whose premium the venue quotes in a coin (``BTC``), not in ``quote``: the
    venue dialect states it; the premium is converted at the index (``domain.premium``)."""

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any], precision_mode: int) -> VenueMarket | None:
        """The market, or None for a structure too incomplete to trade (no base, quote or type)."""
        symbol, base, quote = market.get("symbol"), market.get("base"), market.get("quote")
        kind = market.get("type")
        if not all(isinstance(x, str) and x for x in (symbol, base, quote, kind)):
            return None
        assert isinstance(symbol, str) and isinstance(base, str) and isinstance(quote, str)
        assert isinstance(kind, str)
        settle = market.get("settle") if isinstance(market.get("settle"), str) else None
        contract = kind != "spot"
        inverse_flag = market.get("inverse")
        inverse = bool(inverse_flag) if inverse_flag is not None else (
            contract and settle is not None and settle.upper() == base.upper()
        )
        size = _opt_decimal(market.get("contractSize"), f"{symbol}.contractSize") if contract else None
        raw_type = market.get("optionType")
        option_type = None
        if isinstance(raw_type, str) and raw_type.lower() in ("put", "call"):
            option_type = OptionType(raw_type.lower())
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount_limits = limits.get("amount") or {}
        active = market.get("active")
        return cls(
            symbol=symbol,
            id=str(market.get("id", symbol)),
            type=kind,
            base=base.upper(),
            quote=quote.upper(),
            settle=None if settle is None else settle.upper(),
            inverse=inverse,
            contract_size=size if size is not None and size > 0 else Decimal(1),
            expiry=_expiry_date(market.get("expiry")),
            strike=_opt_decimal(market.get("strike"), f"{symbol}.strike"),
            option_type=option_type,
            active=active is not False,  # None (unknown) counts as active
            amount_step=_step(precision.get("amount"), precision_mode, f"{symbol}.precision.amount"),
            price_step=_step(precision.get("price"), precision_mode, f"{symbol}.precision.price"),
            min_amount=_opt_decimal(amount_limits.get("min"), f"{symbol}.limits.amount.min"),
            taker_fee=_opt_decimal(market.get("taker"), f"{symbol}.taker"),
            amount_unit=AmountUnit.CONTRACTS if contract else AmountUnit.BASE,
        )

    @property
    def contract(self) -> bool:
        return self.type != "spot"

    @property
    def contract_ccy(self) -> str:
        """The currency ``contract_size`` is in: the quote for an inverse contract, else the base."""
        return self.quote if self.inverse else self.base

    @property
    def amount_value(self) -> Decimal:
        """One unit of the venue's amount, in ``contract_ccy`` (BTC per unit for a linear
        market, USD per unit for an inverse one)."""
        return self.contract_size if self.amount_unit is AmountUnit.CONTRACTS else Decimal(1)

    @property
    def contract_amount(self) -> Decimal:
        """One contract, in the venue's amount units."""
        return Decimal(1) if self.amount_unit is AmountUnit.CONTRACTS else self.contract_size


@dataclass(frozen=True, slots=True)
class NoMarket:
    """Why an instrument has no tradable market at the venue (a dealer's decline reason)."""

    reason: str


def describe_instrument(instrument: Instrument) -> str:
    """``future BTC/USD expiring 2026-12-25``: for decline reasons."""
    pair = f"{instrument.underlying}/{instrument.quote_ccy}"
    if isinstance(instrument, Option):
        return (f"option {pair} {instrument.option_type.value} {decimal_str(instrument.strike)} "
                f"expiring {instrument.expiry.isoformat()}")
    if isinstance(instrument, Future):
        return f"future {pair} expiring {instrument.expiry.isoformat()}"
    if isinstance(instrument, HashpriceNdf):
        return f"hashprice NDF {pair} from {instrument.start.isoformat()} for {instrument.days} days"
    return f"{instrument.kind.value} {pair}"


def _same_structure(instrument: Instrument, market: VenueMarket) -> bool:
    if isinstance(instrument, Future | Option) and market.expiry != instrument.expiry:
        return False
    if isinstance(instrument, Option):
        return (market.strike is not None and market.strike == instrument.strike
                and market.option_type is instrument.option_type)
    return True


def match_market(
    instrument: Instrument,
    markets: Iterable[VenueMarket],
    *,
    currency_aliases: Mapping[str, Sequence[str]] | None = None,
    allow_inverse: bool = False,
) -> VenueMarket | NoMarket:
    """The venue market for ``instrument``, matched by structure (see the module docstring).

    ``currency_aliases`` lets a quote currency match others the desk treats as the same
    (``{"USD": ["USDT", "USDC"]}``); a linear market is preferred to an inverse one, then the
    instrument's own currency, then the aliases in the order given, then the symbol, so the
    choice is deterministic. ``allow_inverse``: the caller sizes inverse futures and
    perpetuals (``walk_inverse``); inverse options are declined either way.
    """
    what = describe_instrument(instrument)
    kind = _KIND_TO_TYPE.get(type(instrument))
    if kind is None:
        return NoMarket(f"{what}: not an exchange-listed instrument")
    underlying = instrument.underlying.upper()
    wanted = instrument.quote_ccy.upper()
    aliases = [a.upper() for a in (currency_aliases or {}).get(wanted, ())]
    quotes = [wanted, *(a for a in aliases if a != wanted)]
    candidates = [
        m for m in markets
        if m.type == kind and m.base == underlying and m.quote in quotes and _same_structure(instrument, m)
    ]
    if not candidates:
        return NoMarket(f"{what} is not listed")
    usable = [m for m in candidates if not m.inverse or (allow_inverse and m.type != "option")]
    if not usable:
        first = candidates[0]
        why = ("an option premium quoted in the base currency" if first.type == "option"
               else "sized in quote-currency contracts")
        return NoMarket(
            f"{what} is listed only as an inverse contract ({first.symbol}: settled in "
            f"{first.settle}, {why}): not supported"
        )
    active = [m for m in usable if m.active]
    if not active:
        return NoMarket(f"{what} is listed ({usable[0].symbol}) but not active")
    active.sort(key=lambda m: (m.inverse, quotes.index(m.quote), m.symbol))
    return active[0]


# --- orientation -------------------------------------------------------------------------------


def quote_sides(direction: Direction) -> tuple[QuoteSide, ...]:
    """The sides a quote for an RFQ in ``direction`` carries: bid for a sell, ask for a buy, both
    for two-way."""
    if direction is Direction.SELL:
        return (QuoteSide.BID,)
    if direction is Direction.BUY:
        return (QuoteSide.ASK,)
    return (QuoteSide.BID, QuoteSide.ASK)


def requester_leg_side(direction: Direction, side: QuoteSide, leg: Leg) -> Side:
    """What the requester does on ``leg`` when the package trades on quote ``side``.

    Legs are written for the RFQ's direction (for two-way: as buying the package), so the
    side they were written for keeps ``leg.side`` and the other side flips it.
    """
    written_for = QuoteSide.BID if direction is Direction.SELL else QuoteSide.ASK
    return leg.side if side is written_for else leg.side.opposite


def leg_sign(side: QuoteSide, requester_side: Side) -> int:
    """+1 when the leg adds to the package price on ``side`` (bid: legs sold; ask: legs bought)."""
    paying = Side.SELL if side is QuoteSide.BID else Side.BUY
    return 1 if requester_side is paying else -1


def package_price(side: QuoteSide, legs: Sequence[tuple[Side, Decimal, Decimal]]) -> Decimal:
    """Net package price on ``side`` from ``(requester side, ratio, leg price)`` per leg.

    The convention of ``rfq_engine.domain.rfq``: a bid is what the requester receives,
    an ask what it pays, per unit of package quantity.
    """
    with localcontext(_CTX):
        return sum((leg_sign(side, s) * ratio * price for s, ratio, price in legs), Decimal(0))


# --- order books -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookLevel:
    """One price level: ``amount`` in venue units (contracts, or base units for spot)."""

    price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Bids best (highest) first, asks best (lowest) first; ``timestamp`` as the venue stamped it."""

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    timestamp: datetime | None = None

    @classmethod
    def from_ccxt(cls, book: Mapping[str, Any]) -> OrderBook:
        """From the unified structure (``[[price, amount, ...], ...]``); levels re-sorted, empty
        ones dropped."""

        def levels(key: str) -> list[BookLevel]:
            out = []
            for i, row in enumerate(book.get(key) or []):
                price = venue_decimal(row[0], f"{key}[{i}].price")
                amount = venue_decimal(row[1], f"{key}[{i}].amount")
                if amount > 0 and price > 0:
                    out.append(BookLevel(price, amount))
            return out

        stamp = book.get("timestamp")
        ts = None
        if stamp is not None and not isinstance(stamp, bool):
            ts = datetime.fromtimestamp(int(venue_decimal(stamp, "timestamp")) / 1000, tz=UTC)
        return cls(
            bids=tuple(sorted(levels("bids"), key=lambda lv: lv.price, reverse=True)),
            asks=tuple(sorted(levels("asks"), key=lambda lv: lv.price)),
            timestamp=ts,
        )

    def mid(self) -> Decimal | None:
        """``(best bid + best ask) / 2``, or None when either side is empty."""
        if not self.bids or not self.asks:
            return None
        with localcontext(_CTX):
            return _OUT.plus((self.bids[0].price + self.asks[0].price) / 2)


@dataclass(frozen=True, slots=True)
class BookFill:
    """What taking liquidity on one side of a book would do.

    ``side`` is the order's side (buy lifts asks, sell hits bids). ``contracts`` is the
    venue amount, ``quantity`` the underlying (``contracts * contract_size``). ``vwap`` is
    the size-weighted price per unit of underlying before fees; ``price`` includes the
    taker fee on the right side (a buyer pays ``vwap * (1 + fee)``, a seller receives
    ``vwap * (1 - fee)``). ``limit_price`` is the last (worst) level reached: a limit
    order there takes exactly these levels. ``complete`` is whether the full size fills
    (for an inverse market: whether the book holds it; see ``residual``).

    ``residual`` (inverse markets): the underlying the whole contracts leave out, which is
    ``quantity`` asked minus ``quantity`` filled when the book holds it all.
    """

    side: Side
    quantity: Decimal
    contracts: Decimal
    vwap: Decimal
    price: Decimal
    limit_price: Decimal
    levels: int
    complete: bool
    residual: Decimal = Decimal(0)


def _take(levels: Sequence[BookLevel], wanted: Decimal,
          step: Decimal | None) -> list[tuple[Decimal, Decimal]]:
    """``(price, amount)`` taken best first for ``wanted`` venue units, kept a whole number of steps."""
    taken: list[tuple[Decimal, Decimal]] = []
    left = wanted
    for level in levels:
        if left <= 0:
            break
        take = min(level.amount, left)
        taken.append((level.price, take))
        left -= take
    filled = sum((amount for _, amount in taken), Decimal(0))
    excess = filled - round_to_step(filled, step)
    while excess > 0 and taken:  # give back the part of the deepest levels that breaks a step
        price, amount = taken.pop()
        if amount > excess:
            taken.append((price, amount - excess))
            excess = Decimal(0)
        else:
            excess -= amount
    return taken


def walk_market(book: OrderBook, market: VenueMarket, side: Side, quantity: Decimal,
                taker_fee: Decimal = Decimal(0)) -> BookFill | None:
    """``walk_book`` (linear) or ``walk_inverse``, with the market's units, lot and step."""
    if market.inverse:
        return walk_inverse(book, side, quantity, amount_value=market.amount_value,
                            contract_amount=market.contract_amount, amount_step=market.amount_step,
                            taker_fee=taker_fee)
    return walk_book(book, side, quantity, contract_size=market.amount_value,
                     amount_step=market.amount_step, taker_fee=taker_fee)


def walk_inverse(
    book: OrderBook,
    side: Side,
    quantity: Decimal,
    *,
    amount_value: Decimal,
    contract_amount: Decimal,
    amount_step: Decimal | None = None,
    taker_fee: Decimal = Decimal(0),
) -> BookFill | None:
    """Walk an inverse contract's ``book`` (amounts in venue units worth ``amount_value`` of
    the quote currency each) for ``quantity`` of the underlying; None when nothing can fill.

    The rounding rule: the levels' underlying (``amount * amount_value / price``) is taken
    best first until ``quantity``; its quote-currency value, in venue units, is rounded
    **down** to whole contracts (``contract_amount``, or the venue's larger ``amount_step``),
    so the order never exceeds the size asked. Those contracts are then taken from the same
    levels. ``quantity`` filled is their underlying, ``sum(amount * amount_value / price)``;
    ``vwap`` is the size-weighted price per unit of underlying (the contracts' value over
    their underlying: the conversion price of the fill); ``residual`` what the rounding left.
    """
    if quantity <= 0 or amount_value <= 0 or contract_amount <= 0 or taker_fee < 0 or taker_fee >= 1:
        raise ValueError("walk_inverse needs a positive quantity, amount value and contract, a fee in [0, 1)")
    step = max(contract_amount, amount_step or Decimal(0))
    levels = book.asks if side is Side.BUY else book.bids
    with localcontext(_CTX):
        left, value = quantity, Decimal(0)
        for level in levels:
            if left <= 0:
                break
            take = min(level.amount * amount_value / level.price, left)
            value += take * level.price
            left -= take
        held = quantity - max(left, Decimal(0))
        taken = _take(levels, round_to_step(value / amount_value, step), step)
        contracts = sum((amount for _, amount in taken), Decimal(0))
        if contracts <= 0:
            return None
        underlying = sum((amount * amount_value / price for price, amount in taken), Decimal(0))
        vwap = contracts * amount_value / underlying
        price = vwap * (1 + taker_fee) if side is Side.BUY else vwap * (1 - taker_fee)
        return BookFill(
            side=side,
            quantity=_OUT.plus(underlying),
            contracts=contracts,
            vwap=_OUT.plus(vwap),
            price=_OUT.plus(price),
            limit_price=taken[-1][0],
            levels=len(taken),
            complete=left <= 0,
            residual=_OUT.plus(held - underlying),
        )


def walk_book(
    book: OrderBook,
    side: Side,
    quantity: Decimal,
    *,
    contract_size: Decimal = Decimal(1),
    amount_step: Decimal | None = None,
    taker_fee: Decimal = Decimal(0),
) -> BookFill | None:
    """Walk ``book`` to ``side`` ``quantity`` of the underlying; None when nothing can fill.

    The size is converted to contracts (``quantity / contract_size``) and rounded down to
    the venue's ``amount_step``; what the book holds at each level is taken best first,
    and the total is kept a whole number of steps.
    """
    if quantity <= 0 or contract_size <= 0 or taker_fee < 0 or taker_fee >= 1:
        raise ValueError("walk_book needs a positive quantity and contract size and a fee in [0, 1)")
    with localcontext(_CTX):
        wanted = round_to_step(quantity / contract_size, amount_step)
        if wanted <= 0:
            return None
        taken = _take(book.asks if side is Side.BUY else book.bids, wanted, amount_step)
        contracts = sum((amount for _, amount in taken), Decimal(0))
        if contracts <= 0:
            return None
        vwap = sum((price * amount for price, amount in taken), Decimal(0)) / contracts
        price = vwap * (1 + taker_fee) if side is Side.BUY else vwap * (1 - taker_fee)
        return BookFill(
            side=side,
            quantity=contracts * contract_size,
            contracts=contracts,
            vwap=_OUT.plus(vwap),
            price=_OUT.plus(price),
            limit_price=taken[-1][0],
            levels=len(taken),
            complete=contracts == wanted and wanted * contract_size == quantity,
        )
