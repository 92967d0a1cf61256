"""The REST adapter's pure parts: signing, reading desk answers, planning requests, the journal."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.rest.client import DeskResponse, Signer, hmac_signature, resolve_signer
from dealer_adapters.rest.config import BearerAuth, HmacAuth, RestDealerConfig
from dealer_adapters.rest.journal import Journal, JournalError, OrderIntent, OrderOutcome
from dealer_adapters.rest.parsing import (
    DeskAnswerError,
    OrderStatus,
    decode_object,
    error_code,
    error_reason,
    parse_order,
    parse_quote,
)
from dealer_adapters.rest.planning import QuotePlan, plan_quote
from rfq_engine.domain import (
    Direction,
    ExecutionId,
    Leg,
    QuoteId,
    QuoteSide,
    RfqId,
    Side,
)
from tests.adapters.sim_helpers import CALL_50K, DEC_FUT, PUT_35K, rfq
from tests.rest.conftest import TEMPLATES

# --- signing ---------------------------------------------------------------------------------


def test_hmac_signature_golden_vectors() -> None:
    # computed once with an independent implementation: hex(HMAC-SHA256(secret, ts\nMETHOD\npath\nbody))
    assert hmac_signature("test-secret-1", "1700000000000", "POST", "/api/v1/orders", b'{"a":"1"}') == (
        "98ddd2a72b46193a93f3c03290e4074e80d606668bf846f7864723466b34a2d3")
    assert hmac_signature("test-secret-1", "1700000000000", "get", "/api/v1/orders/rfq-x", b"") == (
        "40d62865c5a2e3c3c29d631a654818895d98fd52ba338d9600d48aab6ba20128")


def test_signers_headers() -> None:
    signer = Signer.hmac("key-1", "test-secret-1", clock_ms=lambda: 1_700_000_000_000)
    assert signer.headers("POST", "/api/v1/orders", b'{"a":"1"}') == {
        "X-Key": "key-1", "X-Timestamp": "1700000000000",
        "X-Signature": "98ddd2a72b46193a93f3c03290e4074e80d606668bf846f7864723466b34a2d3"}
    assert Signer.bearer("t0k").headers("GET", "/x", b"") == {"Authorization": "Bearer t0k"}


def test_secrets_come_from_the_environment_and_a_missing_one_is_named() -> None:
    auth = HmacAuth(scheme="hmac", key_env="K_ENV", secret_env="S_ENV")
    with pytest.raises(ValueError, match=r"dealer 'desk': .*S_ENV \(API secret\) is not set"):
        resolve_signer("desk", auth, {"K_ENV": "k", "S_ENV": ""})
    bearer = resolve_signer("desk", BearerAuth(scheme="bearer", token_env="T"), {"T": "abc"})
    assert bearer.headers("GET", "/", b"")["Authorization"] == "Bearer abc"


# --- desk answers ----------------------------------------------------------------------------

QUOTE = {"quote_id": "Q-1", "bid": "39990.5", "ask": "40010", "quantity": "10",
         "expires_at": "2026-11-21T10:00:05.250000Z"}


def ok(body: Any, status: int = 200) -> DeskResponse:
    return DeskResponse(status, body if isinstance(body, str) else json.dumps(body))


def test_a_quote_is_read_with_decimals_as_strings() -> None:
    quote = parse_quote(decode_object(ok(QUOTE), "quote"), needs=("bid",))
    assert (quote.quote_id, quote.bid, quote.ask, quote.quantity) == ("Q-1", Decimal("39990.5"), None,
                                                                     Decimal(10))
    assert quote.expires_at == datetime(2026, 11, 21, 10, 0, 5, 250000, tzinfo=UTC)
    both = parse_quote(QUOTE, needs=("bid", "ask"))
    assert (both.bid, both.ask) == (Decimal("39990.5"), Decimal(40010))


@pytest.mark.parametrize(("change", "needs", "reason"), [
    ({"bid": 39990.5}, ("bid",), 'quote.bid: must be a decimal string like "39990.5", got a JSON float'),
    ({"bid": None}, ("bid",), "quote.bid: is required for the side asked"),
    ({"ask": None}, ("bid", "ask"), "quote.ask: is required for the side asked"),
    ({"bid": "abc"}, ("bid",), "quote.bid: not a decimal number: 'abc'"),
    ({"quantity": "0"}, ("bid",), "quote.quantity: must be positive, got 0"),
    ({"quantity": None}, ("bid",), "quote.quantity: is required"),
    ({"expires_at": "tomorrow"}, ("bid",), "quote.expires_at: not an ISO 8601 timestamp: 'tomorrow'"),
    ({"expires_at": "2026-11-21T10:00:05"}, ("bid",), "quote.expires_at: timestamp has no time zone"),
    ({"quote_id": ""}, ("bid",), "quote.quote_id: must be a non-empty string"),
    ({"quote_id": 7}, ("bid",), "quote.quote_id: must be a non-empty string"),
])
def test_a_bad_quote_names_the_field(change: dict[str, Any], needs: tuple[str, ...], reason: str) -> None:
    with pytest.raises(DeskAnswerError) as caught:
        parse_quote({**QUOTE, **change}, needs=needs, raw="raw text")
    assert caught.value.reason.startswith(reason)
    assert caught.value.raw == "raw text"


@pytest.mark.parametrize(("response", "reason"), [
    (DeskResponse(200, "<html>oops"), "quote: not JSON"),
    (DeskResponse(200, "[1, 2]"), "quote: must be a JSON object, got list"),
    (DeskResponse(200, "{}" + " " * 10, truncated=True), "quote: answer larger than the limit"),
])
def test_undecodable_answers(response: DeskResponse, reason: str) -> None:
    with pytest.raises(DeskAnswerError) as caught:
        decode_object(response, "quote")
    assert caught.value.reason.startswith(reason) and caught.value.raw == response.text


def test_orders_filled_rejected_pending() -> None:
    filled = parse_order({"client_order_id": "rfq-1", "status": "filled", "price": "39990",
                          "quantity": "10", "trade_id": "T-1"}, "rfq-1")
    assert (filled.status, filled.price, filled.quantity, filled.trade_id, filled.final) == (
        OrderStatus.FILLED, Decimal(39990), Decimal(10), "T-1", True)
    by_order_id = parse_order({"client_order_id": "rfq-1", "status": "filled", "price": "1",
                               "quantity": "1", "order_id": "D-9"}, "rfq-1")
    assert by_order_id.trade_id == "D-9"
    rejected = parse_order({"client_order_id": "rfq-1", "status": "rejected", "reason": "quote expired"},
                           "rfq-1")
    assert (rejected.status, rejected.reason) == (OrderStatus.REJECTED, "quote expired")
    silent = parse_order({"client_order_id": "rfq-1", "status": "rejected"}, "rfq-1")
    assert silent.reason == "no reason given"
    assert not parse_order({"client_order_id": "rfq-1", "status": "pending"}, "rfq-1").final


@pytest.mark.parametrize(("data", "reason"), [
    ({"client_order_id": "rfq-2", "status": "filled"}, "order.client_order_id: is 'rfq-2', the order asked"),
    ({"client_order_id": "rfq-1", "status": "done"},
     "order.status: must be one of filled, rejected, pending"),
    ({"client_order_id": "rfq-1", "status": "filled", "quantity": "1", "trade_id": "T"},
     "order.price: is required"),
    ({"client_order_id": "rfq-1", "status": "filled", "price": 1.5, "quantity": "1", "trade_id": "T"},
     "order.price: must be a decimal string"),
    ({"client_order_id": "rfq-1", "status": "filled", "price": "1", "quantity": "1"},
     "order.order_id: must be"),
])
def test_a_bad_order_names_the_field(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(DeskAnswerError) as caught:
        parse_order(data, "rfq-1")
    assert caught.value.reason.startswith(reason)


def test_error_reasons_quote_the_desk() -> None:
    assert error_reason(ok({"error": "declined", "message": "no appetite"}, 422)) == (
        "HTTP 422: declined: no appetite")
    assert error_reason(ok({"message": "down"}, 503)) == "HTTP 503: down"
    html = DeskResponse(502, "<html>\n Bad   Gateway</html>")
    assert error_reason(html) == "HTTP 502: <html> Bad Gateway</html>"
    assert error_reason(DeskResponse(500, "")) == "HTTP 500"


# --- planning --------------------------------------------------------------------------------


def config(**overrides: Any) -> RestDealerConfig:
    fields: dict[str, Any] = {"base_url": "https://desk.example/api", "state_dir": "/tmp/unused",
                              "auth": {"scheme": "bearer", "token_env": "T"}, "instruments": TEMPLATES}
    fields.update(overrides)
    return RestDealerConfig.model_validate(fields)


def plan(**kwargs: Any) -> QuotePlan:
    made = plan_quote(kwargs.pop("cfg", config()), rfq(**kwargs))
    assert isinstance(made, QuotePlan), made
    return made


def test_one_way_single_instrument() -> None:
    sell = plan()
    [request] = sell.requests
    assert {k: request.body[k] for k in ("instrument", "side", "quantity", "allow_partial")} == {
        "instrument": "BTC-25DEC26", "side": "sell", "quantity": "10", "allow_partial": False}
    [side] = request.sides
    assert (side.package_side, side.order_side, side.price_field, side.sign) == (
        QuoteSide.BID, Side.SELL, "bid", 1)
    buy = plan(legs=(Leg(DEC_FUT, Side.BUY),), direction=Direction.BUY)
    [side] = buy.requests[0].sides
    assert (buy.requests[0].body["side"], side.price_field, side.sign) == ("buy", "ask", 1)


def test_a_leg_against_the_package_side_flips_the_sign() -> None:
    [request] = plan(legs=(Leg(DEC_FUT, Side.BUY),), direction=Direction.SELL).requests
    [side] = request.sides
    assert (request.body["side"], side.order_side) == ("buy", Side.BUY)
    assert (side.price_field, side.sign) == ("ask", -1)
    assert side.to_engine(Decimal(40010)) == Decimal(-40010)


def test_quote_requests_carry_the_unit_and_the_close_policy() -> None:
    [request] = plan().requests
    assert (request.body["quantity_unit"], request.body["close_policy"]) == ("BTC", "all_answered")
    [request] = plan(quantity_unit="PH/s/day", close_policy="deadline").requests
    assert (request.body["quantity_unit"], request.body["close_policy"]) == ("PH/s/day", "deadline")
    for made in plan(direction=Direction.TWO_WAY).requests:  # every request of a two-way RFQ
        assert made.body["quantity_unit"] == "BTC"


def test_error_codes() -> None:
    assert error_code(DeskResponse(404, '{"error": "not_found", "message": "no order"}')) == "not_found"
    assert error_code(DeskResponse(404, "404: Not Found")) == ""
    assert error_code(DeskResponse(404, '{"error": 7}')) == ""
    assert error_code(DeskResponse(422, '["unsupported_unit"]')) == ""


def test_a_journal_line_from_before_quantity_unit_loads(tmp_path: Path) -> None:
    line = intent().to_dict()
    del line["quantity_unit"]
    path = tmp_path / "desk.orders.jsonl"
    path.write_text(json.dumps(line) + "\n")
    intents, _ = Journal(path).load()
    assert intents["e-1"].quantity_unit == "" and intents["e-1"] == intent()


def test_two_way_per_side_and_single_call() -> None:
    legs = (Leg(DEC_FUT, Side.BUY),)
    per_side = plan(legs=legs, direction=Direction.TWO_WAY)
    assert [(r.body["side"], r.needs) for r in per_side.requests] == [("sell", ("bid",)), ("buy", ("ask",))]
    assert per_side.requests[0].body["client_rfq_id"].endswith(".bid")
    single = plan(legs=legs, direction=Direction.TWO_WAY, cfg=config(two_way="single_call"))
    [request] = single.requests
    assert request.body["side"] == "two_way" and request.needs == ("bid", "ask")
    assert [(s.package_side, s.order_side) for s in request.sides] == [
        (QuoteSide.BID, Side.SELL), (QuoteSide.ASK, Side.BUY)]


def test_packages() -> None:
    collar = (Leg(PUT_35K, Side.BUY), Leg(CALL_50K, Side.SELL))
    refused = plan_quote(config(), rfq(legs=collar, direction=Direction.BUY))
    assert refused == "multi-leg package: this desk quotes single instruments only (quotes_packages = false)"
    two_way = plan(legs=collar, direction=Direction.TWO_WAY, cfg=config(quotes_packages=True))
    bid, ask = two_way.requests
    # legs are written for buying; the bid request lists them as the requester sells the package
    assert [leg["side"] for leg in ask.body["legs"]] == ["buy", "sell"]
    assert [leg["side"] for leg in bid.body["legs"]] == ["sell", "buy"]
    assert bid.body["legs"][0] == {"instrument": "BTC-26FEB27-35000-P", "side": "sell", "ratio": "1"}
    assert [s.sign for r in two_way.requests for s in r.sides] == [1, 1]


def test_what_cannot_be_asked_is_a_decline_reason() -> None:
    no_futures = config(instruments={"option": TEMPLATES["option"]})
    assert plan_quote(no_futures, rfq()) == "instrument not quoted by this desk: future:BTC:USD:2026-12-25"
    ratio = plan_quote(config(), rfq(legs=(Leg(DEC_FUT, Side.SELL, Decimal("0.5")),)))
    assert ratio == "leg ratio 0.5: a single instrument is quoted at ratio 1 only"


# --- journal ---------------------------------------------------------------------------------


def intent(eid: str = "e-1") -> OrderIntent:
    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    return OrderIntent(ExecutionId(eid), f"rfq-{eid}", RfqId("r-1"), QuoteId("Q-a/Q-b"), "Q-a", Side.SELL,
                       Decimal("39990.5"), Decimal(10), -1, now + timedelta(seconds=2), now)


def test_journal_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j" / "desk.orders.jsonl")
    assert journal.load() == ({}, {})
    journal.append(intent())
    outcome = OrderOutcome(ExecutionId("e-1"), True, datetime(2026, 11, 21, tzinfo=UTC),
                           price=Decimal("39990.5"), quantity=Decimal(10), trade_id="T-1")
    journal.append(outcome)
    with journal.path.open("ab") as handle:
        handle.write(b'{"v":1,"type":"intent","execu')  # a crash mid-write
    intents, outcomes = journal.load()
    assert intents == {"e-1": intent()} and outcomes == {"e-1": outcome}
    assert journal.path.read_bytes().endswith(b"}\n")  # the torn line was cut
    journal.append(intent("e-2"))
    assert set(journal.load()[0]) == {"e-1", "e-2"}
    assert intent().order_body() == {
        "client_order_id": "rfq-e-1", "quote_id": "Q-a", "side": "sell", "price": "39990.5",
        "quantity": "10", "quantity_unit": "", "time_in_force": "fok",
        "expires_at": "2026-11-21T10:00:02.000000Z"}  # a line from before quantity_unit
    with_unit = replace(intent("e-3"), quantity_unit="BTC")
    assert with_unit.order_body()["quantity_unit"] == "BTC"
    journal.append(with_unit)
    assert journal.load()[0]["e-3"] == with_unit


def test_a_corrupt_journal_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "desk.orders.jsonl"
    path.write_text('{"v":1,"type":"nonsense"}\n')
    with pytest.raises(JournalError, match=r"desk.orders.jsonl:1: bad journal line"):
        Journal(path).load()
