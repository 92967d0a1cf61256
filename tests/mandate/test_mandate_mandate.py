"""Mandate: which rules a config produces, in what order, and the verdicts it hands the engine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from rfq_engine.domain.ids import DealerId, QuoteId, RfqId
from rfq_engine.domain.messages import Quote
from rfq_engine.domain.rfq import QuoteSide, RfqSpec
from rfq_engine.mandate import (
    Mandate,
    MandateConfig,
    PreTradeContext,
    QuoteContext,
    all_passed,
    failures,
)
from rfq_engine.pricing.reference import PackageReference

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

FULL: dict[str, Any] = {
    "underlyings": ["BTC"],
    "instruments": ["future", "option"],
    "max_tenor_days": 190,
    "max_notional_per_rfq": "10000000",
    "max_notional_per_day": "20000000",
    "max_notional_per_month": "60000000",
    "min_quotes": 2,
    "price_tolerance_bps": "200",
    "approval_threshold": "5000000",
    "max_hedge_ratio": "0.8",
    "approval_timeout_s": 600,
    "dealers": {"desk-a": {"credit_limit": "5000000"}, "desk-b": {"credit_limit": "8000000"}},
}
MINIMAL: dict[str, Any] = {
    "underlyings": ["BTC"],
    "instruments": ["future"],
    "max_tenor_days": 190,
    "dealers": {"desk-a": {"credit_limit": "5000000"}},
}


def mandate(data: dict[str, Any], **over: Any) -> Mandate:
    return Mandate("treasury", MandateConfig.model_validate({**data, **over}))


def spec(**over: Any) -> RfqSpec:
    data: dict[str, Any] = {
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": "2026-12-25"}, "side": "sell"}],
        "direction": "sell",
        "quantity": "100",
        "quantity_unit": "BTC",
        "dealers": ["desk-a", "desk-b"],
        "mandate": "treasury",
    }
    data.update(over)
    return RfqSpec.from_dict(data)


def quote_ctx(
    price: str, reference: PackageReference | None, exposure: str = "0", dealer: str = "desk-a"
) -> QuoteContext:
    quote = Quote(RfqId("r"), DealerId(dealer), QuoteId("q"), D(price), None, D(100), NOW, NOW, "m")
    return QuoteContext(spec(), quote, QuoteSide.BID, D(price), D(100), reference, D(exposure),
                        D("4000000"))


REFERENCE = PackageReference(D("40000"), D("40000"), NOW, "model", (D("40000"),))


def test_full_mandate_runs_every_pre_trade_rule_in_a_stable_order() -> None:
    verdicts = mandate(FULL).check_pre_trade(PreTradeContext(spec(), TODAY, D("4000000")))
    assert [v.rule for v in verdicts] == [
        "underlying",
        "instrument",
        "max_tenor",
        "notional_per_rfq",
        "notional_per_day",
        "notional_per_month",
        "dealers_approved",
        "enough_dealers",
        "hedge_ratio",
    ]
    assert all_passed(verdicts)


def test_unconfigured_limits_are_not_rules() -> None:
    m = mandate(MINIMAL)
    verdicts = m.check_pre_trade(PreTradeContext(spec(dealers=["desk-a"]), TODAY, D("1e12")))
    assert [v.rule for v in verdicts] == [
        "underlying", "instrument", "max_tenor", "dealers_approved", "enough_dealers"
    ]
    assert all_passed(verdicts)
    assert [r.name for r in m.quote_rules] == ["dealer_credit"]
    assert m.approval_verdict(D("1e12")).passed


def test_pre_trade_failures_carry_their_reasons() -> None:
    m = mandate(FULL)
    ctx = PreTradeContext(
        spec(dealers=["desk-a", "desk-x"]), TODAY, D("12000000"), used_today=D("9000000")
    )
    failed = failures(m.check_pre_trade(ctx))
    assert [v.rule for v in failed] == [
        "notional_per_rfq", "notional_per_day", "dealers_approved", "enough_dealers"
    ]
    assert failed[0].reason == "notional 12,000,000 USD exceeds the per-RFQ cap 10,000,000 USD"
    assert failed[2].reason == "dealers not approved by the mandate: desk-x"


def test_approval_verdict() -> None:
    m = mandate(FULL)
    assert m.approval_verdict(D("5000000")).passed
    needs = m.approval_verdict(D("6000000"))
    assert needs.rule == "approval" and not needs.passed
    assert "a second person must approve" in needs.reason


def test_quote_checks() -> None:
    m = mandate(FULL)
    ok = m.check_quote(quote_ctx("39900", REFERENCE))
    assert [v.rule for v in ok] == ["price_tolerance", "dealer_credit"]
    assert all_passed(ok)
    off = m.check_quote(quote_ctx("41400", REFERENCE, exposure="2000000"))
    assert [v.rule for v in failures(off)] == ["price_tolerance", "dealer_credit"]
    no_ref = m.check_quote(quote_ctx("40000", None))
    assert [v.rule for v in failures(no_ref)] == ["price_tolerance"]


def test_require_reference_without_tolerance() -> None:
    m = mandate(MINIMAL, require_reference=True)
    assert [r.name for r in m.quote_rules] == ["reference_required", "dealer_credit"]
    assert not all_passed(m.check_quote(quote_ctx("40000", None)))
    assert all_passed(m.check_quote(quote_ctx("40000", REFERENCE)))


def test_tolerance_with_require_reference_false_lets_unreferenced_quotes_through() -> None:
    m = mandate(FULL, require_reference=False)
    assert all_passed(m.check_quote(quote_ctx("40000", None)))
    assert not all_passed(m.check_quote(quote_ctx("45000", REFERENCE)))


def test_min_quotes_credit_limits_and_timeouts() -> None:
    m = mandate(FULL)
    assert m.name == "treasury"
    assert m.min_quotes == 2
    assert not m.check_min_quotes(1).passed
    assert m.check_min_quotes(2).passed
    assert m.credit_limit("desk-b") == D("8000000")
    assert m.credit_limit("desk-x") is None
    assert m.approved_dealers == frozenset({"desk-a", "desk-b"})
    assert m.approval_timeout == timedelta(seconds=600)
    assert mandate(MINIMAL).approval_timeout == timedelta(seconds=900)
    assert m.reference_required


def test_verdicts_are_recomputable() -> None:
    m = mandate(FULL)
    ctx = PreTradeContext(spec(), TODAY, D("4000000"))
    assert m.check_pre_trade(ctx) == m.check_pre_trade(ctx)
    assert m.check_pre_trade(ctx)[0].to_dict() == {
        "rule": "underlying", "passed": True, "reason": "underlying BTC allowed"
    }
