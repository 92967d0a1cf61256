"""The dealer protocol's messages as typed values (PROTOCOL.md, "Messages").

Outbound (engine -> dealer): ``RfqNew``, ``Award``, ``RfqClosed``.
Inbound (dealer -> engine): ``Quote``, ``Decline``, ``ExecutionConfirm``, ``ExecutionReject``,
``DealerStatus``, and ``InboundRejected`` for a message a transport could not accept
(malformed, unsigned, spoofed): the engine audits it, nothing acts on it.

``body_to_dict``/``parse_body`` convert between these and the JSON ``body`` of the envelope,
so every transport shares one parser whose errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.ids import DealerId, ExecutionId, QuoteId, RfqId
from rfq_engine.domain.premium import PremiumConversion, parse_premium
from rfq_engine.domain.rfq import Direction, Leg, QuoteSide
from rfq_engine.domain.values import (
    ENTRY_BOUNDS,
    decimal_str,
    format_ts,
    parse_decimal,
    parse_positive,
    parse_ts,
    require,
)

__all__ = [
    "Award",
    "DealerStatus",
    "Decline",
    "ExecutionConfirm",
    "ExecutionReject",
    "Inbound",
    "InboundRejected",
    "Outbound",
    "Quote",
    "RfqClosed",
    "RfqNew",
    "body_to_dict",
    "message_type",
    "parse_body",
]


@dataclass(frozen=True, slots=True)
class RfqNew:
    rfq_id: RfqId
    legs: tuple[Leg, ...]
    quantity: Decimal
    quantity_unit: str
    direction: Direction
    allow_partial: bool
    deadline: datetime
    settlement: str = "cash"
    close_policy: str = "all_answered"
    """``deadline`` or ``all_answered`` (``domain.rfq.ClosePolicy``): when the window closes."""


@dataclass(frozen=True, slots=True)
class Award:
    rfq_id: RfqId
    quote_id: QuoteId
    dealer_id: DealerId
    side: QuoteSide
    price: Decimal
    quantity: Decimal
    execution_id: ExecutionId
    confirm_by: datetime
    quantity_unit: str = ""
    """The unit ``quantity`` is in (the RFQ's ``quantity_unit``); carried on every wire."""


@dataclass(frozen=True, slots=True)
class RfqClosed:
    rfq_id: RfqId
    outcome: str
    you_won: bool


@dataclass(frozen=True, slots=True)
class Quote:
    """A dealer's firm price. ``received_at`` is stamped by the transport on arrival.

    ``conversion``: a premium the dealer quoted in a coin (``premium`` in the body, see
    ``domain.premium``); ``bid``/``ask`` are then its conversion at the venue's index, and
    the record of that conversion is kept with the quote.
    """

    rfq_id: RfqId
    dealer_id: DealerId
    quote_id: QuoteId
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal
    valid_until: datetime
    received_at: datetime
    msg_id: str
    conversion: PremiumConversion | None = None

    def price(self, side: QuoteSide) -> Decimal | None:
        return self.bid if side is QuoteSide.BID else self.ask


@dataclass(frozen=True, slots=True)
class Decline:
    rfq_id: RfqId
    dealer_id: DealerId
    reason: str
    received_at: datetime
    msg_id: str


@dataclass(frozen=True, slots=True)
class ExecutionConfirm:
    execution_id: ExecutionId
    rfq_id: RfqId
    quote_id: QuoteId
    dealer_id: DealerId
    price: Decimal
    quantity: Decimal
    dealer_trade_id: str
    received_at: datetime
    msg_id: str


@dataclass(frozen=True, slots=True)
class ExecutionReject:
    execution_id: ExecutionId
    rfq_id: RfqId
    dealer_id: DealerId
    reason: str
    received_at: datetime
    msg_id: str


@dataclass(frozen=True, slots=True)
class DealerStatus:
    dealer_id: DealerId
    online: bool
    instruments: tuple[str, ...]
    received_at: datetime
    msg_id: str


@dataclass(frozen=True, slots=True)
class InboundRejected:
    """A message a transport refused before it could be parsed into one of the above."""

    dealer_id: DealerId | None
    reason: str
    received_at: datetime
    msg_id: str | None = None
    rfq_id: RfqId | None = None
    raw: str | None = None


Outbound = RfqNew | Award | RfqClosed
Inbound = Quote | Decline | ExecutionConfirm | ExecutionReject | DealerStatus | InboundRejected

_TYPES: dict[type, str] = {
    RfqNew: "rfq.new",
    RfqClosed: "rfq.closed",
    Award: "award",
    Quote: "quote",
    Decline: "quote.decline",
    ExecutionConfirm: "execution.confirm",
    ExecutionReject: "execution.reject",
    DealerStatus: "status",
}


def message_type(message: Outbound | Inbound) -> str:
    return _TYPES[type(message)]


def body_to_dict(message: Outbound | Inbound) -> dict[str, Any]:
    """The envelope ``body`` for a message, decimals as strings (PROTOCOL.md shapes)."""
    if isinstance(message, RfqNew):
        return {
            "rfq_id": message.rfq_id,
            "legs": [leg.to_dict() for leg in message.legs],
            "quantity": decimal_str(message.quantity),
            "quantity_unit": message.quantity_unit,
            "direction": message.direction.value,
            "allow_partial": message.allow_partial,
            "deadline": format_ts(message.deadline),
            "settlement": message.settlement,
        }
    if isinstance(message, Award):
        return {
            "rfq_id": message.rfq_id,
            "quote_id": message.quote_id,
            "side": message.side.value,
            "price": decimal_str(message.price),
            "quantity": decimal_str(message.quantity),
            "execution_id": message.execution_id,
            "confirm_by": format_ts(message.confirm_by),
        }
    if isinstance(message, RfqClosed):
        return {"rfq_id": message.rfq_id, "outcome": message.outcome, "you_won": message.you_won}
    if isinstance(message, Quote):
        body: dict[str, Any] = {
            "rfq_id": message.rfq_id,
            "quote_id": message.quote_id,
            "quantity": decimal_str(message.quantity),
            "valid_until": format_ts(message.valid_until),
        }
        if message.conversion is not None:
            body["premium"] = message.conversion.premium.to_dict()
            return body
        if message.bid is not None:
            body["bid"] = decimal_str(message.bid)
        if message.ask is not None:
            body["ask"] = decimal_str(message.ask)
        return body
    if isinstance(message, Decline):
        return {"rfq_id": message.rfq_id, "reason": message.reason}
    if isinstance(message, ExecutionConfirm):
        return {
            "execution_id": message.execution_id,
            "rfq_id": message.rfq_id,
            "quote_id": message.quote_id,
            "price": decimal_str(message.price),
            "quantity": decimal_str(message.quantity),
            "dealer_trade_id": message.dealer_trade_id,
        }
    if isinstance(message, ExecutionReject):
        return {"execution_id": message.execution_id, "rfq_id": message.rfq_id, "reason": message.reason}
    if isinstance(message, DealerStatus):
        return {"online": message.online, "instruments": list(message.instruments)}
    raise TypeError(f"no wire body for {type(message).__name__}")


def _not_text(value: object, path: str, depth: int = 0) -> str | None:
    """The path of a string in ``value`` that is not Unicode text (a lone surrogate, which
    JSON can carry as ``"\\ud800"``), or None. Such a string cannot be written to the audit
    log, so it is refused at the door like any other malformed field."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if depth > 8:
        return None  # deeper than any dealer body: its fields are checked where they are read
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _not_text(k, path, depth + 1) or _not_text(v, f"{path}.{k}", depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _not_text(v, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


def _text(body: Mapping[str, Any], key: str, *, max_len: int = 200) -> str:
    value = require(body, key, "body")
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ValidationError(f"body.{key}", f"must be a non-empty string (max {max_len} chars)")
    return value


def _opt_price(body: Mapping[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    return None if value is None else parse_decimal(value, f"body.{key}", ENTRY_BOUNDS)


def parse_body(
    msg_type: str, body: object, *, dealer_id: DealerId, msg_id: str, received_at: datetime
) -> Inbound:
    """Parse an inbound ``body`` of ``msg_type``; raises ValidationError naming the field.

    Shape only: whether a quote is late, off-market or for a closed RFQ is the engine's call.
    A quote price may be zero or negative (a collar's net premium); quantities must be positive.
    A quote whose premium is in a coin carries ``premium`` (``domain.premium.parse_premium``)
    instead of ``bid``/``ask``, which are then its conversion.
    """
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object")
    bad = _not_text(body, "body") or _not_text(msg_id, "msg_id")
    if bad is not None:
        raise ValidationError(bad, "must be Unicode text (a lone surrogate is not)")
    if msg_type == "quote":
        conversion = None
        if body.get("premium") is not None:
            if body.get("bid") is not None or body.get("ask") is not None:
                raise ValidationError("body.premium", "a coin premium quote has no bid or ask of its "
                                      "own: they are its conversion")
            conversion = parse_premium(body["premium"], received_at)
        bid, ask = ((conversion.bid, conversion.ask) if conversion is not None
                    else (_opt_price(body, "bid"), _opt_price(body, "ask")))
        if bid is None and ask is None:
            raise ValidationError("body", "a quote needs a bid, an ask or both")
        return Quote(
            rfq_id=RfqId(_text(body, "rfq_id")),
            dealer_id=dealer_id,
            quote_id=QuoteId(_text(body, "quote_id")),
            bid=bid,
            ask=ask,
            quantity=parse_positive(require(body, "quantity", "body"), "body.quantity", ENTRY_BOUNDS),
            valid_until=parse_ts(require(body, "valid_until", "body"), "body.valid_until"),
            received_at=received_at,
            msg_id=msg_id,
            conversion=conversion,
        )
    if msg_type == "quote.decline":
        reason = body.get("reason", "")
        return Decline(
            RfqId(_text(body, "rfq_id")), dealer_id, str(reason)[:500], received_at, msg_id
        )
    if msg_type == "execution.confirm":
        return ExecutionConfirm(
            execution_id=ExecutionId(_text(body, "execution_id")),
            rfq_id=RfqId(_text(body, "rfq_id")),
            quote_id=QuoteId(_text(body, "quote_id")),
            dealer_id=dealer_id,
            price=parse_decimal(require(body, "price", "body"), "body.price", ENTRY_BOUNDS),
            quantity=parse_positive(require(body, "quantity", "body"), "body.quantity", ENTRY_BOUNDS),
            dealer_trade_id=_text(body, "dealer_trade_id"),
            received_at=received_at,
            msg_id=msg_id,
        )
    if msg_type == "execution.reject":
        return ExecutionReject(
            ExecutionId(_text(body, "execution_id")),
            RfqId(_text(body, "rfq_id")),
            dealer_id,
            str(body.get("reason", ""))[:500],
            received_at,
            msg_id,
        )
    if msg_type == "status":
        online = require(body, "online", "body")
        if not isinstance(online, bool):
            raise ValidationError("body.online", "must be true or false")
        instruments = body.get("instruments", [])
        if not isinstance(instruments, list) or not all(isinstance(i, str) for i in instruments):
            raise ValidationError("body.instruments", "must be a list of instrument kinds")
        return DealerStatus(dealer_id, online, tuple(instruments), received_at, msg_id)
    raise ValidationError("type", f"unknown inbound message type {msg_type!r}")
