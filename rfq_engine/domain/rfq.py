"""The request: legs, package, direction, size, window, dealers, mandate, requester.

Orientation, fixed once here so pricing, ranking and dealers agree:
- a leg's ``side`` is the requester's side when the package trades in the RFQ's
  direction (PROTOCOL.md). For ``two_way`` the legs are written as *buying* the
  package, and the requester's real side (``private_side``) is kept in the engine.
- ``bid`` is what the dealer pays when the requester sells the package, ``ask`` what
  the requester pays when buying; both per unit of package quantity, net over the legs.
- so ``award_side`` is BID for a sell, ASK for a buy, and for two-way follows the
  private side; the package's net value per unit is ``sum(sign * ratio * leg_price)``
  with ``sign = +1`` for the legs the requester pays for (see ``leg_signs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.ids import DealerId
from rfq_engine.domain.instruments import (
    HashpriceNdf,
    Instrument,
    instrument_from_dict,
    instrument_to_dict,
    last_date,
)
from rfq_engine.domain.values import (
    ENTRY_BOUNDS,
    STORED_BOUNDS,
    DecimalBounds,
    check_fields,
    decimal_str,
    parse_decimal,
    parse_positive,
    require,
)

__all__ = [
    "MAX_LEGS",
    "NDF_UNIT",
    "ClosePolicy",
    "Direction",
    "HedgeContext",
    "Leg",
    "Package",
    "QuoteSide",
    "RfqSpec",
    "Side",
]

MAX_LEGS = 4
NDF_UNIT = "PH/s/day"
MIN_WINDOW_MS = 50
MAX_WINDOW_MS = 600_000
MAX_KEY = 200
"""Longest ``client_rfq_id`` (the API's Idempotency-Key)."""
MAX_TEXT = 64
"""Longest ``quantity_unit``, ``mandate``, ``settlement``, hedge ``period`` and tag (strict)."""
MAX_TAGS = 16

SPEC_FIELDS = frozenset({
    "legs", "direction", "private_side", "quantity", "quantity_unit", "dealers", "requester",
    "mandate", "window_ms", "allow_partial", "client_rfq_id", "limit_price", "settlement",
    "hedge", "tags", "require_approval", "close_policy"})
"""Every key of an RFQ's JSON form (``RfqSpec.to_dict``)."""
LEG_FIELDS = frozenset({"instrument", "side", "ratio"})
HEDGE_FIELDS = frozenset({"forecast_quantity", "hedged_quantity", "period"})


def _bounds(strict: bool) -> DecimalBounds:
    return ENTRY_BOUNDS if strict else STORED_BOUNDS


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Direction(StrEnum):
    BUY = "buy"
    SELL = "sell"
    TWO_WAY = "two_way"


class QuoteSide(StrEnum):
    BID = "bid"
    ASK = "ask"


class ClosePolicy(StrEnum):
    """When the response window closes (carried to dealers in ``rfq.new``).

    ``deadline``: at the deadline, always; a dealer may replace its quote until then.
    ``all_answered``: at the deadline, or as soon as every dealer asked has answered
    (quoted or declined), whichever is first; a replacement counts only if it arrives
    before that close.
    """

    DEADLINE = "deadline"
    ALL_ANSWERED = "all_answered"


_BUY = Direction.BUY
_SELL = Direction.SELL


@dataclass(frozen=True, slots=True)
class Leg:
    instrument: Instrument
    side: Side
    ratio: Decimal = Decimal(1)

    @classmethod
    def from_dict(cls, data: object, prefix: str, *, strict: bool = False) -> Leg:
        if not isinstance(data, Mapping):
            raise ValidationError(prefix, f"must be an object, got {type(data).__name__}")
        if strict:
            check_fields(data, LEG_FIELDS, prefix)
        instrument = instrument_from_dict(require(data, "instrument", prefix), f"{prefix}.instrument",
                                          strict=strict)
        raw_side = require(data, "side", prefix)
        try:
            side = Side(raw_side)
        except ValueError:
            raise ValidationError(f"{prefix}.side",
                                  f"must be 'buy' or 'sell', got {str(raw_side)[:64]!r}") from None
        ratio = parse_positive(data.get("ratio", "1"), f"{prefix}.ratio", _bounds(strict))
        return cls(instrument, side, ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instrument": instrument_to_dict(self.instrument),
            "side": self.side.value,
            "ratio": decimal_str(self.ratio),
        }


@dataclass(frozen=True, slots=True)
class Package:
    """One or more legs traded together at one net price."""

    legs: tuple[Leg, ...]

    @property
    def is_multi_leg(self) -> bool:
        return len(self.legs) > 1

    @property
    def underlyings(self) -> frozenset[str]:
        return frozenset(leg.instrument.underlying for leg in self.legs)

    @property
    def last_date(self) -> date | None:
        dates = [d for d in (last_date(leg.instrument) for leg in self.legs) if d is not None]
        return max(dates) if dates else None

    def leg_signs(self, direction: Direction) -> tuple[int, ...]:
        """+1 for legs whose price the package's quoted price adds, -1 for those it subtracts.

        For a sell the package price is what the requester receives (legs sold add);
        for a buy or two-way it is what the requester pays (legs bought add).
        """
        paying = Side.SELL if direction is Direction.SELL else Side.BUY
        return tuple(1 if leg.side is paying else -1 for leg in self.legs)


@dataclass(frozen=True, slots=True)
class HedgeContext:
    """Supplied with program hedges: the forecast production of the period and what is already hedged."""

    forecast_quantity: Decimal
    hedged_quantity: Decimal = Decimal(0)
    period: str | None = None

    @classmethod
    def from_dict(cls, data: object, prefix: str = "hedge", *, strict: bool = False) -> HedgeContext:
        if not isinstance(data, Mapping):
            raise ValidationError(prefix, "must be an object")
        if strict:
            check_fields(data, HEDGE_FIELDS, prefix)
        bounds = _bounds(strict)
        hedged = parse_decimal(data.get("hedged_quantity", "0"), f"{prefix}.hedged_quantity", bounds)
        if hedged < 0:
            raise ValidationError(f"{prefix}.hedged_quantity", "must not be negative")
        period = data.get("period")
        if period is not None and (not isinstance(period, str)
                                   or (strict and len(period) > MAX_TEXT)):
            raise ValidationError(f"{prefix}.period", "must be a string like '2026-12'")
        return cls(
            parse_positive(require(data, "forecast_quantity", prefix), f"{prefix}.forecast_quantity",
                           bounds),
            hedged,
            period,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "forecast_quantity": decimal_str(self.forecast_quantity),
            "hedged_quantity": decimal_str(self.hedged_quantity),
            "period": self.period,
        }


def _str_field(data: Mapping[str, Any], key: str, default: str | None = None,
               max_len: int | None = None) -> str:
    value = data.get(key)
    if value is None:
        value = default
    if value is None:
        raise ValidationError(key, "is required")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(key, f"must be a non-empty string, got {str(value)[:64]!r}")
    if max_len is not None and len(value) > max_len:
        raise ValidationError(key, f"at most {max_len} characters, got {len(value)}")
    return value.strip()


@dataclass(frozen=True, slots=True)
class RfqSpec:
    """What a requester asks for. Immutable; the engine adds ids, times and state around it."""

    package: Package
    direction: Direction
    quantity: Decimal
    quantity_unit: str
    dealers: tuple[DealerId, ...]
    requester: str
    mandate: str
    window_ms: int
    allow_partial: bool = False
    client_rfq_id: str | None = None
    private_side: Side | None = None
    limit_price: Decimal | None = None
    settlement: str = "cash"
    hedge: HedgeContext | None = None
    tags: tuple[str, ...] = field(default=())
    require_approval: bool = False
    """A second person must approve whatever the notional (e.g. a hedge program's RFQs)."""
    close_policy: ClosePolicy | None = None
    """When the response window closes; None takes the mandate's ``close_policy``."""

    @property
    def legs(self) -> tuple[Leg, ...]:
        return self.package.legs

    @property
    def requester_side(self) -> Side:
        """The side the requester really trades the package on."""
        # Asked several times per quote while ranking: the two plain directions are
        # answered without the by-value enum lookup ``Side(direction.value)``.
        direction = self.direction
        if direction is _SELL:
            return Side.SELL
        if direction is _BUY:
            return Side.BUY
        if direction is Direction.TWO_WAY:
            assert self.private_side is not None
            return self.private_side
        return Side(direction.value)

    @property
    def award_side(self) -> QuoteSide:
        direction = self.direction
        if direction is _SELL:
            return QuoteSide.BID
        if direction is _BUY:
            return QuoteSide.ASK
        return QuoteSide.BID if self.requester_side is Side.SELL else QuoteSide.ASK

    @classmethod
    def from_dict(cls, data: object, *, default_window_ms: int = 5000,
                  strict: bool = False) -> RfqSpec:
        """Validate a request (JSON-decoded). Every error names its field.

        ``strict`` is for a request from outside (the API): an unknown key anywhere is an
        error, decimals are held to ``ENTRY_BOUNDS`` and free-text fields to ``MAX_TEXT``
        (``client_rfq_id`` to ``MAX_KEY``). Without it (a spec the engine wrote, read back)
        the rules are those the spec was written under.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("rfq", f"must be a JSON object, got {type(data).__name__}")
        if strict:
            check_fields(data, SPEC_FIELDS)
        bounds = _bounds(strict)
        text_len = MAX_TEXT if strict else None
        raw_legs = require(data, "legs")
        if not isinstance(raw_legs, list) or not raw_legs:
            raise ValidationError("legs", "must be a non-empty list of legs")
        if len(raw_legs) > MAX_LEGS:
            raise ValidationError("legs", f"at most {MAX_LEGS} legs per package, got {len(raw_legs)}")
        legs = tuple(Leg.from_dict(leg, f"legs[{i}]", strict=strict)
                     for i, leg in enumerate(raw_legs))
        raw_direction = require(data, "direction")
        try:
            direction = Direction(raw_direction)
        except ValueError:
            raise ValidationError(
                "direction", f"must be 'buy', 'sell' or 'two_way', got {str(raw_direction)[:64]!r}"
            ) from None
        private_side: Side | None = None
        if direction is Direction.TWO_WAY:
            raw_private = data.get("private_side")
            try:
                private_side = Side(str(raw_private))
            except ValueError:
                raise ValidationError(
                    "private_side",
                    "a two_way RFQ needs the requester's real side ('buy' or 'sell'); it is never sent",
                ) from None
        elif data.get("private_side") is not None:
            raise ValidationError("private_side", "only a two_way RFQ has a private side")
        quantity = parse_positive(require(data, "quantity"), "quantity", bounds)
        is_ndf = any(isinstance(leg.instrument, HashpriceNdf) for leg in legs)
        unit = _str_field(data, "quantity_unit", NDF_UNIT if is_ndf else None, text_len)
        if is_ndf and unit != NDF_UNIT:
            raise ValidationError("quantity_unit", f"a hashprice NDF is sized in {NDF_UNIT}, got {unit!r}")
        raw_dealers = require(data, "dealers")
        if not isinstance(raw_dealers, list) or not raw_dealers:
            raise ValidationError("dealers", "must be a non-empty list of dealer ids")
        if not all(isinstance(d, str) and d.strip() for d in raw_dealers):
            raise ValidationError("dealers", "every dealer id must be a non-empty string")
        if strict and (len(raw_dealers) > 100 or any(len(d) > MAX_KEY for d in raw_dealers)):
            raise ValidationError("dealers", f"at most 100 dealer ids of at most {MAX_KEY} "
                                  "characters")
        if len(set(raw_dealers)) != len(raw_dealers):
            raise ValidationError("dealers", "lists a dealer twice")
        window_ms = data.get("window_ms", default_window_ms)
        if isinstance(window_ms, bool) or not isinstance(window_ms, int):
            raise ValidationError("window_ms", f"must be a whole number of milliseconds, got {window_ms!r}")
        if not MIN_WINDOW_MS <= window_ms <= MAX_WINDOW_MS:
            raise ValidationError(
                "window_ms", f"must be {MIN_WINDOW_MS}..{MAX_WINDOW_MS} ms, got {window_ms}"
            )
        allow_partial = data.get("allow_partial", False)
        if not isinstance(allow_partial, bool):
            raise ValidationError("allow_partial", "must be true or false")
        client_rfq_id = data.get("client_rfq_id")
        if client_rfq_id is not None and (not isinstance(client_rfq_id, str) or not client_rfq_id):
            raise ValidationError("client_rfq_id", "must be a non-empty string")
        if strict and client_rfq_id is not None and len(client_rfq_id) > MAX_KEY:
            raise ValidationError("client_rfq_id", f"at most {MAX_KEY} characters")
        limit = data.get("limit_price")
        hedge = data.get("hedge")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValidationError("tags", "must be a list of strings")
        if strict and (len(tags) > MAX_TAGS or any(len(t) > MAX_TEXT for t in tags)):
            raise ValidationError("tags", f"at most {MAX_TAGS} tags of at most {MAX_TEXT} characters")
        require_approval = data.get("require_approval", False)
        if not isinstance(require_approval, bool):
            raise ValidationError("require_approval", "must be true or false")
        settlement = _str_field(data, "settlement", "cash", text_len)
        if settlement not in {"cash", "physical"}:
            raise ValidationError("settlement", f"must be 'cash' or 'physical', got {settlement!r}")
        raw_close = data.get("close_policy")
        close_policy: ClosePolicy | None = None
        if raw_close is not None:
            try:
                close_policy = ClosePolicy(raw_close)
            except ValueError:
                raise ValidationError(
                    "close_policy",
                    f"must be 'deadline' or 'all_answered', got {str(raw_close)[:64]!r}"
                ) from None
        return cls(
            package=Package(legs),
            direction=direction,
            quantity=quantity,
            quantity_unit=unit,
            dealers=tuple(DealerId(d.strip()) for d in raw_dealers),
            requester=_str_field(data, "requester", "anonymous", text_len),
            mandate=_str_field(data, "mandate", "default", text_len),
            window_ms=window_ms,
            allow_partial=allow_partial,
            client_rfq_id=client_rfq_id,
            private_side=private_side,
            limit_price=None if limit is None else parse_decimal(limit, "limit_price", bounds),
            settlement=settlement,
            hedge=None if hedge is None else HedgeContext.from_dict(hedge, strict=strict),
            tags=tuple(tags),
            require_approval=require_approval,
            close_policy=close_policy,
        )

    def to_dict(self) -> dict[str, Any]:
        """The full spec, private fields included: for the audit store, never for dealers."""
        return {
            "legs": [leg.to_dict() for leg in self.legs],
            "direction": self.direction.value,
            "quantity": decimal_str(self.quantity),
            "quantity_unit": self.quantity_unit,
            "dealers": list(self.dealers),
            "requester": self.requester,
            "mandate": self.mandate,
            "window_ms": self.window_ms,
            "allow_partial": self.allow_partial,
            "client_rfq_id": self.client_rfq_id,
            "private_side": None if self.private_side is None else self.private_side.value,
            "limit_price": None if self.limit_price is None else decimal_str(self.limit_price),
            "settlement": self.settlement,
            "hedge": None if self.hedge is None else self.hedge.to_dict(),
            "tags": list(self.tags),
            "require_approval": self.require_approval,
            # Written only when set, so the bytes of a spec without it are those of older stores.
            **({} if self.close_policy is None else {"close_policy": self.close_policy.value}),
        }

