"""The envelope: signing, every verification failure with its reason, engine-message bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.mqtt.envelope import (
    ENGINE_TOPICS,
    FEATURE_EXECUTION_QUERY,
    NOT_FOUND_REASON,
    ExecutionQuery,
    InboundExtensions,
    Topics,
    build_envelope,
    encode_envelope,
    encode_message,
    open_envelope,
    outbound_body,
    sign,
    verify_inbound,
    verify_inbound_ext,
)
from dealer_adapters.mqtt.outbound import parse_outbound_body
from rfq_engine.domain import (
    Award,
    DealerId,
    DealerStatus,
    Direction,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    InboundRejected,
    Leg,
    Quote,
    QuoteId,
    QuoteSide,
    RfqClosed,
    RfqId,
    RfqNew,
    ValidationError,
    body_to_dict,
    canonical_json,
)

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
QUOTE_BODY = {"rfq_id": "r-1", "quote_id": "q-1", "bid": "39950", "ask": "40050", "quantity": "100",
              "valid_until": "2026-11-21T10:00:08.000000Z"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dealer-protocol.md"


def envelope(msg_type: str = "quote", body: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    env = build_envelope(msg_type, QUOTE_BODY if body is None else body, dealer_id="desk-a", secret=SECRET,
                         msg_id="m-1", sent_at=NOW)
    env.update(fields)
    return env


def resign(env: dict[str, Any]) -> dict[str, Any]:
    unsigned = {k: v for k, v in env.items() if k != "sig"}
    return {**unsigned, "sig": sign(unsigned, SECRET)}


def verify(payload: bytes, *, kind: str = "quote", dealer: str = "desk-a", max_bytes: int = 65_536) -> Any:
    return verify_inbound(payload, topic_dealer=DealerId(dealer), kind=kind, secret=SECRET, received_at=NOW,
                          max_bytes=max_bytes)


def test_a_signed_quote_verifies_into_the_domain_message() -> None:
    message = verify(encode_envelope(envelope()))
    assert isinstance(message, Quote)
    assert (message.dealer_id, message.msg_id, message.received_at) == ("desk-a", "m-1", NOW)
    assert (message.bid, message.ask, message.quantity) == (Decimal(39950), Decimal(40050), Decimal(100))


def test_the_signature_is_hmac_sha256_over_the_canonical_json_without_sig() -> None:
    import hashlib
    import hmac

    env = envelope()
    unsigned = {k: v for k, v in env.items() if k != "sig"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert env["sig"] == hmac.new(SECRET, text.encode(), hashlib.sha256).hexdigest()
    # any layout verifies: the receiver re-canonicalises what it parsed
    pretty = json.dumps(env, indent=2, ensure_ascii=True).encode()
    assert isinstance(verify(pretty), Quote)


def test_unknown_fields_are_ignored_but_signed() -> None:
    env = resign(envelope(body={**QUOTE_BODY, "desk_note": "hi"}, trace={"span": 7}))
    assert isinstance(verify(encode_envelope(env)), Quote)
    env["trace"] = {"span": 8}  # changed after signing
    rejected = verify(encode_envelope(env))
    assert isinstance(rejected, InboundRejected) and "bad signature" in rejected.reason


def text_of(env: dict[str, Any]) -> bytes:
    return json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode()


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in envelope().items() if k != key}


def _tamper(key: str, value: Any) -> Callable[[], bytes]:
    return lambda: text_of({**envelope(), key: value})


def _resigned(**fields: Any) -> Callable[[], bytes]:
    return lambda: encode_envelope(resign(envelope(**fields)))


def _body(**changes: Any) -> Callable[[], bytes]:
    def make() -> bytes:
        body = {**QUOTE_BODY, **changes}
        return encode_envelope(envelope(body={k: v for k, v in body.items() if v is not None}))

    return make


FAILURES: dict[str, tuple[Callable[[], bytes], str]] = {
    "too large": (lambda: b" " * 70_000, "message too large: 70000 bytes"),
    "not UTF-8": (lambda: b'{"v": 1, "type": "\xff"}', "not UTF-8"),
    "malformed JSON": (lambda: b'{"v": 1, "type": ', "malformed JSON"),
    "not an object": (lambda: b"[1, 2]", "must be a JSON object, got list"),
    "a JSON float": (lambda: text_of(envelope()).replace(b'"39950"', b"39950.5"), "a JSON float (39950.5)"),
    "NaN": (lambda: text_of(envelope()).replace(b'"39950"', b"NaN"), "NaN is not a JSON value"),
    "duplicate key": (lambda: text_of(envelope())[:-1] + b',"v":1}', "duplicate key 'v'"),
    "missing sig": (lambda: text_of(_without("sig")), "envelope.sig: missing"),
    "sig not hex": (_tamper("sig", "XYZ"), "64 lowercase hex"),
    "bad signature": (_tamper("sent_at", "2026-11-21T10:00:01.000000Z"), "bad signature"),
    "wrong secret": (lambda: encode_envelope(build_envelope("quote", QUOTE_BODY, dealer_id="desk-a",
                                                            secret=b"x" * 32)), "bad signature"),
    "version 2": (_resigned(v=2), "unsupported protocol version 2"),
    "version true": (_resigned(v=True), "unsupported protocol version True"),
    "no version": (lambda: text_of(_without("v")), "envelope.v: is required"),
    "unknown type": (_resigned(type="quote.teleport"), "'quote.teleport' is not accepted on this topic"),
    "type on the wrong topic": (_resigned(type="execution.confirm"), "expected quote or quote.decline"),
    "spoofed dealer_id": (_resigned(dealer_id="desk-b"),
                          "'desk-b' does not match the topic's dealer 'desk-a'"),
    "empty msg_id": (_resigned(msg_id=""), "envelope.msg_id: must be a non-empty string"),
    "bad sent_at": (_resigned(sent_at="yesterday"), "envelope.sent_at: not an ISO 8601 timestamp"),
    "body not an object": (lambda: encode_envelope(resign({**envelope(), "body": [1]})),
                           "envelope.body: must be a JSON object"),
    "missing quantity": (_body(quantity=None), "body.quantity: is required"),
    "decimal as a JSON number": (_body(quantity=100),
                                 "body.quantity: must be a decimal string, got a JSON number"),
    "zero quantity": (_body(quantity="0"), "body.quantity: must be positive"),
    "not a decimal": (_body(bid="forty"), "body.bid: not a decimal number"),
    "no price at all": (_body(bid=None, ask=None), "needs a bid, an ask or both"),
    "lone surrogate": (lambda: json.dumps({**envelope(), "body": {**QUOTE_BODY, "x": "\ud800"}}).encode(),
                       "lone surrogate"),
}


@pytest.mark.parametrize("make,reason", list(FAILURES.values()), ids=list(FAILURES))
def test_every_failure_is_a_rejection_with_its_reason(make: Callable[[], bytes], reason: str) -> None:
    payload = make()
    rejected = verify(payload)
    assert isinstance(rejected, InboundRejected), rejected
    assert reason in rejected.reason
    assert rejected.dealer_id == "desk-a" and rejected.received_at == NOW
    assert rejected.raw == payload[:2000].decode(errors="replace")[:2000]


def test_a_rejection_names_the_msg_id_and_rfq_id_when_it_can() -> None:
    rejected = verify(_tamper("sent_at", "2026-11-21T10:00:01.000000Z")())
    assert isinstance(rejected, InboundRejected)
    assert (rejected.msg_id, rejected.rfq_id) == ("m-1", "r-1")
    spoofed = verify(encode_envelope(envelope()), dealer="desk-b")  # on desk-b's topic
    assert isinstance(spoofed, InboundRejected) and spoofed.dealer_id == "desk-b"
    assert "'desk-a' does not match the topic's dealer 'desk-b'" in spoofed.reason


def test_every_dealer_message_type_verifies_on_its_topic() -> None:
    confirm = ExecutionConfirm(ExecutionId("e-1"), RfqId("r-1"), QuoteId("q-1"), DealerId("desk-a"),
                               Decimal("-12.5"), Decimal(3), "T-1", NOW, "m")
    cases = [("quote", "quote.decline", {"rfq_id": "r-1", "reason": "no"}),
             ("execution", "execution.confirm", body_to_dict(confirm)),
             ("execution", "execution.reject", {"execution_id": "e-1", "rfq_id": "r-1", "reason": "moved"}),
             ("status", "status", {"online": False, "instruments": ["future"]})]
    for kind, msg_type, body in cases:
        message = verify(encode_envelope(envelope(msg_type, body)), kind=kind)
        assert not isinstance(message, InboundRejected), (msg_type, message)
    assert isinstance(verify(encode_envelope(envelope()), kind="rfq"), InboundRejected)  # engine's topic


def test_engine_messages_round_trip_through_the_dealers_parser() -> None:
    leg = Leg.from_dict({"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                        "expiry": "2026-12-25"}, "side": "sell"}, "leg")
    messages: list[RfqNew | Award | RfqClosed] = [
        RfqNew(RfqId("r-1"), (leg,), Decimal(100), "BTC", Direction.SELL, True, NOW + timedelta(seconds=5)),
        Award(RfqId("r-1"), QuoteId("q-1"), DealerId("desk-a"), QuoteSide.BID, Decimal("39950.5"),
              Decimal(100), ExecutionId("e-1"), NOW + timedelta(seconds=2)),
        RfqClosed(RfqId("r-1"), "filled", True),
    ]
    for message in messages:
        msg_id, payload = encode_message(message, dealer_id="desk-a", secret=SECRET)
        kind = "award" if isinstance(message, Award) else "rfq"
        allowed = frozenset({"award"}) if kind == "award" else frozenset({"rfq.new", "rfq.closed"})
        opened = open_envelope(payload, topic_dealer="desk-a", allowed_types=allowed, secret=SECRET)
        assert opened.msg_id == msg_id
        assert parse_outbound_body(opened.type, opened.body, dealer_id=DealerId("desk-a")) == message


def test_a_bad_engine_message_body_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"body\.price: must be a decimal string"):
        parse_outbound_body("award", {"rfq_id": "r", "quote_id": "q", "side": "bid", "price": 1,
                                      "quantity": "1", "execution_id": "e",
                                      "confirm_by": "2026-11-21T10:00:00Z"}, dealer_id=DealerId("d"))
    with pytest.raises(ValidationError, match=r"body\.direction"):
        parse_outbound_body("rfq.new", {"rfq_id": "r", "legs": [{}], "direction": "up"},
                            dealer_id=DealerId("d"))


def test_topics() -> None:
    topics = Topics("rfq/v1")
    assert topics.topic("desk-a", "quote") == "rfq/v1/dealers/desk-a/quote"
    assert topics.for_type("desk-a", "quote.decline") == "rfq/v1/dealers/desk-a/quote"
    assert topics.for_type("desk-a", "rfq.closed") == "rfq/v1/dealers/desk-a/rfq"
    assert topics.parse("rfq/v1/dealers/desk-a/execution") == ("desk-a", "execution")
    for other in ("rfq/v2/dealers/desk-a/quote", "rfq/v1/dealers/desk-a", "rfq/v1/dealers//quote",
                  "rfq/v1/dealers/desk-a/quote/x"):
        assert topics.parse(other) is None


def test_the_worked_signing_example_in_the_protocol_docs_is_right() -> None:
    """docs/dealer-protocol.md shows a secret, a canonical message and its signature:
    an integrator checks their code against it, so it must be exactly right."""
    text = DOCS.read_text(encoding="utf-8")
    secret = re.search(r"<!-- example-secret -->\s*`([^`]+)`", text)
    canonical = re.search(r"<!-- example-canonical -->\s*```json\n(.+?)\n```", text, re.S)
    signature = re.search(r"<!-- example-sig -->\s*```text\n([0-9a-f]{64})\n```", text)
    wire = re.search(r"<!-- example-wire -->\s*```json\n(.+?)\n```", text, re.S)
    assert secret and canonical and signature and wire, "the worked example's markers are missing"
    unsigned = json.loads(canonical.group(1))
    assert canonical_json(unsigned) == canonical.group(1)  # it is the canonical form
    assert sign(unsigned, secret.group(1).encode()) == signature.group(1)
    message = json.loads(wire.group(1))
    assert message == {**unsigned, "sig": signature.group(1)}
    opened = open_envelope(wire.group(1).encode(), topic_dealer=message["dealer_id"],
                           allowed_types=frozenset({message["type"]}), secret=secret.group(1).encode())
    assert opened.msg_id == message["msg_id"]


# --------------------------------------------------------------------------- project extensions


def test_the_extension_fields_travel_and_round_trip() -> None:
    leg = Leg.from_dict({"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                        "expiry": "2026-12-25"}, "side": "sell"}, "leg")
    rfq = RfqNew(RfqId("r-1"), (leg,), Decimal(100), "BTC", Direction.SELL, True, NOW + timedelta(seconds=5),
                 close_policy="deadline")
    award = Award(RfqId("r-1"), QuoteId("q-1"), DealerId("desk-a"), QuoteSide.BID, Decimal("39950.5"),
                  Decimal(100), ExecutionId("e-1"), NOW + timedelta(seconds=2), quantity_unit="BTC")
    query = ExecutionQuery(ExecutionId("e-1"), RfqId("r-1"))
    assert outbound_body(rfq)["close_policy"] == "deadline"
    assert outbound_body(rfq)["quantity_unit"] == "BTC"
    assert outbound_body(award)["quantity_unit"] == "BTC"
    assert outbound_body(query) == {"execution_id": "e-1", "rfq_id": "r-1"}
    assert outbound_body(ExecutionQuery(ExecutionId("e-2"))) == {"execution_id": "e-2"}
    for message, kind in ((rfq, "rfq"), (award, "award"), (query, "award")):
        _, payload = encode_message(message, dealer_id="desk-a", secret=SECRET)
        opened = open_envelope(payload, topic_dealer="desk-a", allowed_types=ENGINE_TOPICS[kind],
                               secret=SECRET)
        assert parse_outbound_body(opened.type, opened.body, dealer_id=DealerId("desk-a")) == message
    wire = json.loads(encode_message(query, dealer_id="desk-a", secret=SECRET)[1])
    assert wire["type"] == "execution.query"


def test_an_engine_that_sends_no_extension_fields_gets_the_defaults() -> None:
    body = {"rfq_id": "r", "legs": [{"instrument": {"kind": "spot", "underlying": "BTC", "quote_ccy": "USD"},
                                     "side": "buy"}],
            "quantity": "1", "quantity_unit": "BTC", "direction": "buy", "allow_partial": False,
            "deadline": "2026-11-21T10:00:05.000000Z"}
    rfq = parse_outbound_body("rfq.new", body, dealer_id=DealerId("d"))
    assert isinstance(rfq, RfqNew) and rfq.close_policy == "all_answered"
    with pytest.raises(ValidationError, match=r"body\.close_policy: must be 'deadline' or 'all_answered'"):
        parse_outbound_body("rfq.new", {**body, "close_policy": "whenever"}, dealer_id=DealerId("d"))
    award = parse_outbound_body("award", {"rfq_id": "r", "quote_id": "q", "side": "bid", "price": "1",
                                          "quantity": "1", "execution_id": "e",
                                          "confirm_by": "2026-11-21T10:00:00Z"}, dealer_id=DealerId("d"))
    assert isinstance(award, Award) and award.quantity_unit == ""
    with pytest.raises(ValidationError, match=r"body\.execution_id"):
        parse_outbound_body("execution.query", {"rfq_id": "r"}, dealer_id=DealerId("d"))


def verify_ext(msg_type: str, body: dict[str, Any], kind: str) -> tuple[Any, InboundExtensions]:
    return verify_inbound_ext(encode_envelope(envelope(msg_type, body)), topic_dealer=DealerId("desk-a"),
                              kind=kind, secret=SECRET, received_at=NOW)


def test_a_not_found_answer_and_the_status_features_are_read() -> None:
    message, ext = verify_ext("execution.reject", {"execution_id": "e-1", "rfq_id": "r-1",
                                                   "reason": NOT_FOUND_REASON, "not_found": True},
                              "execution")
    assert isinstance(message, ExecutionReject) and ext.not_found and message.reason == NOT_FOUND_REASON
    message, ext = verify_ext("execution.reject", {"execution_id": "e-1", "not_found": True}, "execution")
    assert isinstance(message, ExecutionReject) and ext.not_found and message.rfq_id == ""  # no RFQ named
    message, ext = verify_ext("execution.reject", {"execution_id": "e-1", "rfq_id": "r-1",
                                                   "reason": "last look"}, "execution")
    assert isinstance(message, ExecutionReject) and not ext.not_found
    message, ext = verify_ext("execution.reject", {"execution_id": "e-1"}, "execution")  # needs rfq_id
    assert isinstance(message, InboundRejected) and "body.rfq_id" in message.reason
    message, ext = verify_ext("execution.reject",
                              {"execution_id": "e-1", "rfq_id": "r-1", "not_found": "yes"}, "execution")
    assert isinstance(message, InboundRejected) and "body.not_found: must be true or false" in message.reason
    message, ext = verify_ext("status", {"online": True, "features": [FEATURE_EXECUTION_QUERY, "x"]},
                              "status")
    assert isinstance(message, DealerStatus) and ext.features == (FEATURE_EXECUTION_QUERY, "x")
    message, ext = verify_ext("status", {"online": True}, "status")
    assert isinstance(message, DealerStatus) and ext.features == ()
    message, ext = verify_ext("status", {"online": True, "features": "execution.query"}, "status")
    assert isinstance(message, InboundRejected) and "body.features" in message.reason
    # a dealer cannot send a query: it travels engine -> dealer only
    message, _ = verify_ext("execution.query", {"execution_id": "e-1"}, "execution")
    assert isinstance(message, InboundRejected)
