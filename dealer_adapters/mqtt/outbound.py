"""What a dealer makes of an engine message's body (``rfq.new``, ``award``,
``execution.query``, ``rfq.closed``): the dealer side of docs/dealer-protocol.md, after
``open_envelope`` has checked the envelope and its signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dealer_adapters.mqtt.envelope import EngineMessage, ExecutionQuery, body_id
from rfq_engine.domain import (
    Award,
    ClosePolicy,
    DealerId,
    Direction,
    ExecutionId,
    Leg,
    QuoteId,
    QuoteSide,
    RfqClosed,
    RfqId,
    RfqNew,
    ValidationError,
    parse_positive,
    parse_ts,
)
from rfq_engine.domain.values import parse_decimal, require

__all__ = ["parse_outbound_body"]


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = require(body, key, "body")
    if not isinstance(value, bool):
        raise ValidationError(f"body.{key}", "must be true or false")
    return value


def _decimal_text(body: Mapping[str, Any], key: str) -> object:
    value = require(body, key, "body")
    if not isinstance(value, str):
        raise ValidationError(f"body.{key}", "must be a decimal string")
    return value


def _opt_text(body: Mapping[str, Any], key: str, default: str) -> str:
    if key not in body:
        return default
    return body_id(body, key)


def parse_outbound_body(msg_type: str, body: Mapping[str, Any], *, dealer_id: DealerId) -> EngineMessage:
    """What a dealer does with an engine message's ``body``: ``RfqNew``, ``Award``,
    ``RfqClosed`` or ``ExecutionQuery``.

    The extension fields are optional, for an engine that does not send them:
    ``rfq.new.close_policy`` (default ``all_answered``: the window may close early) and
    ``award.quantity_unit`` (default ``""``: the RFQ's unit). Raises ``ValidationError``
    naming the field.
    """
    if msg_type == "rfq.new":
        raw_legs = require(body, "legs", "body")
        if not isinstance(raw_legs, list) or not raw_legs:
            raise ValidationError("body.legs", "must be a non-empty list")
        raw_direction = require(body, "direction", "body")
        try:
            direction = Direction(raw_direction)
        except ValueError:
            raise ValidationError("body.direction", f"unknown direction {raw_direction!r}") from None
        settlement = body.get("settlement", "cash")
        if not isinstance(settlement, str):
            raise ValidationError("body.settlement", "must be a string")
        return RfqNew(
            rfq_id=RfqId(body_id(body, "rfq_id")),
            legs=tuple(Leg.from_dict(leg, f"body.legs[{i}]") for i, leg in enumerate(raw_legs)),
            quantity=parse_positive(_decimal_text(body, "quantity"), "body.quantity"),
            quantity_unit=body_id(body, "quantity_unit"),
            direction=direction,
            allow_partial=_bool(body, "allow_partial"),
            deadline=parse_ts(require(body, "deadline", "body"), "body.deadline"),
            settlement=settlement,
            close_policy=_close_policy(body),
        )
    if msg_type == "award":
        raw_side = require(body, "side", "body")
        try:
            side = QuoteSide(raw_side)
        except ValueError:
            raise ValidationError("body.side", f"must be 'bid' or 'ask', got {raw_side!r}") from None
        return Award(
            rfq_id=RfqId(body_id(body, "rfq_id")),
            quote_id=QuoteId(body_id(body, "quote_id")),
            dealer_id=dealer_id,
            side=side,
            price=parse_decimal(_decimal_text(body, "price"), "body.price"),
            quantity=parse_positive(_decimal_text(body, "quantity"), "body.quantity"),
            execution_id=ExecutionId(body_id(body, "execution_id")),
            confirm_by=parse_ts(require(body, "confirm_by", "body"), "body.confirm_by"),
            quantity_unit=_opt_text(body, "quantity_unit", ""),
        )
    if msg_type == "execution.query":
        rfq_id = _opt_text(body, "rfq_id", "")
        return ExecutionQuery(ExecutionId(body_id(body, "execution_id")), RfqId(rfq_id) if rfq_id else None)
    if msg_type == "rfq.closed":
        outcome = body_id(body, "outcome")
        return RfqClosed(RfqId(body_id(body, "rfq_id")), outcome, _bool(body, "you_won"))
    raise ValidationError("type", f"unknown engine message type {msg_type!r}")


def _close_policy(body: Mapping[str, Any]) -> str:
    raw = body.get("close_policy", ClosePolicy.ALL_ANSWERED.value)
    try:
        return ClosePolicy(raw).value
    except ValueError:
        raise ValidationError("body.close_policy",
                              f"must be 'deadline' or 'all_answered', got {raw!r}") from None
