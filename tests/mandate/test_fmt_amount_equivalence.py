"""``fmt_amount`` (fixed rounding context, no ``localcontext`` per call) against the former
implementation, kept here verbatim as the reference: the same text, or the same exception,
for every Decimal and every number of places from 0 to 18, whatever the thread's decimal
context says about rounding, precision or the Underflow trap (ccxt changes the last two as
a side effect). Other values and places, which no caller passes, are refused."""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rfq_engine.mandate.verdict import fmt_amount, fmt_bps, fmt_pct

ROUNDINGS = [
    decimal.ROUND_05UP, decimal.ROUND_CEILING, decimal.ROUND_DOWN, decimal.ROUND_FLOOR,
    decimal.ROUND_HALF_DOWN, decimal.ROUND_HALF_EVEN, decimal.ROUND_HALF_UP, decimal.ROUND_UP,
]


def reference_fmt_amount(value: Decimal, places: int = 2) -> str:
    """The implementation before the change, verbatim."""
    with localcontext() as ctx:
        ctx.prec = max(60, value.adjusted() + places + 2)
        rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(rounded, ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def outcome(fn: Callable[[Decimal, int], str], value: Decimal, places: int) -> tuple[str, str]:
    """("ok", text) or ("raised", the exception's type and text)."""
    try:
        return "ok", fn(value, places)
    except Exception as exc:  # compared, not swallowed
        return "raised", f"{type(exc).__name__}: {exc}"


@contextmanager
def thread_context(rounding: str, prec: int, trap_underflow: bool) -> Iterator[None]:
    with localcontext() as ctx:
        ctx.rounding = rounding
        ctx.prec = prec
        ctx.traps[decimal.Underflow] = trap_underflow
        yield


def assert_same(value: Decimal, places: int) -> None:
    expected = outcome(reference_fmt_amount, value, places)
    assert outcome(fmt_amount, value, places) == expected, (value, places)


# Coefficients up to 70 digits (the default context keeps 28), exponents from far below
# Emin to a few thousand (a larger one only makes a longer string of digits).
coefficients = st.integers(min_value=0, max_value=10**70 - 1)
exponents = st.one_of(
    st.integers(min_value=-40, max_value=40),
    st.integers(min_value=-1_100_000, max_value=3_000),
)
signs = st.sampled_from([0, 1])
places_ = st.one_of(st.sampled_from([2, 8]), st.integers(min_value=0, max_value=18))


@st.composite
def decimals_(draw: st.DrawFn) -> Decimal:
    digits = tuple(int(c) for c in str(draw(coefficients)))
    return Decimal((draw(signs), digits, draw(exponents)))


@st.composite
def half_way(draw: st.DrawFn) -> tuple[Decimal, int]:
    """A value exactly half-way between two multiples of 10**-places (ties: half-even),
    possibly with trailing zeros after the 5, and one just either side of it."""
    places = draw(st.integers(min_value=0, max_value=18))
    units = draw(st.integers(min_value=0, max_value=10**30))
    zeros = draw(st.integers(min_value=0, max_value=6))
    exact = decimal.Context(prec=100)
    tie = Decimal(f"{units}5{'0' * zeros}").scaleb(-(places + 1 + zeros), exact)
    nudge = Decimal(draw(st.sampled_from([0, 1, -1]))).scaleb(-(places + 3 + zeros), exact)
    value = exact.add(tie, nudge) if nudge else tie
    value = value.copy_negate() if draw(st.booleans()) else value
    return value, places


@settings(max_examples=1500, deadline=None)
@given(decimals_(), places_)
@example(Decimal("0"), 2)
@example(Decimal("-0"), 2)
@example(Decimal("-0.00"), 2)
@example(Decimal("-0.004"), 2)
@example(Decimal("-0.005"), 2)
@example(Decimal("-0.0051"), 2)
@example(Decimal("0E+7"), 2)
@example(Decimal("0E-1000000"), 8)
@example(Decimal("1E-999999"), 2)
@example(Decimal("-1E-1000020"), 2)
@example(Decimal("0.125"), 2)
@example(Decimal("0.135"), 2)
@example(Decimal("2.5"), 0)
@example(Decimal("3.5"), 0)
@example(Decimal("-2.5"), 0)
@example(Decimal("999.995"), 2)
@example(Decimal("-999999.995"), 2)
@example(Decimal("1234.5678"), 2)
@example(Decimal("12000000"), 2)
@example(Decimal("4.0E+4"), 2)
@example(Decimal("40230.13698630136986301369863"), 2)
@example(Decimal("0.123456785"), 8)
@example(Decimal("1234567890123456789012345678901234567890.125"), 2)
@example(Decimal("9.999999999999999999999999999999999999999999999"), 2)
@example(Decimal("9.99E+999998"), 2)  # adjusted just below Emax: a million digits
@example(Decimal("9.999E+999998"), 2)  # rounds up to adjusted == Emax
@example(Decimal("1E+999999"), 2)
@example(Decimal("1E+1000000"), 2)  # beyond Emax: InvalidOperation from both
@example(Decimal("NaN"), 2)
@example(Decimal("-NaN"), 2)
@example(Decimal("sNaN"), 2)
@example(Decimal("Infinity"), 2)
@example(Decimal("-Infinity"), 8)
def test_fmt_amount_matches_the_former_implementation(value: Decimal, places: int) -> None:
    assert_same(value, places)


@settings(max_examples=500, deadline=None)
@given(half_way())
def test_ties_round_half_even_like_the_former_implementation(case: tuple[Decimal, int]) -> None:
    value, places = case
    assert_same(value, places)


@settings(max_examples=500, deadline=None)
@given(decimals_(), places_, st.sampled_from(ROUNDINGS), st.integers(min_value=1, max_value=80),
       st.booleans())
@example(Decimal("0.125"), 2, decimal.ROUND_HALF_UP, 28, True)  # what ccxt leaves behind
@example(Decimal("-0.125"), 2, decimal.ROUND_CEILING, 1, False)
@example(Decimal("0.135"), 2, decimal.ROUND_DOWN, 3, False)
@example(Decimal("40230.13698630136986301369863"), 2, decimal.ROUND_UP, 2, True)
def test_the_threads_context_changes_nothing(
    value: Decimal, places: int, rounding: str, prec: int, trap_underflow: bool
) -> None:
    with thread_context(rounding, prec, trap_underflow):
        assert_same(value, places)
    assert_same(value, places)


def test_the_threads_context_is_left_as_it_was() -> None:
    before = decimal.getcontext().copy()
    fmt_amount(Decimal("1.005"))
    fmt_amount(Decimal("1.23456789"), 8)
    after = decimal.getcontext()
    assert (after.prec, after.rounding, after.Emax, after.Emin) == (
        before.prec, before.rounding, before.Emax, before.Emin)
    assert dict(after.flags) == dict(before.flags)
    assert dict(after.traps) == dict(before.traps)


class Amount(Decimal):
    """A Decimal subclass: formatted as the Decimal it holds."""


@pytest.mark.parametrize(("value", "places"), [(Amount("1.005"), 2), (Amount("-0.001"), 8)])
def test_a_decimal_subclass_formats_as_before(value: Decimal, places: int) -> None:
    assert outcome(fmt_amount, value, places) == outcome(reference_fmt_amount, value, places)


@pytest.mark.parametrize("value", [5, 0, "1.5", 1.5, None])
def test_a_value_that_is_not_a_decimal_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="a Decimal"):
        fmt_amount(value, 2)


@pytest.mark.parametrize("places", [-1, 19, True, False, 2.0, None])
def test_places_outside_0_to_18_are_refused(places: Any) -> None:
    with pytest.raises(ValueError, match="places must be an int from 0 to 18"):
        fmt_amount(Decimal("1.005"), places)


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Decimal("12000000"), 2, "12,000,000"),
        (Decimal("1234.5678"), 2, "1,234.57"),
        (Decimal("0.125"), 2, "0.12"),
        (Decimal("0.135"), 2, "0.14"),
        (Decimal("-0.004"), 2, "0"),
        (Decimal("0.123456785"), 8, "0.12345678"),
        (Decimal("40230.13698630136986301369863"), 2, "40,230.14"),
    ],
)
def test_known_texts(value: Decimal, places: int, text: str) -> None:
    assert fmt_amount(value, places) == text


@settings(max_examples=300, deadline=None)
@given(decimals_())
def test_fmt_bps_and_fmt_pct_unchanged(value: Decimal) -> None:
    assert outcome(lambda v, _p: fmt_bps(v), value, 2) == outcome(
        lambda v, _p: reference_fmt_amount(v, 2), value, 2)
    if value.adjusted() < 100_000:
        assert outcome(lambda v, _p: fmt_pct(v), value, 2) == outcome(
            lambda v, _p: f"{reference_fmt_amount(v * 100, 2)}%", value, 2)
