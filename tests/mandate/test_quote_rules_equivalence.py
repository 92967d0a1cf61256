"""The quote rules now remember the parts of a reason that do not change from quote to
quote (the reference and tolerance part of ``PriceTolerance``, each dealer's limit in
``DealerCredit``). Checked here against the former ``check`` methods, kept verbatim with
the former ``fmt_amount``: the same verdicts, the same reasons byte for byte, in any order
of calls on any number of rule objects, with references and limits changing between calls."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_engine.domain.ids import DealerId, QuoteId, RfqId
from rfq_engine.domain.messages import Quote
from rfq_engine.domain.rfq import QuoteSide, RfqSpec
from rfq_engine.mandate import rules
from rfq_engine.mandate.rules import DealerCredit, PriceTolerance, QuoteContext, distance_bps
from rfq_engine.mandate.verdict import Verdict
from rfq_engine.pricing.reference import PackageReference

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SPEC = RfqSpec.from_dict({
    "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                             "expiry": "2026-12-25"}, "side": "sell"}],
    "direction": "sell", "quantity": "100", "quantity_unit": "BTC",
    "dealers": ["desk-a", "desk-b", "desk-c"], "mandate": "treasury",
})


# --- the former implementation, verbatim -----------------------------------------------------


def old_fmt_amount(value: Decimal, places: int = 2) -> str:
    with localcontext() as ctx:
        ctx.prec = max(60, value.adjusted() + places + 2)
        rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(rounded, ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def old_fmt_bps(value: Decimal) -> str:
    return old_fmt_amount(value, 2)


def old_price_tolerance(self: PriceTolerance, ctx: QuoteContext) -> Verdict:
    ref = ctx.reference
    if ref is None:
        if self.require_reference:
            return Verdict(
                self.name,
                False,
                "no reference price: the quote cannot be checked against the market",
            )
        return Verdict(
            self.name, True, "not checked: no reference price (require_reference = false)"
        )
    if ref.underlying_price <= 0:
        return Verdict(self.name, False, "reference has no positive underlying price")
    distance = distance_bps(ctx.price, ref)
    text = (
        f"{old_fmt_bps(distance)} bps from reference {old_fmt_amount(ref.value)} "
        f"(tolerance {old_fmt_bps(self.tolerance_bps)} bps"
    )
    if ref.value != ref.underlying_price:
        text += f" of the underlying price {old_fmt_amount(ref.underlying_price)}"
    text += ")"
    if distance > self.tolerance_bps:
        return Verdict(self.name, False, f"off-market: {text}")
    return Verdict(self.name, True, f"within tolerance: {text}")


def old_dealer_credit(self: DealerCredit, ctx: QuoteContext) -> Verdict:
    dealer = ctx.quote.dealer_id
    limit = self.limits.get(dealer)
    if limit is None:
        return Verdict(self.name, False, f"dealer {dealer} has no credit limit: not approved")
    total = ctx.dealer_exposure + ctx.award_notional
    text = (
        f"exposure {old_fmt_amount(ctx.dealer_exposure)} {self.ccy} with {dealer} plus this "
        f"award {old_fmt_amount(ctx.award_notional)} {self.ccy} is {old_fmt_amount(total)} {self.ccy}"
    )
    cap = f"its credit limit {old_fmt_amount(limit)} {self.ccy}"
    if total > limit:
        return Verdict(self.name, False, f"{text}, above {cap}")
    return Verdict(self.name, True, f"{text}, within {cap}")


# --- strategies ------------------------------------------------------------------------------


amounts = st.one_of(
    st.decimals(min_value=-10**6, max_value=10**6, places=4),
    st.decimals(min_value=-10**15, max_value=10**18, places=0),
    st.decimals(min_value="-0.001", max_value="0.001", places=9),
    st.sampled_from([Decimal("40230.13698630136986301369863"), Decimal("0.005"),
                     Decimal("-0.005"), Decimal("0.015"), Decimal("-0"), Decimal("4.0E+4"),
                     Decimal("1234567890123456789012345678901234.125")]),
)
positive = amounts.filter(lambda d: d > 0)
# A few shared reference objects, so that calls alternate between seen and new ones.
references = st.builds(
    lambda value, base, same: PackageReference(value, value if same else base, NOW, "model",
                                               (value,)),
    amounts, st.one_of(positive, st.sampled_from([Decimal(0), Decimal(-1)])), st.booleans(),
)
dealers = st.sampled_from(["desk-a", "desk-b", "desk-c", "desk-x"])


def context(price: Decimal, reference: PackageReference | None, dealer: str, exposure: Decimal,
            award: Decimal) -> QuoteContext:
    quote = Quote(RfqId("r1"), DealerId(dealer), QuoteId("q1"), price, None, Decimal(100),
                  NOW, NOW, "m1")
    return QuoteContext(SPEC, quote, QuoteSide.BID, price, Decimal(100), reference, exposure, award)


@st.composite
def call_sequences(draw: st.DrawFn) -> list[QuoteContext]:
    refs = draw(st.lists(st.one_of(st.none(), references), min_size=1, max_size=4))
    calls = draw(st.lists(st.tuples(amounts, st.sampled_from(range(len(refs))), dealers,
                                    amounts, amounts), min_size=1, max_size=12))
    return [context(price, refs[i], dealer, exposure, award)
            for price, i, dealer, exposure, award in calls]


# --- properties ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def forget() -> Iterator[None]:
    rules._LAST_REFERENCE.entry = None
    rules._LIMIT_TEXTS.clear()
    yield


@settings(max_examples=400, deadline=None)
@given(tolerances=st.lists(st.tuples(st.one_of(amounts, positive), st.booleans()), min_size=1,
                           max_size=3),
       calls=call_sequences(), which=st.lists(st.integers(min_value=0, max_value=2), min_size=12,
                                              max_size=12))
def test_price_tolerance_gives_the_former_verdicts(
    tolerances: list[tuple[Decimal, bool]], calls: list[QuoteContext], which: list[int]
) -> None:
    checkers = [PriceTolerance(tolerance, require) for tolerance, require in tolerances]
    for ctx, i in zip(calls, which, strict=False):  # rules of several mandates, interleaved
        rule = checkers[i % len(checkers)]
        assert rule.check(ctx) == old_price_tolerance(rule, ctx)


@settings(max_examples=400, deadline=None)
@given(mandates=st.lists(
           st.tuples(st.dictionaries(st.sampled_from(["desk-a", "desk-b", "desk-c"]), positive),
                     st.sampled_from(["USD", "EUR"])), min_size=1, max_size=3),
       changes=st.lists(st.tuples(st.sampled_from(["desk-a", "desk-b"]), positive), max_size=3),
       calls=call_sequences(), which=st.lists(st.integers(min_value=0, max_value=2), min_size=12,
                                              max_size=12),
       small_memo=st.booleans())
def test_dealer_credit_gives_the_former_verdicts(
    mandates: list[tuple[dict[str, Decimal], str]], changes: list[tuple[str, Decimal]],
    calls: list[QuoteContext], which: list[int], small_memo: bool,
) -> None:
    checkers = [DealerCredit(limits, ccy) for limits, ccy in mandates]
    saved = rules._LIMIT_TEXTS_MAX
    rules._LIMIT_TEXTS_MAX = 2 if small_memo else saved  # also when the memo is emptied
    try:
        for i, (ctx, k) in enumerate(zip(calls, which, strict=False)):
            rule = checkers[k % len(checkers)]
            assert rule.check(ctx) == old_dealer_credit(rule, ctx)
            if i < len(changes):  # a mapping changed under the rule: the new limit is named
                dealer, limit = changes[i]
                mandates[k % len(mandates)][0][dealer] = limit
                assert rule.check(ctx) == old_dealer_credit(rule, ctx)
    finally:
        rules._LIMIT_TEXTS_MAX = saved


def test_a_new_reference_with_equal_values_gives_the_same_text() -> None:
    rule = PriceTolerance(Decimal("300"))
    first = PackageReference(Decimal("-120.004"), Decimal("40000"), NOW, "model", ())
    second = PackageReference(Decimal("99.999"), Decimal("99.999"), NOW, "model", ())
    for reference in (first, second, first, second):
        ctx = context(Decimal("40"), reference, "desk-a", Decimal(0), Decimal(0))
        assert rule.check(ctx) == old_price_tolerance(rule, ctx)


def test_the_rules_are_the_same_dataclasses() -> None:
    rule = PriceTolerance(Decimal("300"))
    rule.check(context(Decimal("40"), PackageReference(Decimal(40), Decimal(40), NOW, "m", ()),
                       "desk-a", Decimal(0), Decimal(0)))
    assert rule == PriceTolerance(Decimal("300")) and hash(rule) == hash(PriceTolerance(Decimal(300)))
    assert repr(rule) == "PriceTolerance(tolerance_bps=Decimal('300'), require_reference=True)"
    assert [f.name for f in dataclasses.fields(rule)] == ["tolerance_bps", "require_reference"]
    assert PriceTolerance.__slots__ == ("tolerance_bps", "require_reference")
    assert pickle.loads(pickle.dumps(rule)) == rule and copy.deepcopy(rule) == rule

    credit = DealerCredit({"desk-a": Decimal(5)})
    credit.check(context(Decimal(1), None, "desk-a", Decimal(0), Decimal(1)))
    assert [f.name for f in dataclasses.fields(credit)] == ["limits", "ccy"]
    assert dataclasses.asdict(credit) == {"limits": {"desk-a": Decimal(5)}, "ccy": "USD"}
