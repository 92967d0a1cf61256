"""Each mandate rule, passing and failing, with the reason it gives; plus properties."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfq_engine.domain.ids import DealerId, QuoteId, RfqId
from rfq_engine.domain.instruments import InstrumentKind
from rfq_engine.domain.messages import Quote
from rfq_engine.domain.rfq import QuoteSide, RfqSpec
from rfq_engine.mandate.rules import (
    ApprovalThreshold,
    DealerCredit,
    DealersApproved,
    EnoughDealers,
    HedgeRatio,
    InstrumentAllowed,
    MaxTenor,
    MinQuotes,
    NotionalCap,
    PreTradeContext,
    PriceTolerance,
    QuoteContext,
    ReferenceRequired,
    UnderlyingAllowed,
    distance_bps,
)
from rfq_engine.mandate.verdict import Verdict, all_passed, failures, fmt_amount
from rfq_engine.pricing.reference import PackageReference

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
money = st.decimals(min_value=0, max_value=10**12, places=2)


def future_leg(
    expiry: str = "2026-12-25", underlying: str = "BTC", side: str = "sell"
) -> dict[str, Any]:
    return {
        "instrument": {"kind": "future", "underlying": underlying, "quote_ccy": "USD",
                       "expiry": expiry},
        "side": side,
    }


def make_spec(legs: list[dict[str, Any]] | None = None, **over: Any) -> RfqSpec:
    data: dict[str, Any] = {
        "legs": legs or [future_leg()],
        "direction": "sell",
        "quantity": "100",
        "quantity_unit": "BTC",
        "dealers": ["desk-a", "desk-b"],
        "mandate": "treasury",
    }
    data.update(over)
    return RfqSpec.from_dict(data)


def pre(spec: RfqSpec | None = None, notional: str = "4000000", **over: Any) -> PreTradeContext:
    return PreTradeContext(spec or make_spec(), TODAY, D(notional), **over)


def ref(value: str = "40000", base: str = "40000") -> PackageReference:
    return PackageReference(D(value), D(base), NOW, "model", (D(value),))


def quote_ctx(
    price: str = "40000",
    reference: PackageReference | None = None,
    exposure: str = "0",
    award: str = "4000000",
    dealer: str = "desk-a",
) -> QuoteContext:
    quote = Quote(
        rfq_id=RfqId("r1"),
        dealer_id=DealerId(dealer),
        quote_id=QuoteId("q1"),
        bid=D(price),
        ask=None,
        quantity=D(100),
        valid_until=NOW,
        received_at=NOW,
        msg_id="m1",
    )
    return QuoteContext(
        spec=make_spec(),
        quote=quote,
        side=QuoteSide.BID,
        price=D(price),
        quantity=D(100),
        reference=reference,
        dealer_exposure=D(exposure),
        award_notional=D(award),
    )


# --- verdict ------------------------------------------------------------------------------


def test_verdict_to_dict_and_helpers() -> None:
    ok, bad = Verdict("a", True, "fine"), Verdict("b", False, "why")
    assert bad.to_dict() == {"rule": "b", "passed": False, "reason": "why"}
    assert all_passed([ok]) and not all_passed([ok, bad]) and all_passed([])
    assert failures([ok, bad]) == [bad]


@pytest.mark.parametrize(
    ("value", "text"),
    [("12000000", "12,000,000"), ("1234.5678", "1,234.57"), ("-1234.5", "-1,234.5"),
     ("1.2E+7", "12,000,000"), ("0", "0"), ("0.10", "0.1")],
)
def test_amounts_are_written_for_people(value: str, text: str) -> None:
    assert fmt_amount(D(value)) == text


# --- pre-trade ------------------------------------------------------------------------------


def test_underlying_allowed() -> None:
    rule = UnderlyingAllowed(frozenset({"BTC"}))
    assert rule.check(pre()) == Verdict("underlying", True, "underlying BTC allowed")
    eth = pre(make_spec([future_leg(underlying="ETH")]))
    verdict = rule.check(eth)
    assert not verdict.passed
    assert verdict.reason == "underlying ETH not allowed by the mandate (allowed: BTC)"


def test_instrument_allowed() -> None:
    rule = InstrumentAllowed(frozenset({InstrumentKind.OPTION}))
    verdict = rule.check(pre())
    assert not verdict.passed
    assert verdict.reason == "instrument kind future not allowed by the mandate (allowed: option)"
    ok = InstrumentAllowed(frozenset({InstrumentKind.FUTURE, InstrumentKind.OPTION})).check(pre())
    assert ok == Verdict("instrument", True, "instrument kind future allowed")


def test_max_tenor() -> None:
    spec = make_spec([future_leg("2026-12-25"), future_leg("2027-03-26", side="buy")])
    assert MaxTenor(125).check(pre(spec)) == Verdict(
        "max_tenor", True, "tenor 125 days (to 2027-03-26) within the maximum 125 days"
    )
    failed = MaxTenor(90).check(pre(spec))
    assert not failed.passed
    assert failed.reason == "tenor 125 days (to 2027-03-26) exceeds the maximum 90 days"


def test_max_tenor_without_expiry_and_after_expiry() -> None:
    perp = make_spec([{"instrument": {"kind": "perpetual", "underlying": "BTC",
                                      "quote_ccy": "USDT"}, "side": "sell"}])
    assert MaxTenor(0).check(pre(perp)).passed
    expired = MaxTenor(365).check(pre(make_spec([future_leg("2026-11-20")])))
    assert not expired.passed
    assert expired.reason == "the package ended on 2026-11-20, before today 2026-11-21"


def test_max_tenor_of_an_ndf_is_its_end() -> None:
    ndf = make_spec(
        [{"instrument": {"kind": "hashprice_ndf", "underlying": "HASHPRICE", "quote_ccy": "USD",
                         "start": "2026-12-01", "days": 30}, "side": "sell"}],
        quantity_unit="PH/s/day",
    )
    assert MaxTenor(40).check(pre(ndf)).reason == (
        "tenor 40 days (to 2026-12-31) within the maximum 40 days"
    )
    assert not MaxTenor(39).check(pre(ndf)).passed


def test_notional_cap_per_rfq() -> None:
    rule = NotionalCap("rfq", D("10000000"))
    failed = rule.check(pre(notional="12000000"))
    assert failed == Verdict(
        "notional_per_rfq", False,
        "notional 12,000,000 USD exceeds the per-RFQ cap 10,000,000 USD",
    )
    assert rule.check(pre(notional="10000000")).passed  # at the cap is allowed


def test_notional_cap_per_day_counts_what_was_used_today() -> None:
    rule = NotionalCap("day", D("10000000"), "USD")
    failed = rule.check(pre(notional="4000000", used_today=D("7000000")))
    assert failed.rule == "notional_per_day"
    assert not failed.passed
    assert failed.reason == (
        "notional 4,000,000 USD plus 7,000,000 USD already used today is 11,000,000 USD, "
        "above the daily cap 10,000,000 USD"
    )
    assert rule.check(pre(notional="4000000", used_today=D("6000000"))).passed
    # The month's usage is not the day's.
    assert rule.check(pre(notional="4000000", used_month=D("9000000"))).passed


def test_notional_cap_per_month() -> None:
    rule = NotionalCap("month", D("50000000"), "USDT")
    failed = rule.check(pre(notional="4000000", used_month=D("46500000.5")))
    assert not failed.passed
    assert failed.reason == (
        "notional 4,000,000 USDT plus 46,500,000.5 USDT already used this month is "
        "50,500,000.5 USDT, above the monthly cap 50,000,000 USDT"
    )
    assert rule.check(pre(notional="4000000", used_month=D("46000000"))).passed


def test_dealers_approved() -> None:
    rule = DealersApproved(frozenset({"desk-a", "desk-b"}))
    assert rule.check(pre()) == Verdict(
        "dealers_approved", True, "all 2 invited dealers are approved"
    )
    spec = make_spec(dealers=["desk-z", "desk-a", "desk-x"])
    assert rule.check(pre(spec)) == Verdict(
        "dealers_approved", False, "dealers not approved by the mandate: desk-x, desk-z"
    )


def test_enough_dealers() -> None:
    approved = frozenset({"desk-a", "desk-b", "desk-c"})
    assert EnoughDealers(2, approved).check(pre()).passed
    failed = EnoughDealers(3, approved).check(pre())
    assert not failed.passed
    assert failed.reason == (
        "2 approved dealers invited, at least 3 valid quotes needed: the RFQ could never be awarded"
    )
    # Only approved dealers count: their quotes are the only ones that can be valid.
    unapproved = make_spec(dealers=["desk-a", "desk-x"])
    assert not EnoughDealers(2, approved).check(pre(unapproved)).passed


def test_hedge_ratio() -> None:
    rule = HedgeRatio(D("0.8"))
    assert rule.check(pre()) == Verdict("hedge_ratio", True, "not applicable: no forecast supplied")
    over = make_spec(quantity="75", hedge={"forecast_quantity": "100", "hedged_quantity": "20"})
    failed = rule.check(pre(over))
    assert not failed.passed
    assert failed.reason == (
        "hedge ratio 95% ((already hedged 20 + this RFQ 75) / forecast 100 BTC) "
        "exceeds the maximum 80%"
    )
    exact = make_spec(quantity="60", hedge={"forecast_quantity": "100", "hedged_quantity": "20"})
    assert rule.check(pre(exact)).passed


# --- quotes -------------------------------------------------------------------------------


def test_price_tolerance_off_market() -> None:
    rule = PriceTolerance(D("200"))
    failed = rule.check(quote_ctx("41400", ref("40000")))
    assert failed == Verdict(
        "price_tolerance", False, "off-market: 350 bps from reference 40,000 (tolerance 200 bps)"
    )
    ok = rule.check(quote_ctx("39950", ref("40000")))
    assert ok.passed
    assert ok.reason == "within tolerance: 12.5 bps from reference 40,000 (tolerance 200 bps)"


def test_price_tolerance_of_a_collar_is_in_bps_of_the_underlying() -> None:
    # A collar worth -120 per BTC on a 40,000 underlying: a quote at +40 is 160 / 40,000 = 40 bps.
    rule = PriceTolerance(D("50"))
    verdict = rule.check(quote_ctx("40", ref("-120", "40000")))
    assert verdict.passed
    assert verdict.reason == (
        "within tolerance: 40 bps from reference -120 "
        "(tolerance 50 bps of the underlying price 40,000)"
    )
    assert not rule.check(quote_ctx("100", ref("-120", "40000"))).passed


def test_price_tolerance_without_a_reference() -> None:
    failed = PriceTolerance(D("200")).check(quote_ctx("40000", None))
    assert not failed.passed
    assert "no reference price" in failed.reason
    lenient = PriceTolerance(D("200"), require_reference=False).check(quote_ctx("40000", None))
    assert lenient.passed
    assert lenient.reason == "not checked: no reference price (require_reference = false)"


def test_price_tolerance_with_a_broken_reference_fails() -> None:
    verdict = PriceTolerance(D("200")).check(quote_ctx("40000", ref("1", "0")))
    assert not verdict.passed


def test_reference_required() -> None:
    rule = ReferenceRequired()
    assert not rule.check(quote_ctx(reference=None)).passed
    assert rule.check(quote_ctx(reference=ref())).passed


def test_dealer_credit() -> None:
    rule = DealerCredit({"desk-a": D("5000000")})
    failed = rule.check(quote_ctx(exposure="3000000", award="2500000"))
    assert failed == Verdict(
        "dealer_credit",
        False,
        "exposure 3,000,000 USD with desk-a plus this award 2,500,000 USD is 5,500,000 USD, "
        "above its credit limit 5,000,000 USD",
    )
    assert rule.check(quote_ctx(exposure="2500000", award="2500000")).passed
    unknown = rule.check(quote_ctx(dealer="desk-x"))
    assert unknown == Verdict(
        "dealer_credit", False, "dealer desk-x has no credit limit: not approved"
    )


# --- award ----------------------------------------------------------------------------------


def test_min_quotes() -> None:
    rule = MinQuotes(3)
    assert rule.check(2) == Verdict("min_quotes", False, "2 valid quotes, at least 3 needed")
    assert rule.check(3).passed


def test_approval_threshold() -> None:
    rule = ApprovalThreshold(D("10000000"))
    needs = rule.check(D("12000000"))
    assert not needs.passed
    assert needs.reason == (
        "notional 12,000,000 USD exceeds the approval threshold 10,000,000 USD: "
        "a second person must approve"
    )
    assert rule.check(D("10000000")).passed
    assert ApprovalThreshold(None).check(D("1e12")).passed


# --- properties -----------------------------------------------------------------------------


@given(
    distance=st.decimals(min_value=0, max_value=5000, places=4),
    value=st.decimals(min_value=-5000, max_value=100_000, places=2),
    base=st.decimals(min_value=1, max_value=100_000, places=2),
    tolerance=st.decimals(min_value="0.01", max_value=1000, places=2),
)
def test_tolerance_is_symmetric_in_the_sign_of_the_distance(
    distance: D, value: D, base: D, tolerance: D
) -> None:
    reference = ref(str(value), str(base))
    rule = PriceTolerance(tolerance)
    above = rule.check(quote_ctx(str(value + distance), reference))
    below = rule.check(quote_ctx(str(value - distance), reference))
    assert above.passed == below.passed
    assert distance_bps(value + distance, reference) == distance_bps(value - distance, reference)
    assert above.passed == (distance / base * 10_000 <= tolerance)


@given(notional=money, smaller=money, used=money, cap=money.filter(lambda c: c > 0))
def test_caps_are_monotone(notional: D, smaller: D, used: D, cap: D) -> None:
    smaller = min(smaller, notional)
    for scope in ("rfq", "day", "month"):
        rule = NotionalCap(scope, cap)
        big = rule.check(pre(notional=str(notional), used_today=used, used_month=used))
        small = rule.check(pre(notional=str(smaller), used_today=used, used_month=used))
        if big.passed:
            assert small.passed
        # Raising the cap never turns a pass into a failure.
        if big.passed:
            assert NotionalCap(scope, cap * 2).check(
                pre(notional=str(notional), used_today=used, used_month=used)
            ).passed


@given(exposure=money, award=money, limit=money.filter(lambda c: c > 0))
def test_credit_rule_matches_its_formula(exposure: D, award: D, limit: D) -> None:
    verdict = DealerCredit({"desk-a": limit}).check(
        quote_ctx(exposure=str(exposure), award=str(award))
    )
    assert verdict.passed == (exposure + award <= limit)


@given(hedged=st.decimals(min_value=0, max_value=1000, places=3),
       quantity=st.decimals(min_value="0.001", max_value=1000, places=3),
       forecast=st.decimals(min_value=1, max_value=1000, places=3),
       ratio=st.decimals(min_value="0.01", max_value=1, places=2))
def test_hedge_ratio_matches_its_formula(hedged: D, quantity: D, forecast: D, ratio: D) -> None:
    spec = make_spec(
        quantity=str(quantity),
        hedge={"forecast_quantity": str(forecast), "hedged_quantity": str(hedged)},
    )
    assert HedgeRatio(ratio).check(pre(spec)).passed == ((hedged + quantity) / forecast <= ratio)
