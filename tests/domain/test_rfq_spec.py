"""RfqSpec and instrument validation: every error names its field and says why."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.domain import (
    Direction,
    HashpriceNdf,
    Option,
    QuoteSide,
    RfqSpec,
    Side,
    ValidationError,
    instrument_from_dict,
    instrument_to_dict,
)

FUT = {"kind": "future", "underlying": "btc", "quote_ccy": "USD", "expiry": "2026-12-25"}


def spec(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"legs": [{"instrument": FUT, "side": "sell"}], "direction": "sell",
                            "quantity": "100", "quantity_unit": "BTC", "dealers": ["a", "b"]}
    data.update(overrides)
    return data


def error(data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        RfqSpec.from_dict(data)
    return err.value


def test_valid_spec_round_trips() -> None:
    s = RfqSpec.from_dict(spec(client_rfq_id="x", limit_price="39000", tags=["program"]))
    assert s.quantity == Decimal(100) and s.legs[0].instrument.underlying == "BTC"
    assert s.award_side is QuoteSide.BID
    assert RfqSpec.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"quantity": 1.5}, "quantity", "JSON float"),
    ({"quantity": "-1"}, "quantity", "positive"),
    ({"quantity": "abc"}, "quantity", "not a decimal"),
    ({"direction": "long"}, "direction", "buy"),
    ({"legs": []}, "legs", "non-empty"),
    ({"legs": [{"instrument": FUT, "side": "hold"}]}, "legs[0].side", "buy"),
    ({"legs": [{"instrument": {**FUT, "expiry": "soon"}, "side": "buy"}]},
     "legs[0].instrument.expiry", "date"),
    ({"legs": [{"instrument": {**FUT, "kind": "swap"}, "side": "buy"}]},
     "legs[0].instrument.kind", "unknown kind"),
    ({"legs": [{"instrument": FUT, "side": "buy", "ratio": "0"}]}, "legs[0].ratio", "positive"),
    ({"dealers": ["a", "a"]}, "dealers", "twice"),
    ({"dealers": []}, "dealers", "non-empty"),
    ({"window_ms": 10}, "window_ms", "50"),
    ({"direction": "two_way"}, "private_side", "never sent"),
    ({"private_side": "buy"}, "private_side", "only a two_way"),
    ({"allow_partial": "yes"}, "allow_partial", "true or false"),
])
def test_errors_name_the_field(overrides: dict[str, Any], field: str, words: str) -> None:
    err = error(spec(**overrides))
    assert err.field == field
    assert words in err.reason


def test_missing_option_fields_are_named() -> None:
    opt = {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": "2027-02-26"}
    err = error(spec(legs=[{"instrument": opt, "side": "buy"}]))
    assert err.field == "legs[0].instrument.strike" and err.reason == "is required"


def test_ndf_unit_and_round_trip() -> None:
    ndf = {"kind": "hashprice_ndf", "underlying": "HASHPRICE", "quote_ccy": "USD",
           "start": "2026-12-01", "days": 30}
    s = RfqSpec.from_dict(spec(legs=[{"instrument": ndf, "side": "sell"}], quantity_unit=None))
    assert s.quantity_unit == "PH/s/day"
    instrument = s.legs[0].instrument
    assert isinstance(instrument, HashpriceNdf) and instrument.end.isoformat() == "2026-12-31"
    wrong_unit = spec(legs=[{"instrument": ndf, "side": "sell"}], quantity_unit="BTC")
    assert error(wrong_unit).field == "quantity_unit"


def test_instrument_round_trip_keeps_decimal_strike() -> None:
    data = {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": "2027-02-26",
            "strike": "35000.50", "option_type": "put"}
    inst = instrument_from_dict(data)
    assert isinstance(inst, Option) and inst.strike == Decimal("35000.50")
    assert instrument_from_dict(instrument_to_dict(inst)) == inst
    assert instrument_to_dict(inst)["strike"] == "35000.5"


def test_two_way_orientation_and_leg_signs() -> None:
    put = {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": "2027-02-26",
           "strike": "35000", "option_type": "put"}
    call = {**put, "strike": "50000", "option_type": "call"}
    collar = RfqSpec.from_dict(spec(direction="two_way", private_side="buy", legs=[
        {"instrument": put, "side": "buy"}, {"instrument": call, "side": "sell"}]))
    assert collar.requester_side is Side.BUY and collar.award_side is QuoteSide.ASK
    assert collar.package.leg_signs(Direction.TWO_WAY) == (1, -1)
    assert collar.package.leg_signs(Direction.SELL) == (-1, 1)
