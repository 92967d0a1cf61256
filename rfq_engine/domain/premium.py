"""Option premiums quoted in a coin, converted at the venue's index: one audited rule.

Deribit's BTC options and OKX's coin-margined options quote their premium in BTC per BTC of
underlying; OTC desks quote USD per BTC. To rank them together, to judge them against the
mandate's price tolerance and to measure TCA, a coin premium is converted once, here, and
the conversion travels with the quote into ``quote.received`` and the decision record.

The split of duties:
- the venue adapter reports what the venue said (``CoinPremium``): the premium per unit of
  underlying in its coin (before fees), the fee per unit in the same coin (the venue's
  published schedule, ``option_fee``), and the venue's index price with its currency, its
  timestamp and where it was read (``IndexPrice``);
- ``convert_premium`` (pure) makes the price the engine uses:
  - all-in in coin: the requester pays ``premium + fee`` on an ask and receives
    ``premium - fee`` on a bid (the same orientation as a book walk's taker fee);
  - in the index currency: ``all_in * index price``, rounded against the requester to
    ``PRICE_QUANTUM`` (a bid down, an ask up).

Worked example: a 50,000 put quoted 0.0150 BTC (ask) with the index at 60,000 USD and
Deribit's fee ``min(0.0003, 0.125 * 0.0150) = 0.0003`` BTC: all-in 0.0153 BTC, 918 USD per
BTC of notional; without the fee, 0.0150 * 60,000 = 900 USD.

``PremiumConversion.to_dict`` is the record stored in ``quote.received`` (key
``conversion``); it carries its own ``version`` so a later rule can be told apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import (
    ENTRY_BOUNDS,
    check_fields,
    decimal_str,
    format_ts,
    parse_decimal,
    parse_positive,
    parse_ts,
    require,
)

__all__ = [
    "CONVERSION_VERSION",
    "INDEX_MAX_AGE",
    "PRICE_QUANTUM",
    "CoinPremium",
    "IndexPrice",
    "PremiumConversion",
    "convert_premium",
    "option_fee",
    "parse_premium",
]

CONVERSION_VERSION = 1
"""Version of the conversion rule and of its stored record."""
PRICE_QUANTUM = Decimal("1e-8")
"""A converted price is rounded to this, against the requester."""
INDEX_MAX_AGE = timedelta(seconds=30)
"""An index older than this when the quote arrives is refused (a stale conversion)."""
INDEX_MAX_AHEAD = timedelta(seconds=5)
"""Clock skew allowed for an index stamped after the quote's arrival."""
_RULE = "index currency per unit = (premium +/- fee) * index price, rounded against the requester"


@dataclass(frozen=True, slots=True)
class IndexPrice:
    """The venue's index (or underlying) price a coin premium is converted at."""

    price: Decimal
    currency: str
    """What the index is quoted in (``USD``): the converted price's currency."""
    at: datetime
    """The venue's own timestamp of the price (UTC)."""
    source: str
    """Where it was read: ``deribit public/ticker BTC-27MAR26-50000-P index_price``."""

    def to_dict(self) -> dict[str, Any]:
        return {"price": decimal_str(self.price), "currency": self.currency,
                "at": format_ts(self.at), "source": self.source}


@dataclass(frozen=True, slots=True)
class CoinPremium:
    """What the venue said, per unit of the underlying, in ``currency`` (the coin)."""

    currency: str
    bid: Decimal | None
    ask: Decimal | None
    index: IndexPrice
    fee_bid: Decimal = Decimal(0)
    """The venue's fee per unit on the bid, in ``currency`` (deducted from the bid)."""
    fee_ask: Decimal = Decimal(0)
    """The venue's fee per unit on the ask, in ``currency`` (added to the ask)."""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"currency": self.currency, "index": self.index.to_dict()}
        if self.bid is not None:
            body["bid"] = decimal_str(self.bid)
            body["fee_bid"] = decimal_str(self.fee_bid)
        if self.ask is not None:
            body["ask"] = decimal_str(self.ask)
            body["fee_ask"] = decimal_str(self.fee_ask)
        return body


@dataclass(frozen=True, slots=True)
class PremiumConversion:
    """A coin premium and the price the engine ranks, checks and measures it at."""

    premium: CoinPremium
    all_in_bid: Decimal | None
    all_in_ask: Decimal | None
    bid: Decimal | None
    """In ``premium.index.currency`` per unit of underlying."""
    ask: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        """The record stored with the quote (``quote.received``'s ``conversion``)."""
        record: dict[str, Any] = {"version": CONVERSION_VERSION, "rule": _RULE,
                                  "premium_currency": self.premium.currency,
                                  "price_currency": self.premium.index.currency,
                                  "index": self.premium.index.to_dict()}
        for side, native, fee, all_in, price in (
            ("bid", self.premium.bid, self.premium.fee_bid, self.all_in_bid, self.bid),
            ("ask", self.premium.ask, self.premium.fee_ask, self.all_in_ask, self.ask),
        ):
            if native is not None and all_in is not None and price is not None:
                record[side] = {"premium": decimal_str(native), "fee": decimal_str(fee),
                                "all_in": decimal_str(all_in), "price": decimal_str(price)}
        return record


def option_fee(premium: Decimal, *, underlying_rate: Decimal, cap_rate: Decimal,
               underlying: Decimal = Decimal(1), underlying_price: Decimal = Decimal(1)) -> Decimal:
    """A fee schedule of the form "``underlying_rate`` of the underlying, capped at ``cap_rate``
    of the option price", per ``underlying`` units, in the premium's currency.

    ``underlying_price`` is one unit of the underlying in that currency: 1 for a premium in the
    underlying's own coin (Deribit's BTC options: 0.0003 BTC per BTC contract, at most 12.5% of
    the premium); the index price for a premium in USDC or USDT (Bybit's options:
    ``min(0.0003 * index, 0.07 * premium)`` per BTC)."""
    if premium < 0 or underlying_rate < 0 or cap_rate < 0 or underlying <= 0 or underlying_price <= 0:
        raise ValueError("option_fee needs a non-negative premium and rates, a positive size and price")
    with localcontext() as ctx:
        ctx.prec = 40
        return min(underlying_rate * underlying_price * underlying, cap_rate * premium * underlying)


def _rounded(value: Decimal, up: bool) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(PRICE_QUANTUM, rounding=ROUND_CEILING if up else ROUND_FLOOR).normalize()


def convert_premium(premium: CoinPremium) -> PremiumConversion:
    """The conversion of ``premium`` (see the module docstring): pure, exact before rounding."""
    rate = premium.index.price
    with localcontext() as ctx:
        ctx.prec = 60
        all_in_bid = None if premium.bid is None else premium.bid - premium.fee_bid
        all_in_ask = None if premium.ask is None else premium.ask + premium.fee_ask
        bid = None if all_in_bid is None else _rounded(all_in_bid * rate, up=False)
        ask = None if all_in_ask is None else _rounded(all_in_ask * rate, up=True)
    return PremiumConversion(premium, all_in_bid, all_in_ask, bid, ask)


_PREMIUM_FIELDS = frozenset({"currency", "bid", "ask", "fee_bid", "fee_ask", "index"})
_INDEX_FIELDS = frozenset({"price", "currency", "at", "source"})


def _code(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.isalnum() or not 2 <= len(value) <= 10:
        raise ValidationError(field, "must be a currency code of 2-10 letters or digits")
    return value.upper()


def _fee(data: Mapping[str, Any], key: str, path: str) -> Decimal:
    value = parse_decimal(data.get(key, "0"), f"{path}.{key}", ENTRY_BOUNDS)
    if value < 0:
        raise ValidationError(f"{path}.{key}", "a fee is not negative")
    return value


def parse_premium(data: object, received_at: datetime, path: str = "body.premium") -> PremiumConversion:
    """A quote body's ``premium`` object, checked and converted; raises ValidationError.

    Strict: unknown keys, a missing side, a non-positive index, an index older than
    ``INDEX_MAX_AGE`` (or stamped after ``received_at`` by more than ``INDEX_MAX_AHEAD``),
    and an index in the premium's own coin are refused.
    """
    if not isinstance(data, Mapping):
        raise ValidationError(path, "must be an object")
    check_fields(data, _PREMIUM_FIELDS, path)
    currency = _code(require(data, "currency", path), f"{path}.currency")
    raw_index = require(data, "index", path)
    if not isinstance(raw_index, Mapping):
        raise ValidationError(f"{path}.index", "must be an object")
    check_fields(raw_index, _INDEX_FIELDS, f"{path}.index")
    source = require(raw_index, "source", f"{path}.index")
    if not isinstance(source, str) or not source or len(source) > 200:
        raise ValidationError(f"{path}.index.source", "must be a non-empty string (max 200 chars)")
    at = parse_ts(require(raw_index, "at", f"{path}.index"), f"{path}.index.at")
    if at < received_at - INDEX_MAX_AGE or at > received_at + INDEX_MAX_AHEAD:
        raise ValidationError(f"{path}.index.at", (
            f"the index is stamped {format_ts(at)}, the quote arrived {format_ts(received_at)}: "
            f"older than {INDEX_MAX_AGE.total_seconds():g} s or in the future, not converted"))
    index = IndexPrice(
        price=parse_positive(require(raw_index, "price", f"{path}.index"), f"{path}.index.price",
                             ENTRY_BOUNDS),
        currency=_code(require(raw_index, "currency", f"{path}.index"), f"{path}.index.currency"),
        at=at, source=source)
    if index.currency == currency:
        raise ValidationError(f"{path}.index.currency", f"an index in {currency} converts nothing")
    sides: dict[str, Decimal | None] = {}
    for side in ("bid", "ask"):
        value = data.get(side)
        sides[side] = None if value is None else parse_decimal(value, f"{path}.{side}", ENTRY_BOUNDS)
    if sides["bid"] is None and sides["ask"] is None:
        raise ValidationError(path, "a coin premium needs a bid, an ask or both")
    fee_bid, fee_ask = _fee(data, "fee_bid", path), _fee(data, "fee_ask", path)
    premium = CoinPremium(currency, sides["bid"], sides["ask"], index, fee_bid, fee_ask)
    return convert_premium(premium)
