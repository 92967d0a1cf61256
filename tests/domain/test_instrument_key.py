"""The instrument key: the colon-separated name a dealer's configuration keys instruments by
(a REST desk's ``instrument_overrides``, a FIX desk's ``symbols``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from rfq_engine.domain import (
    Future,
    HashpriceNdf,
    Instrument,
    Option,
    OptionType,
    Perpetual,
    Spot,
    ValidationError,
)
from rfq_engine.domain.instruments import instrument_key, keyed_by_instrument, parse_instrument_key

PUT = Option("BTC", "USD", date(2027, 2, 5), Decimal("3.5E+4"), OptionType.PUT)
NDF = HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30)


@pytest.mark.parametrize(("instrument", "key"), [
    (Spot("BTC", "USD"), "spot:BTC:USD"),
    (Perpetual("ETH", "USDC"), "perpetual:ETH:USDC"),
    (Future("BTC", "USD", date(2027, 2, 26)), "future:BTC:USD:2027-02-26"),
    (PUT, "option:BTC:USD:2027-02-05:35000:put"),
    (Option("BTC", "USD", date(2027, 2, 5), Decimal("0.50"), OptionType.CALL),
     "option:BTC:USD:2027-02-05:0.5:call"),
    (NDF, "hashprice_ndf:HASHPRICE:USD:2026-12-01:30"),
])
def test_each_kind_has_one_key_and_reads_back(instrument: Instrument, key: str) -> None:
    assert instrument_key(instrument) == key
    assert parse_instrument_key(key) == instrument


def test_keys_written_otherwise_name_the_same_instrument() -> None:
    """Codes in lower case and a strike written with an exponent or trailing zeros are the
    same instrument: its canonical key is one string (what the adapters' configs compare)."""
    assert instrument_key(parse_instrument_key("future:btc:usd:2027-02-26")) == "future:BTC:USD:2027-02-26"
    assert parse_instrument_key("option:BTC:USD:2027-02-05:35000.00:put") == PUT
    assert parse_instrument_key("option:BTC:USD:2027-02-05:3.5E+4:put") == PUT


@pytest.mark.parametrize(("key", "message"), [
    ("bond:X:Y", "bond:X:Y: unknown instrument kind 'bond'; one of spot, perpetual, future, option, "
                 "hashprice_ndf"),
    ("option:BTC:USD:2027-02-26", "option keys are kind:underlying:quote_ccy:expiry:strike:option_type"),
    ("spot:BTC:USD:extra", "spot keys are kind:underlying:quote_ccy"),
    ("future:BTC:USD:26feb", "future:BTC:USD:26feb: expiry: not a date"),
    ("option:BTC:USD:2027-02-26:-1:put", "strike"),
    ("option:BTC:USD:2027-02-26:35000:straddle", "option_type: must be 'put' or 'call'"),
    ("hashprice_ndf:HASHPRICE:USD:2026-12-01:30d", "days must be a whole number, got '30d'"),
    ("hashprice_ndf:HASHPRICE:USD:2026-12-01:0", "days: must be a whole number of days 1..3660"),
    ("spot::USD", "underlying: must be a currency/asset code"),
    ("", "unknown instrument kind ''"),
])
def test_a_bad_key_is_a_validation_error_naming_it(key: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_instrument_key(key)
    assert caught.value.field == key
    assert message in str(caught.value)


def test_a_config_table_is_keyed_by_canonical_instrument_keys() -> None:
    names = {"future:btc:usd:2027-02-26": "XBTH27", "option:BTC:USD:2027-02-05:3.5E+4:put": "P35"}
    assert keyed_by_instrument(names, lambda _: None) == {
        "future:BTC:USD:2027-02-26": "XBTH27", "option:BTC:USD:2027-02-05:35000:put": "P35"}


@pytest.mark.parametrize(("entries", "message"), [
    ({"spot:BTC:USD": "", "spot:ETH:USD": "E"}, "spot:BTC:USD: empty"),
    ({"spot:BTC:USD": "B", "spot:btc:usd": "C"}, "spot:btc:usd: names the same instrument as another key"),
    ({"spot:BTC": "B"}, "spot keys are kind:underlying:quote_ccy"),
    ({"spot:BTC:USD": "B", "spot:btc:usd": ""}, "spot:btc:usd: empty"),  # the value first
])
def test_a_bad_table_entry_is_an_error_naming_its_key(entries: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        keyed_by_instrument(entries, lambda value: None if value else "empty")
    assert message in str(caught.value)
