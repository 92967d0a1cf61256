"""Instruments an RFQ leg can name, exactly as the dealer protocol carries them.

Each is a small frozen value; ``instrument_from_dict`` validates the wire form and
``instrument_to_dict`` writes it back, so ``from(to(x)) == x``. With ``strict`` (a request
from outside: the API) a key the kind does not have is an error and the strike is held to
the entry bounds of decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import (
    ENTRY_BOUNDS,
    STORED_BOUNDS,
    check_fields,
    decimal_str,
    parse_date,
    parse_positive,
    require,
)

__all__ = [
    "Future",
    "HashpriceNdf",
    "Instrument",
    "InstrumentKind",
    "Option",
    "OptionType",
    "Perpetual",
    "Spot",
    "instrument_from_dict",
    "instrument_key",
    "instrument_to_dict",
    "keyed_by_instrument",
    "last_date",
    "parse_instrument_key",
]


class InstrumentKind(StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"
    HASHPRICE_NDF = "hashprice_ndf"


class OptionType(StrEnum):
    PUT = "put"
    CALL = "call"


@dataclass(frozen=True, slots=True)
class Spot:
    underlying: str
    quote_ccy: str
    kind: ClassVar[InstrumentKind] = InstrumentKind.SPOT


@dataclass(frozen=True, slots=True)
class Perpetual:
    underlying: str
    quote_ccy: str
    kind: ClassVar[InstrumentKind] = InstrumentKind.PERPETUAL


@dataclass(frozen=True, slots=True)
class Future:
    underlying: str
    quote_ccy: str
    expiry: date
    kind: ClassVar[InstrumentKind] = InstrumentKind.FUTURE


@dataclass(frozen=True, slots=True)
class Option:
    underlying: str
    quote_ccy: str
    expiry: date
    strike: Decimal
    option_type: OptionType
    kind: ClassVar[InstrumentKind] = InstrumentKind.OPTION


@dataclass(frozen=True, slots=True)
class HashpriceNdf:
    """One contract = 1 PH/s for 1 day, cash-settled against the average hashprice index."""

    underlying: str
    quote_ccy: str
    start: date
    days: int
    kind: ClassVar[InstrumentKind] = InstrumentKind.HASHPRICE_NDF

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)


Instrument = Spot | Perpetual | Future | Option | HashpriceNdf


def last_date(instrument: Instrument) -> date | None:
    """The date an instrument stops existing (expiry, or the NDF's end); None for spot/perpetual."""
    if isinstance(instrument, Future | Option):
        return instrument.expiry
    if isinstance(instrument, HashpriceNdf):
        return instrument.end
    return None


def _code(data: Mapping[str, Any], key: str, prefix: str) -> str:
    value = require(data, key, prefix)
    field = f"{prefix}.{key}" if prefix else key
    if not isinstance(value, str) or not value.strip() or len(value) > 16:
        raise ValidationError(field, f"must be a currency/asset code like 'BTC', got {value!r}")
    return value.strip().upper()


_COMMON = ("kind", "underlying", "quote_ccy")
FIELDS: dict[InstrumentKind, frozenset[str]] = {
    InstrumentKind.SPOT: frozenset(_COMMON),
    InstrumentKind.PERPETUAL: frozenset(_COMMON),
    InstrumentKind.FUTURE: frozenset((*_COMMON, "expiry")),
    InstrumentKind.OPTION: frozenset((*_COMMON, "expiry", "strike", "option_type")),
    InstrumentKind.HASHPRICE_NDF: frozenset((*_COMMON, "start", "days")),
}
"""The keys of each kind's wire form."""


def instrument_from_dict(data: object, prefix: str = "instrument", *,
                         strict: bool = False) -> Instrument:
    if not isinstance(data, Mapping):
        raise ValidationError(prefix, f"must be an object, got {type(data).__name__}")
    raw_kind = require(data, "kind", prefix)
    try:
        kind = InstrumentKind(raw_kind)
    except (ValueError, TypeError):
        allowed = ", ".join(k.value for k in InstrumentKind)
        raise ValidationError(f"{prefix}.kind", f"unknown kind {str(raw_kind)[:64]!r}; one of "
                              f"{allowed}") from None
    if strict:
        check_fields(data, FIELDS[kind], prefix)
    underlying = _code(data, "underlying", prefix)
    quote_ccy = _code(data, "quote_ccy", prefix)
    if kind is InstrumentKind.SPOT:
        return Spot(underlying, quote_ccy)
    if kind is InstrumentKind.PERPETUAL:
        return Perpetual(underlying, quote_ccy)
    if kind is InstrumentKind.HASHPRICE_NDF:
        start = parse_date(require(data, "start", prefix), f"{prefix}.start")
        days = require(data, "days", prefix)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
            raise ValidationError(f"{prefix}.days", f"must be a whole number of days 1..3660, got {days!r}")
        return HashpriceNdf(underlying, quote_ccy, start, days)
    expiry = parse_date(require(data, "expiry", prefix), f"{prefix}.expiry")
    if kind is InstrumentKind.FUTURE:
        return Future(underlying, quote_ccy, expiry)
    strike = parse_positive(require(data, "strike", prefix), f"{prefix}.strike",
                            ENTRY_BOUNDS if strict else STORED_BOUNDS)
    raw_type = require(data, "option_type", prefix)
    try:
        option_type = OptionType(raw_type)
    except (ValueError, TypeError):
        raise ValidationError(f"{prefix}.option_type", f"must be 'put' or 'call', got {raw_type!r}") from None
    return Option(underlying, quote_ccy, expiry, strike, option_type)


def instrument_to_dict(instrument: Instrument) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": instrument.kind.value,
        "underlying": instrument.underlying,
        "quote_ccy": instrument.quote_ccy,
    }
    if isinstance(instrument, Future | Option):
        out["expiry"] = instrument.expiry.isoformat()
    if isinstance(instrument, Option):
        out["strike"] = decimal_str(instrument.strike)
        out["option_type"] = instrument.option_type.value
    if isinstance(instrument, HashpriceNdf):
        out["start"] = instrument.start.isoformat()
        out["days"] = instrument.days
    return out


_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "spot": (*_COMMON,),
    "perpetual": (*_COMMON,),
    "future": (*_COMMON, "expiry"),
    "option": (*_COMMON, "expiry", "strike", "option_type"),
    "hashprice_ndf": (*_COMMON, "start", "days"),
}
"""The fields of each kind's key, in their order in the key."""


def instrument_key(instrument: Instrument) -> str:
    """The canonical key of an instrument, its fields joined by ``:``.

    ``spot:BTC:USD``, ``perpetual:BTC:USD``, ``future:BTC:USD:2027-02-26``,
    ``option:BTC:USD:2027-02-26:35000:put``, ``hashprice_ndf:HASHPRICE:USD:2026-12-01:30``.
    What a dealer's configuration keys its instrument names by (a REST desk's
    ``instrument_overrides``, a FIX desk's ``symbols``).
    """
    parts = [instrument.kind.value, instrument.underlying, instrument.quote_ccy]
    if isinstance(instrument, Future | Option):
        parts.append(instrument.expiry.isoformat())
    if isinstance(instrument, Option):
        parts += [decimal_str(instrument.strike), instrument.option_type.value]
    if isinstance(instrument, HashpriceNdf):
        parts += [instrument.start.isoformat(), str(instrument.days)]
    return ":".join(parts)


def parse_instrument_key(key: str) -> Instrument:
    """The instrument a key names (``instrument_key``'s inverse, codes in any case);
    raises ``ValidationError`` naming the key for a bad one."""
    parts = key.split(":")
    fields = _KEY_FIELDS.get(parts[0])
    if fields is None:
        raise ValidationError(key, f"unknown instrument kind {parts[0]!r}; one of {', '.join(_KEY_FIELDS)}")
    if len(parts) != len(fields):
        raise ValidationError(key, f"{parts[0]} keys are {':'.join(fields)}")
    data: dict[str, object] = dict(zip(fields, parts, strict=True))
    if "days" in data:
        days = str(data["days"])
        if not days.isdigit():
            raise ValidationError(key, f"days must be a whole number, got {days!r}")
        data["days"] = int(days)
    try:
        return instrument_from_dict(data, "")
    except ValidationError as exc:
        raise ValidationError(key, str(exc).lstrip(". ")) from None


T = TypeVar("T")


def keyed_by_instrument(entries: Mapping[str, T], problem: Callable[[T], str | None]) -> dict[str, T]:
    """``entries`` (a config's table keyed by instrument keys) re-keyed, in order, by each
    key's canonical ``instrument_key``, so any spelling of an instrument finds its entry.

    ``ValueError`` naming the key for a value ``problem`` finds fault with (its answer is
    the message), for a bad key (``ValidationError``), or for a key naming the same
    instrument as an earlier one.
    """
    out: dict[str, T] = {}
    for key, value in entries.items():
        why = problem(value)
        if why:
            raise ValueError(f"{key}: {why}")
        canonical = instrument_key(parse_instrument_key(key))
        if canonical in out:
            raise ValueError(f"{key}: names the same instrument as another key")
        out[canonical] = value
    return out
