"""The shared wire parser and canonical JSON."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rfq_engine.domain import (
    DealerId,
    ExecutionConfirm,
    Quote,
    ValidationError,
    body_to_dict,
    canonical_json,
    parse_body,
    utc_now,
)


def parse(msg_type: str, body: object) -> object:
    return parse_body(msg_type, body, dealer_id=DealerId("d1"), msg_id="m", received_at=utc_now())


def test_quote_round_trip_and_collar_may_be_negative() -> None:
    body = {"rfq_id": "r", "quote_id": "q", "bid": "-120.5", "quantity": "100",
            "valid_until": "2026-11-21T10:00:08.000000Z", "ignored_future_field": 1}
    quote = parse("quote", body)
    assert isinstance(quote, Quote) and quote.bid == Decimal("-120.5") and quote.ask is None
    again = body_to_dict(quote)
    assert again["bid"] == "-120.5" and "ask" not in again


@pytest.mark.parametrize(("msg_type", "body", "field"), [
    ("quote", {"rfq_id": "r", "quote_id": "q", "bid": 1.5, "quantity": "1",
               "valid_until": "2026-11-21T10:00:08Z"}, "body.bid"),
    ("quote", {"rfq_id": "r", "quote_id": "q", "quantity": "1",
               "valid_until": "2026-11-21T10:00:08Z"}, "body"),
    ("quote", {"rfq_id": "r", "quote_id": "q", "bid": "1", "quantity": "0",
               "valid_until": "2026-11-21T10:00:08Z"}, "body.quantity"),
    ("quote", {"rfq_id": "r", "quote_id": "q", "bid": "1", "quantity": "1",
               "valid_until": "2026-11-21T10:00:08"}, "body.valid_until"),
    ("execution.confirm", {"execution_id": "e", "rfq_id": "r", "quote_id": "q", "price": "1",
                           "quantity": "1"}, "body.dealer_trade_id"),
    ("gossip", {}, "type"),
    ("quote", [], "body"),
])
def test_invalid_bodies_name_the_field(msg_type: str, body: object, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse(msg_type, body)
    assert err.value.field == field


def test_confirm_parses_decimals_exactly() -> None:
    c = parse("execution.confirm", {"execution_id": "e", "rfq_id": "r", "quote_id": "q",
                                    "price": "39950.10", "quantity": "100",
                                    "dealer_trade_id": "D-1"})
    assert isinstance(c, ExecutionConfirm) and c.price == Decimal("39950.10")


def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    assert canonical_json({"b": Decimal("1.50"), "a": "é", "c": [1, None]}) == \
        '{"a":"é","b":"1.5","c":[1,null]}'


def test_canonical_json_refuses_floats_anywhere() -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_json({"a": [1, {"b": 0.1}]})


@pytest.mark.parametrize("body", [
    {"rfq_id": "r", "quote_id": "q\ud800", "bid": "1", "quantity": "1",
     "valid_until": "2030-01-01T00:00:00.000000Z"},
    {"rfq_id": "r", "reason": "no\udfff"},
])
def test_a_lone_surrogate_anywhere_in_a_dealer_body_is_refused(body: dict[str, str]) -> None:
    """JSON can carry "\\ud800"; such a string cannot be written to the audit log, so a
    dealer's message holding one is refused at the door (never reaching the writer)."""
    from datetime import UTC, datetime

    from rfq_engine.domain import DealerId, ValidationError, parse_body

    kind = "quote" if "quote_id" in body else "quote.decline"
    with pytest.raises(ValidationError, match="Unicode text"):
        parse_body(kind, body, dealer_id=DealerId("d"), msg_id="m",
                   received_at=datetime.now(UTC))
