"""Desk JSON to values, and values to the domain's messages (``docs/dealers-rest.md``).

Every failure is a ``DeskAnswerError`` whose ``reason`` names the field and says what is
wrong (``quote.bid: must be a decimal string like "39990.5", got a JSON float``), with the
raw answer kept (cut short) for the audit log. Prices and quantities must be JSON strings
holding decimals; a JSON float is refused, never converted.

The domain messages are built through the shared ``parse_body``
(``dealer_adapters.common``), exactly as the MQTT transport builds them, so the engine sees
the same shapes whatever the transport. An order's journaled outcome becomes the engine's
confirm or reject, and a lookup's answer, here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from dealer_adapters.common import RAW_MAX, confirm_body, parse_wire, quote_body, reject_body, rejected
from dealer_adapters.protocol import ExecutionLookup, ExecutionState
from dealer_adapters.rest.client import DeskResponse
from dealer_adapters.rest.journal import OrderIntent, OrderOutcome
from rfq_engine.domain import (
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Inbound,
    InboundRejected,
    Quote,
    QuoteId,
    RfqId,
    ValidationError,
    parse_decimal,
    parse_positive,
    parse_ts,
    utc_now,
)
from rfq_engine.domain.errors import WireError
from rfq_engine.domain.values import require

__all__ = [
    "RAW_MAX",
    "DeskAnswerError",
    "DeskOrder",
    "DeskQuote",
    "DeskStatus",
    "OrderStatus",
    "confirm_message",
    "decline_message",
    "decode_object",
    "error_code",
    "error_reason",
    "execution_lookup",
    "execution_message",
    "order_outcome",
    "parse_order",
    "parse_quote",
    "quote_message",
    "read_order",
    "reject_message",
    "rejected_message",
    "unit_refused",
]

_ID_MAX = 128
_REASON_MAX = 300


class DeskAnswerError(WireError):
    """An answer that cannot be read; ``reason`` says why, ``raw`` is its start."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = None if raw is None else raw[:RAW_MAX]


class OrderStatus(StrEnum):
    FILLED = "filled"
    REJECTED = "rejected"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class DeskQuote:
    """A desk's firm quote. Prices are in the desk's orientation for what was asked."""

    quote_id: str
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeskOrder:
    """An order as the desk reports it; ``price``/``quantity``/``trade_id`` are set when filled."""

    client_order_id: str
    status: OrderStatus
    price: Decimal | None = None
    quantity: Decimal | None = None
    trade_id: str = ""
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.status is not OrderStatus.PENDING


@dataclass(frozen=True, slots=True)
class DeskStatus:
    """An answer that is not an order (404, 5xx...): says nothing of the order's outcome."""

    status: int
    reason: str
    code: str = ""
    """The answer's ``error`` code (``not_found``...), when it has one."""


def decode_object(response: DeskResponse, what: str) -> Mapping[str, Any]:
    """The JSON object of a 2xx answer, or a ``DeskAnswerError`` with the raw text."""
    if response.truncated:
        raise DeskAnswerError(f"{what}: answer larger than the limit", response.text)
    try:
        data = json.loads(response.text)
    except ValueError as exc:
        raise DeskAnswerError(f"{what}: not JSON ({exc})", response.text) from None
    if not isinstance(data, Mapping):
        raise DeskAnswerError(f"{what}: must be a JSON object, got {type(data).__name__}", response.text)
    return data


def _text(data: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > _ID_MAX:
        raise ValidationError(
            f"{what}.{key}", f"must be a non-empty string (max {_ID_MAX} chars), got {value!r}"
        )
    return value


def parse_quote(data: Mapping[str, Any], *, needs: tuple[str, ...], raw: str = "") -> DeskQuote:
    """A quote answer; ``needs`` is the price fields the request asked for (``bid``/``ask``)."""
    try:
        prices: dict[str, Decimal | None] = {}
        for field in ("bid", "ask"):
            value = data.get(field)
            if value is None:
                if field in needs:
                    raise ValidationError(f"quote.{field}", "is required for the side asked")
                prices[field] = None
            else:
                prices[field] = parse_decimal(value, f"quote.{field}") if field in needs else None
        return DeskQuote(
            quote_id=_text(data, "quote_id", "quote"),
            bid=prices["bid"],
            ask=prices["ask"],
            quantity=parse_positive(require(data, "quantity", "quote"), "quote.quantity"),
            expires_at=parse_ts(require(data, "expires_at", "quote"), "quote.expires_at"),
        )
    except ValidationError as exc:
        raise DeskAnswerError(str(exc), raw) from None


def parse_order(data: Mapping[str, Any], client_order_id: str, *, raw: str = "") -> DeskOrder:
    """An order answer (``POST /v1/orders`` or ``GET /v1/orders/{id}``) for ``client_order_id``."""
    try:
        echoed = _text(data, "client_order_id", "order")
        if echoed != client_order_id:
            raise ValidationError(
                "order.client_order_id", f"is {echoed!r}, the order asked for is {client_order_id!r}"
            )
        raw_status = data.get("status")
        try:
            status = OrderStatus(str(raw_status))
        except ValueError:
            allowed = ", ".join(s.value for s in OrderStatus)
            raise ValidationError("order.status", f"must be one of {allowed}, got {raw_status!r}") from None
        if status is OrderStatus.FILLED:
            trade_id = _text(data, "trade_id", "order", required=False) or _text(data, "order_id", "order")
            return DeskOrder(
                echoed,
                status,
                price=parse_decimal(require(data, "price", "order"), "order.price"),
                quantity=parse_positive(require(data, "quantity", "order"), "order.quantity"),
                trade_id=trade_id,
            )
        reason = data.get("reason")
        if status is OrderStatus.REJECTED:
            text = reason.strip()[:_REASON_MAX] if isinstance(reason, str) else ""
            return DeskOrder(echoed, status, reason=text or "no reason given")
        return DeskOrder(echoed, status)
    except ValidationError as exc:
        raise DeskAnswerError(str(exc), raw) from None


def read_order(response: DeskResponse, client_order_id: str) -> DeskOrder | DeskStatus:
    """The order in a 2xx answer (``DeskAnswerError`` when unreadable); any other answer as a
    ``DeskStatus``."""
    if response.status not in (200, 201, 202):
        return DeskStatus(response.status, error_reason(response), error_code(response))
    return parse_order(decode_object(response, "order"), client_order_id, raw=response.text)


def order_outcome(execution_id: ExecutionId, order: DeskOrder) -> OrderOutcome:
    """A final order as the journal's outcome."""
    if order.status is OrderStatus.FILLED:
        return OrderOutcome(execution_id, True, utc_now(), price=order.price, quantity=order.quantity,
                            trade_id=order.trade_id)
    return OrderOutcome(execution_id, False, utc_now(), reason=order.reason)


def error_code(response: DeskResponse) -> str:
    """The ``error`` code of an error answer (``{"error": "not_found", ...}``), else ``""``."""
    try:
        data = json.loads(response.text)
    except ValueError:
        return ""
    code = data.get("error") if isinstance(data, Mapping) else None
    return code if isinstance(code, str) else ""


def error_reason(response: DeskResponse) -> str:
    """``HTTP 422: quote expired``: the status and the desk's message from an error answer
    (``{"error": code, "message": text}``), or the start of its text when it is not that."""
    message = ""
    try:
        data = json.loads(response.text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        parts = [str(data[k]) for k in ("error", "message") if isinstance(data.get(k), str | int) and data[k]]
        message = ": ".join(dict.fromkeys(parts))
    if not message:
        message = " ".join(response.text.split())[:120]
    return f"HTTP {response.status}" + (f": {message[:_REASON_MAX]}" if message else "")


def unit_refused(unit: str, response: DeskResponse) -> str:
    """The reason for a desk's ``422 unsupported_unit`` (a quote request or an order)."""
    return f"unit {unit or '(none)'} not traded by the desk ({error_reason(response)})"


# --- domain messages ---------------------------------------------------------------------


def quote_message(
    dealer_id: DealerId,
    rfq_id: RfqId,
    quote_id: str,
    bid: Decimal | None,
    ask: Decimal | None,
    quantity: Decimal,
    valid_until: datetime,
    received_at: datetime,
) -> Quote:
    """A ``Quote`` in the engine's orientation; raises ``ValidationError`` naming the field."""
    body = quote_body(rfq_id, quote_id, quantity, valid_until, bid=bid, ask=ask)
    message = parse_wire("quote", body, dealer_id, received_at)
    assert isinstance(message, Quote)
    return message


def decline_message(dealer_id: DealerId, rfq_id: RfqId, reason: str, received_at: datetime) -> Decline:
    body = {"rfq_id": rfq_id, "reason": reason}
    message = parse_wire("quote.decline", body, dealer_id, received_at)
    assert isinstance(message, Decline)
    return message


def confirm_message(
    dealer_id: DealerId,
    execution_id: ExecutionId,
    rfq_id: RfqId,
    quote_id: QuoteId,
    price: Decimal,
    quantity: Decimal,
    trade_id: str,
    received_at: datetime,
) -> ExecutionConfirm:
    body = confirm_body(execution_id, rfq_id, quote_id, price, quantity, trade_id)
    message = parse_wire("execution.confirm", body, dealer_id, received_at)
    assert isinstance(message, ExecutionConfirm)
    return message


def reject_message(
    dealer_id: DealerId, execution_id: ExecutionId, rfq_id: RfqId, reason: str, received_at: datetime
) -> ExecutionReject:
    body = reject_body(execution_id, rfq_id, reason)
    message = parse_wire("execution.reject", body, dealer_id, received_at)
    assert isinstance(message, ExecutionReject)
    return message


def rejected_message(
    dealer_id: DealerId, rfq_id: RfqId | None, reason: str, raw: str | None, received_at: datetime
) -> InboundRejected:
    """An answer the adapter could not read, for the engine to audit (``message.rejected``)."""
    return rejected(dealer_id, rfq_id, reason, raw, received_at)


def execution_message(dealer_id: DealerId, intent: OrderIntent, outcome: OrderOutcome) -> Inbound:
    """The engine's confirm or reject for a journaled outcome; raises ``ValidationError``."""
    now = utc_now()
    if outcome.filled:
        assert outcome.price is not None and outcome.quantity is not None
        return confirm_message(dealer_id, intent.execution_id, intent.rfq_id, intent.quote_id,
                               intent.to_engine(outcome.price), outcome.quantity, outcome.trade_id, now)
    return reject_message(dealer_id, intent.execution_id, intent.rfq_id, outcome.reason, now)


def execution_lookup(dealer_id: DealerId, intent: OrderIntent, outcome: OrderOutcome) -> ExecutionLookup:
    """``query_execution``'s answer for a known outcome: a fill whose confirm does not
    validate is UNKNOWN, never REJECTED."""
    if not outcome.filled:
        return ExecutionLookup(ExecutionState.REJECTED, reason=outcome.reason)
    try:
        message = execution_message(dealer_id, intent, outcome)
    except ValidationError as exc:
        return ExecutionLookup(ExecutionState.UNKNOWN, reason=f"unreadable fill: {exc}")
    assert isinstance(message, ExecutionConfirm)
    return ExecutionLookup(ExecutionState.CONFIRMED, confirm=message)
