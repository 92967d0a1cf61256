"""Helpers on the path from the last quote to the award, made cheaper: checked against the
former implementations, kept here verbatim. ``format_ts`` (every timestamp in the audit
payloads) and ``RfqSpec.requester_side`` / ``award_side`` (asked several times per quote)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rfq_engine.domain import Direction, QuoteSide, RfqSpec, Side, format_ts

# --- format_ts ---------------------------------------------------------------------------------


def old_format_ts(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be UTC-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Stamp(datetime):
    """A datetime subclass that formats itself its own way."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "not an ISO timestamp"


def outcome(fn: Any, ts: datetime) -> tuple[str, str]:
    try:
        return "ok", fn(ts)
    except Exception as exc:  # compared, not swallowed
        return "raised", f"{type(exc).__name__}: {exc}"


offsets = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)),
                    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
zones = st.one_of(st.just(UTC), offsets, st.timezones(), st.none())


@settings(max_examples=1500, deadline=None)
@given(st.datetimes(timezones=zones), st.booleans())
@example(datetime(2026, 11, 21, 10, 0, tzinfo=UTC), False)
@example(datetime(2026, 11, 21, 10, 0, 0, 1, tzinfo=UTC), False)
@example(datetime(2026, 11, 21, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))), False)
@example(datetime(999, 12, 31, 23, 59, 59, 5, tzinfo=UTC), False)  # %Y does not pad
@example(datetime(1000, 1, 1, 4, 0, tzinfo=timezone(timedelta(hours=5))), False)  # to 999
@example(datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1))), False)  # overflow
@example(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), False)
@example(datetime(2026, 11, 21, 10, 0), False)  # naive: refused
@example(datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC), True)
def test_format_ts_matches_the_former_implementation(ts: datetime, subclass: bool) -> None:
    if subclass:
        ts = Stamp(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond,
                   ts.tzinfo, fold=ts.fold)
    assert outcome(format_ts, ts) == outcome(old_format_ts, ts)


def test_format_ts_of_a_fold() -> None:
    ts = datetime(2026, 11, 1, 1, 30, 0, 250, tzinfo=timezone(timedelta(hours=-4)), fold=1)
    assert format_ts(ts) == old_format_ts(ts) == "2026-11-01T05:30:00.000250Z"


# --- requester_side / award_side ---------------------------------------------------------------


def old_requester_side(spec: RfqSpec) -> Side:
    if spec.direction is Direction.TWO_WAY:
        assert spec.private_side is not None
        return spec.private_side
    return Side(spec.direction.value)


def old_award_side(spec: RfqSpec) -> QuoteSide:
    return QuoteSide.BID if old_requester_side(spec) is Side.SELL else QuoteSide.ASK


BASE = RfqSpec.from_dict({
    "legs": [{"instrument": {"kind": "spot", "underlying": "BTC", "quote_ccy": "USD"},
              "side": "buy"}],
    "direction": "buy", "quantity": "1", "quantity_unit": "BTC", "dealers": ["d1"],
    "mandate": "treasury",
})


def side_outcome(fn: Any, spec: RfqSpec) -> tuple[str, object]:
    try:
        return "ok", fn(spec)
    except Exception as exc:  # compared, not swallowed
        return "raised", type(exc).__name__


@pytest.mark.parametrize(
    ("direction", "private_side"),
    list(itertools.product([*Direction, "sell", "buy", "two_way"], [None, *Side])),
)
def test_sides_match_the_former_implementation(direction: Any, private_side: Side | None) -> None:
    spec = replace(BASE, direction=direction, private_side=private_side)
    assert side_outcome(lambda s: s.requester_side, spec) == side_outcome(old_requester_side, spec)
    assert side_outcome(lambda s: s.award_side, spec) == side_outcome(old_award_side, spec)
