"""The coin-premium conversion (``rfq_engine.domain.premium``) and its place in a quote body."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from rfq_engine.domain import DealerId, Quote, ValidationError, body_to_dict, format_ts, parse_body, utc_now
from rfq_engine.domain.events import QuoteReceived, decode, encode
from rfq_engine.domain.premium import CoinPremium, IndexPrice, convert_premium, option_fee

NOW = utc_now()


def premium_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"currency": "BTC", "ask": "0.0150", "fee_ask": "0.0003",
                            "index": {"price": "60000", "currency": "USD", "at": format_ts(NOW),
                                      "source": "deribit public/ticker BTC-27MAR26-50000-P index_price"}}
    body.update(overrides)
    return body


def quote_body(**premium: Any) -> dict[str, Any]:
    return {"rfq_id": "r", "quote_id": "q", "quantity": "1",
            "valid_until": format_ts(NOW + timedelta(seconds=2)), "premium": premium_body(**premium)}


def parse(body: dict[str, Any]) -> Any:
    return parse_body("quote", body, dealer_id=DealerId("d"), msg_id="m", received_at=NOW)


def test_the_worked_example_a_50k_put_at_0_0150_btc_with_the_index_at_60000() -> None:
    index = IndexPrice(D(60000), "USD", NOW, "test")
    bare = convert_premium(CoinPremium("BTC", None, D("0.0150"), index))
    assert bare.ask == D(900)  # USD per BTC of notional
    fee = option_fee(D("0.0150"), underlying_rate=D("0.0003"), cap_rate=D("0.125"))
    assert fee == D("0.0003")  # the lesser of 0.0003 and 12.5% of 0.0150 (0.001875)
    with_fee = convert_premium(CoinPremium("BTC", D("0.0140"), D("0.0150"), index, fee, fee))
    assert (with_fee.all_in_ask, with_fee.ask) == (D("0.0153"), D(918))
    assert (with_fee.all_in_bid, with_fee.bid) == (D("0.0137"), D(822))
    assert option_fee(D("0.0010"), underlying_rate=D("0.0003"), cap_rate=D("0.125")) == D("0.000125")


def test_a_converted_price_is_rounded_against_the_requester() -> None:
    index = IndexPrice(D("60000.123456789"), "USD", NOW, "test")
    done = convert_premium(CoinPremium("BTC", D("0.0151"), D("0.0151"), index))
    exact = D("0.0151") * D("60000.123456789")  # 906.0018641975139
    assert done.bid == D("906.00186419") < exact < done.ask == D("906.0018642")


def test_a_quote_body_with_a_premium_parses_to_its_conversion_and_back() -> None:
    quote = parse(quote_body())
    assert isinstance(quote, Quote) and quote.conversion is not None
    assert (quote.bid, quote.ask) == (None, D(918))
    assert quote.conversion.premium.index.source.startswith("deribit public/ticker")
    assert body_to_dict(quote)["premium"] == {
        "currency": "BTC", "ask": "0.015", "fee_ask": "0.0003",
        "index": {"price": "60000", "currency": "USD", "at": format_ts(NOW),
                  "source": "deribit public/ticker BTC-27MAR26-50000-P index_price"}}
    again = parse({**body_to_dict(quote)})
    assert again.conversion == quote.conversion


@pytest.mark.parametrize(("body", "field"), [
    ({**quote_body(), "ask": "918"}, "body.premium"),
    (quote_body(extra="1"), "body.premium.extra"),
    (quote_body(index={"price": "60000", "currency": "USD", "at": format_ts(NOW), "source": "s",
                       "x": 1}), "body.premium.index.x"),
    (quote_body(index={"price": "60000", "currency": "USD", "source": "s",
                       "at": format_ts(NOW - timedelta(seconds=31))}), "body.premium.index.at"),
    (quote_body(index={"price": "60000", "currency": "USD", "source": "s",
                       "at": format_ts(NOW + timedelta(seconds=6))}), "body.premium.index.at"),
    (quote_body(index={"price": "0", "currency": "USD", "at": format_ts(NOW), "source": "s"}),
     "body.premium.index.price"),
    (quote_body(index={"price": "60000", "currency": "BTC", "at": format_ts(NOW), "source": "s"}),
     "body.premium.index.currency"),
    (quote_body(ask=None), "body.premium"),
    (quote_body(ask=0.015), "body.premium.ask"),
    (quote_body(ask="1e999"), "body.premium.ask"),
    (quote_body(fee_ask="-0.1"), "body.premium.fee_ask"),
    (quote_body(currency="B T C"), "body.premium.currency"),
])
def test_a_bad_premium_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(body)
    assert caught.value.field == field


def test_quote_received_carries_the_conversion_as_an_optional_key() -> None:
    quote = parse(quote_body())
    assert quote.conversion is not None
    event = QuoteReceived("d", "q", quote.bid, quote.ask, quote.quantity, quote.valid_until,
                          quote.received_at, "m", quote.conversion.to_dict())
    payload = encode(event)
    assert payload["conversion"]["version"] == 1
    assert payload["conversion"]["ask"] == {"premium": "0.015", "fee": "0.0003", "all_in": "0.0153",
                                            "price": "918"}
    assert decode("quote.received", payload) == event
    plain = encode(QuoteReceived("d", "q", D(1), None, D(1), NOW, NOW, "m"))
    assert "conversion" not in plain and "v" not in plain  # an old store's payload, unchanged
