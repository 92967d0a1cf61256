"""The FIX kind's pure parts: framing and values, config, sequence-number file, the mapping."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from dealer_adapters.factory import DealerSpec
from dealer_adapters.fix.codec import FixMessage, Framer, Garbled, encode, fix_decimal, parse_fix_time
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.mapping import plan_quote, read_execution, read_quote_prices
from dealer_adapters.fix.seqstore import SeqNumbers, SeqStore
from rfq_engine.domain import Direction, Future, Leg, QuoteSide, RfqNew, Side, Spot, ValidationError

HEADER = [(49, "DESK"), (56, "ENGINE"), (34, "7"), (52, "20261202-18:00:00.000")]
EXPIRY = date(2027, 2, 26)


def config(**overrides: Any) -> FixDealerConfig:
    symbols = {"future:BTC:USD:2027-02-26": "BTC-26FEB27", "spot:BTC:USD": "BTC/USD"}
    fields: dict[str, Any] = {"host": "127.0.0.1", "port": 9878, "sender_comp_id": "ENGINE",
                              "target_comp_id": "DESK", "state_dir": "/tmp/x", "symbols": symbols}
    fields.update(overrides)
    return FixDealerConfig.model_validate(fields)


def rfq(direction: Direction = Direction.SELL, *legs: Leg, unit: str = "BTC") -> RfqNew:
    legs = legs or (Leg(Future("BTC", "USD", EXPIRY), Side.SELL),)
    return RfqNew("R1", tuple(legs), Decimal("10"), unit, direction, False,
                  datetime.now(UTC) + timedelta(seconds=2))


def message(*body: tuple[int, str], msg_type: str = "S") -> FixMessage:
    [parsed] = list(Framer().feed(encode(msg_type, HEADER, list(body))))
    assert isinstance(parsed, FixMessage)
    return parsed


# --- framing and values ---------------------------------------------------------------------


def test_a_message_split_anywhere_is_one_message() -> None:
    data = encode("0", HEADER, [(112, "HELLO")]) * 2
    framer = Framer()
    out = [m for i in range(0, len(data), 5) for m in framer.feed(data[i:i + 5])]
    assert [type(m) for m in out] == [FixMessage, FixMessage]
    assert isinstance(out[0], FixMessage) and out[0].get(112) == "HELLO" and out[0].msg_type == "0"


def test_a_wrong_checksum_or_body_length_is_garbled_and_the_next_message_is_read() -> None:
    good = encode("0", HEADER, [(112, "A")])
    bad_sum = good[:-4] + (b"000" if good[-4:-1] != b"000" else b"001") + b"\x01"
    length = good.split(b"\x01")[1]
    too_short = good.replace(length, b"9=" + str(int(length[2:]) - 5).encode(), 1)
    for bad in (bad_sum, too_short):
        out = list(Framer().feed(bad + good))
        assert isinstance(out[0], Garbled) and isinstance(out[-1], FixMessage), out
        assert all(isinstance(m, Garbled) for m in out[:-1])
    too_long = good.replace(length, b"9=" + str(int(length[2:]) + 40).encode(), 1)
    framer = Framer()
    assert list(framer.feed(too_long)) == []  # it waits for the bytes its BodyLength claims
    out = list(framer.feed(good + good))  # those bytes swallow the next message, as QuickFIX's
    assert isinstance(out[0], Garbled) and isinstance(out[-1], FixMessage)


def test_bytes_before_a_begin_string_are_garbled() -> None:
    out = list(Framer().feed(b"junk\x01" + encode("0", HEADER, [])))
    assert isinstance(out[0], Garbled) and isinstance(out[1], FixMessage)


@pytest.mark.parametrize("text", ["1e5", "NaN", "Infinity", "1,5", "", None, "1" * 40, "0x10"])
def test_a_decimal_field_is_plain_and_bounded(text: str | None) -> None:
    with pytest.raises(ValidationError, match=r"BidPx\(132\)"):
        fix_decimal(text, "BidPx", 132)


def test_a_decimal_field_goes_straight_to_decimal() -> None:
    assert fix_decimal("39999.125", "BidPx", 132) == Decimal("39999.125")
    assert fix_decimal("-0.5", "BidPx", 132) == Decimal("-0.5")


def test_timestamps_in_milliseconds_or_microseconds() -> None:
    assert parse_fix_time("20261202-18:00:00.123", "T", 60) == datetime(2026, 12, 2, 18, 0, 0, 123000, UTC)
    assert parse_fix_time("20261202-18:00:00.123456", "T", 60).microsecond == 123456
    with pytest.raises(ValidationError):
        parse_fix_time("2026-12-02T18:00:00", "T", 60)


def test_a_group_count_that_does_not_match_is_refused() -> None:
    msg = message((146, "2"), (55, "A"), msg_type="R")
    with pytest.raises(ValidationError, match="146"):
        msg.groups(146, 55)


# --- config --------------------------------------------------------------------------------------


def test_config_refuses_unknown_keys_bad_symbols_and_secrets_in_the_file() -> None:
    with pytest.raises(PydanticValidationError, match="password"):
        config(password="hunter2")
    with pytest.raises(PydanticValidationError, match="unknown instrument kind"):
        config(symbols={"swap:BTC:USD": "X"})
    with pytest.raises(PydanticValidationError, match="same instrument"):
        config(symbols={"option:BTC:USD:2027-02-26:35000:put": "A",
                        "option:BTC:USD:2027-02-26:35000.0:put": "B"})
    with pytest.raises(PydanticValidationError):
        config(sender_comp_id="has space")


def test_the_kind_is_registered_and_validates_its_table() -> None:
    spec = DealerSpec.model_validate({"id": "desk-f", "kind": "fix", "fix": {
        "host": "h", "port": 1, "sender_comp_id": "A", "target_comp_id": "B", "state_dir": "/tmp",
        "symbols": {"spot:BTC:USD": "BTC/USD"}}})
    assert isinstance(spec.settings(), FixDealerConfig)
    with pytest.raises(PydanticValidationError, match=r"\[dealers.fix\].port"):
        DealerSpec.model_validate({"id": "desk-f", "kind": "fix", "fix": {
            "host": "h", "port": 0, "sender_comp_id": "A", "target_comp_id": "B", "state_dir": "/tmp",
            "symbols": {"spot:BTC:USD": "BTC/USD"}}})


# --- sequence numbers ------------------------------------------------------------------------------


def test_sequence_numbers_only_grow_and_belong_to_one_session(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = SeqStore(path, "FIX.4.4:A->B")
    assert repr(store.load()) == repr(SeqNumbers(1, 1))
    store.save(SeqNumbers(5, 3))
    store.save(SeqNumbers(4, 7))  # a late write of an older next_out never takes it back
    assert json.loads(path.read_text())["next_out"] == 5
    assert SeqStore(path, "FIX.4.4:A->B").load().next_in == 7
    store.save(SeqNumbers(1, 1), reset=True)
    assert SeqStore(path, "FIX.4.4:A->B").load().next_out == 1
    with pytest.raises(ValueError, match="holds session"):
        SeqStore(path, "FIX.4.4:A->C").load()


# --- mapping --------------------------------------------------------------------------------------


def test_a_sell_rfq_asks_the_bid_of_the_symbol() -> None:
    plan = plan_quote(config(), rfq(), "R1", datetime.now(UTC))
    assert not isinstance(plan, str)
    assert (131, "R1") in plan.body and (55, "BTC-26FEB27") in plan.body and (54, "2") in plan.body
    assert plan.sides[QuoteSide.BID].price_tag == 132 and plan.sides[QuoteSide.BID].sign == 1
    prices, quantity = read_quote_prices(message((117, "Q"), (132, "39999"), (38, "10")), plan)
    assert prices == {QuoteSide.BID: Decimal("39999")} and quantity == Decimal("10")


def test_a_leg_written_against_the_package_flips_the_side_and_the_sign() -> None:
    buys = Leg(Spot("BTC", "USD"), Side.BUY)
    plan = plan_quote(config(), rfq(Direction.SELL, buys), "R1", datetime.now(UTC))
    assert not isinstance(plan, str)
    side = plan.sides[QuoteSide.BID]
    assert (side.fix_side, side.price_tag, side.sign) == ("1", 133, -1)
    prices, _ = read_quote_prices(message((133, "40010"), (135, "10")), plan)
    assert prices[QuoteSide.BID] == Decimal("-40010")


def test_a_two_way_rfq_asks_both_sides_without_a_side() -> None:
    plan = plan_quote(config(), rfq(Direction.TWO_WAY, Leg(Spot("BTC", "USD"), Side.BUY)), "R1",
                      datetime.now(UTC))
    assert not isinstance(plan, str)
    assert not any(tag == 54 for tag, _ in plan.body) and set(plan.sides) == {QuoteSide.BID, QuoteSide.ASK}
    with pytest.raises(ValidationError, match=r"OfferPx\(133\)"):
        read_quote_prices(message((132, "39999"), (38, "10")), plan)


def test_what_the_desk_cannot_be_asked_is_a_decline_reason() -> None:
    package = (Leg(Spot("BTC", "USD"), Side.SELL), Leg(Future("BTC", "USD", EXPIRY), Side.BUY))
    now = datetime.now(UTC)
    assert "quotes_packages" in str(plan_quote(config(), rfq(Direction.SELL, *package), "R", now))
    assert "NewOrderSingle" in str(plan_quote(config(quotes_packages=True, award_style="new_order_single"),
                                              rfq(Direction.SELL, *package), "R", now))
    assert "unit PH/s/day" in str(plan_quote(config(), rfq(unit="PH/s/day"), "R", now))
    assert "not quoted" in str(plan_quote(config(), rfq(Direction.SELL, Leg(Spot("ETH", "USD"), Side.SELL)),
                                          "R", now))
    plan = plan_quote(config(quotes_packages=True), rfq(Direction.SELL, *package), "R", now)
    assert not isinstance(plan, str) and (146, "2") in plan.body and plan.symbol == "[N/A]"


def test_execution_reports() -> None:
    filled = read_execution(message((11, "rfq-E"), (37, "O1"), (39, "2"), (6, "39999"), (14, "10"),
                                    msg_type="8"))
    assert (filled.final, filled.filled, filled.price, filled.order_id) == (True, True, Decimal(39999), "O1")
    killed = read_execution(message((11, "rfq-E"), (37, "O1"), (39, "4"), (58, "no fill"), msg_type="8"))
    assert killed.final and not killed.filled and "canceled" in killed.reason
    unknown = read_execution(message((11, "rfq-E"), (39, "8"), (103, "5"), (150, "I"), msg_type="8"))
    assert not unknown.final and unknown.unknown_order
    pending = read_execution(message((11, "rfq-E"), (39, "0"), msg_type="8"))
    assert not pending.final and not pending.unknown_order
    with pytest.raises(ValidationError, match=r"AvgPx\(6\)"):
        read_execution(message((11, "rfq-E"), (37, "O1"), (39, "2"), (6, "1e3"), (14, "10"), msg_type="8"))
