"""The mandate's rules, each a small object that turns a context into a ``Verdict``.

Pure by contract (an import-linter contract enforces the imports): a rule reads only
its context, never a clock, a store or the network. Whatever changes with time
(today's date, what was already used today, the open exposure with a dealer, the
reference price) is computed by the engine and passed in, so a verdict can be
recomputed from the audit log and a rule is tested with plain values.

Three moments, three kinds of rule:

- pre-trade (``PreTradeRule``), before the RFQ is sent: what may be asked, how big,
  of whom;
- per quote (``QuoteRule``), as each quote arrives: is the price sane, can the desk
  take more exposure to that dealer;
- at award: were there enough valid quotes (``MinQuotes``), and does the size need a
  second person's approval (``ApprovalThreshold``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal, Protocol

from rfq_engine.domain.instruments import InstrumentKind
from rfq_engine.domain.messages import Quote
from rfq_engine.domain.rfq import QuoteSide, RfqSpec
from rfq_engine.mandate.verdict import Verdict, fmt_amount, fmt_bps, fmt_pct
from rfq_engine.pricing.reference import PackageReference

__all__ = [
    "BPS",
    "ApprovalThreshold",
    "DealerCredit",
    "DealersApproved",
    "EnoughDealers",
    "HedgeRatio",
    "InstrumentAllowed",
    "MaxTenor",
    "MinQuotes",
    "NotionalCap",
    "PreTradeContext",
    "PreTradeRule",
    "PriceTolerance",
    "QuoteContext",
    "QuoteRule",
    "ReferenceRequired",
    "UnderlyingAllowed",
    "distance_bps",
]

BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class PreTradeContext:
    """Everything a pre-trade rule may look at.

    ``notional`` is this RFQ's (``domain.pricing.package_notional``); ``used_today`` and
    ``used_month`` are the notional already filled or reserved under the same mandate
    today and this month, *excluding* this RFQ.
    """

    spec: RfqSpec
    today: date
    notional: Decimal
    used_today: Decimal = Decimal(0)
    used_month: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class QuoteContext:
    """Everything a quote rule may look at, for one quote on the side that would be awarded.

    ``price`` is the quote's price on ``side``; ``quantity`` what would be awarded;
    ``reference`` the package reference (None when the provider had none);
    ``dealer_exposure`` the open exposure already with the quote's dealer, in-flight
    awards included; ``award_notional`` the notional this award would add.
    """

    spec: RfqSpec
    quote: Quote
    side: QuoteSide
    price: Decimal
    quantity: Decimal
    reference: PackageReference | None
    dealer_exposure: Decimal
    award_notional: Decimal


class PreTradeRule(Protocol):
    """A rule checked once, before an RFQ is sent."""

    @property
    def name(self) -> str: ...

    def check(self, ctx: PreTradeContext) -> Verdict: ...


class QuoteRule(Protocol):
    """A rule checked for each quote before it may compete for the award."""

    @property
    def name(self) -> str: ...

    def check(self, ctx: QuoteContext) -> Verdict: ...


def _join(items: Iterable[object]) -> str:
    """Sorted and comma-separated, so a reason never depends on set iteration order."""
    return ", ".join(sorted(str(i) for i in items))


# --- pre-trade -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnderlyingAllowed:
    """Every leg's underlying must be one the mandate names."""

    allowed: frozenset[str]
    name: ClassVar[str] = "underlying"

    def check(self, ctx: PreTradeContext) -> Verdict:
        used = ctx.spec.package.underlyings
        bad = used - self.allowed
        if bad:
            word = "underlying" if len(bad) == 1 else "underlyings"
            return Verdict(
                self.name,
                False,
                f"{word} {_join(bad)} not allowed by the mandate (allowed: {_join(self.allowed)})",
            )
        return Verdict(self.name, True, f"underlying {_join(used)} allowed")


@dataclass(frozen=True, slots=True)
class InstrumentAllowed:
    """Every leg's instrument kind must be one the mandate names."""

    allowed: frozenset[InstrumentKind]
    name: ClassVar[str] = "instrument"

    def check(self, ctx: PreTradeContext) -> Verdict:
        used = {leg.instrument.kind.value for leg in ctx.spec.legs}
        allowed = {kind.value for kind in self.allowed}
        bad = used - allowed
        if bad:
            return Verdict(
                self.name,
                False,
                f"instrument kind {_join(bad)} not allowed by the mandate "
                f"(allowed: {_join(allowed)})",
            )
        return Verdict(self.name, True, f"instrument kind {_join(used)} allowed")


@dataclass(frozen=True, slots=True)
class MaxTenor:
    """The package's last date (latest expiry or NDF end) at most ``max_days`` after today.

    Spot and perpetual legs have no tenor. A package that already ended cannot be a
    hedge and fails too.
    """

    max_days: int
    name: ClassVar[str] = "max_tenor"

    def check(self, ctx: PreTradeContext) -> Verdict:
        last = ctx.spec.package.last_date
        if last is None:
            return Verdict(self.name, True, "no expiry: spot or perpetual legs only")
        tenor = (last - ctx.today).days
        if tenor < 0:
            return Verdict(
                self.name, False, f"the package ended on {last}, before today {ctx.today}"
            )
        text = f"tenor {tenor} days (to {last})"
        if tenor > self.max_days:
            return Verdict(self.name, False, f"{text} exceeds the maximum {self.max_days} days")
        return Verdict(self.name, True, f"{text} within the maximum {self.max_days} days")


_SCOPES: dict[str, tuple[str, str]] = {
    "rfq": ("per-RFQ cap", ""),
    "day": ("daily cap", "today"),
    "month": ("monthly cap", "this month"),
}


@dataclass(frozen=True, slots=True)
class NotionalCap:
    """A notional cap per RFQ, per day or per month: ``used + notional <= cap``.

    For ``rfq`` nothing is used before; for ``day`` and ``month`` the context's
    ``used_today`` / ``used_month`` count what this mandate already filled or reserved.
    Reaching the cap exactly is allowed.
    """

    scope: Literal["rfq", "day", "month"]
    cap: Decimal
    ccy: str = "USD"

    @property
    def name(self) -> str:
        return f"notional_per_{self.scope}"

    def check(self, ctx: PreTradeContext) -> Verdict:
        label, when = _SCOPES[self.scope]
        cap = f"the {label} {fmt_amount(self.cap)} {self.ccy}"
        this = f"notional {fmt_amount(ctx.notional)} {self.ccy}"
        if self.scope == "rfq":
            if ctx.notional > self.cap:
                return Verdict(self.name, False, f"{this} exceeds {cap}")
            return Verdict(self.name, True, f"{this} within {cap}")
        used = ctx.used_today if self.scope == "day" else ctx.used_month
        total = used + ctx.notional
        text = (
            f"{this} plus {fmt_amount(used)} {self.ccy} already used {when} "
            f"is {fmt_amount(total)} {self.ccy}"
        )
        if total > self.cap:
            return Verdict(self.name, False, f"{text}, above {cap}")
        return Verdict(self.name, True, f"{text}, within {cap}")


@dataclass(frozen=True, slots=True)
class DealersApproved:
    """Every invited dealer must be one the mandate approves (and so has a credit limit)."""

    approved: frozenset[str]
    name: ClassVar[str] = "dealers_approved"

    def check(self, ctx: PreTradeContext) -> Verdict:
        bad = [d for d in ctx.spec.dealers if d not in self.approved]
        if bad:
            return Verdict(
                self.name, False, f"dealers not approved by the mandate: {_join(bad)}"
            )
        return Verdict(
            self.name, True, f"all {len(ctx.spec.dealers)} invited dealers are approved"
        )


@dataclass(frozen=True, slots=True)
class EnoughDealers:
    """At least ``min_quotes`` approved dealers invited, or the RFQ could never be awarded."""

    min_quotes: int
    approved: frozenset[str]
    name: ClassVar[str] = "enough_dealers"

    def check(self, ctx: PreTradeContext) -> Verdict:
        count = sum(1 for d in ctx.spec.dealers if d in self.approved)
        text = f"{count} approved dealers invited, at least {self.min_quotes} valid quotes needed"
        if count < self.min_quotes:
            return Verdict(self.name, False, f"{text}: the RFQ could never be awarded")
        return Verdict(self.name, True, text)


@dataclass(frozen=True, slots=True)
class HedgeRatio:
    """``(hedged_quantity + quantity) / forecast_quantity <= max_ratio`` for program hedges.

    Applies only when the request carries a ``HedgeContext`` (the forecast of the period,
    in the RFQ's quantity unit, and what is already hedged in it); the caller excludes
    from ``hedged_quantity`` whatever this RFQ replaces (a roll's expiring leg).
    """

    max_ratio: Decimal
    name: ClassVar[str] = "hedge_ratio"

    def check(self, ctx: PreTradeContext) -> Verdict:
        hedge = ctx.spec.hedge
        if hedge is None:
            return Verdict(self.name, True, "not applicable: no forecast supplied")
        ratio = (hedge.hedged_quantity + ctx.spec.quantity) / hedge.forecast_quantity
        unit = ctx.spec.quantity_unit
        text = (
            f"hedge ratio {fmt_pct(ratio)} ((already hedged {fmt_amount(hedge.hedged_quantity, 8)}"
            f" + this RFQ {fmt_amount(ctx.spec.quantity, 8)}) / forecast "
            f"{fmt_amount(hedge.forecast_quantity, 8)} {unit})"
        )
        limit = f"the maximum {fmt_pct(self.max_ratio)}"
        if ratio > self.max_ratio:
            return Verdict(self.name, False, f"{text} exceeds {limit}")
        return Verdict(self.name, True, f"{text} within {limit}")


# --- per quote ----------------------------------------------------------------------------

# The reasons of the quote rules repeat, for every quote of an RFQ, a part made only from
# values that do not change from quote to quote: the reference and the tolerance, the
# dealer's credit limit. That part is remembered with the very objects it was made from
# and reused while the next check is given the same objects (``is``, never equality);
# any other object makes it anew. ``fmt_amount`` depends on its argument alone, so the
# text is the one the rule would have written.


class _Last:
    """The last text made, with what it was made from. One attribute: a single swap, so a
    reader never sees a text with the wrong objects."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[PackageReference, Decimal, str] | None = None


_LAST_REFERENCE = _Last()
_LIMIT_TEXTS: dict[tuple[str, str], tuple[Decimal, str]] = {}
"""(dealer, currency) -> (the limit, "its credit limit ... USD")."""
_LIMIT_TEXTS_MAX = 4096


def distance_bps(price: Decimal, reference: PackageReference) -> Decimal:
    """``|price - reference.value| / reference.underlying_price * 10,000``.

    Measured in bps of the *underlying*, not of the package's value: a collar's net
    premium sits near zero, where a relative distance would explode (and flip sign),
    while its risk is on the scale of the underlying it hedges.
    """
    if reference.underlying_price <= 0:
        raise ValueError("the reference's underlying price must be positive")
    return abs(price - reference.value) / reference.underlying_price * BPS


@dataclass(frozen=True, slots=True)
class PriceTolerance:
    """A quote more than ``tolerance_bps`` from the reference is off-market: rejected.

    Symmetric: a price far *better* than the market is as suspect as one far worse (a fat
    finger or a stale price the dealer would not honour). Without a reference the quote
    fails when ``require_reference`` (it cannot be checked), else passes unchecked.
    """

    tolerance_bps: Decimal
    require_reference: bool = True
    name: ClassVar[str] = "price_tolerance"

    def check(self, ctx: QuoteContext) -> Verdict:
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
        head = fmt_bps(distance)
        known = _LAST_REFERENCE.entry
        if known is not None and known[0] is ref and known[1] is self.tolerance_bps:
            about = known[2]
        else:
            about = (
                f" bps from reference {fmt_amount(ref.value)} "
                f"(tolerance {fmt_bps(self.tolerance_bps)} bps"
            )
            if ref.value != ref.underlying_price:
                about += f" of the underlying price {fmt_amount(ref.underlying_price)}"
            about += ")"
            _LAST_REFERENCE.entry = (ref, self.tolerance_bps, about)
        text = head + about
        if distance > self.tolerance_bps:
            return Verdict(self.name, False, f"off-market: {text}")
        return Verdict(self.name, True, f"within tolerance: {text}")


@dataclass(frozen=True, slots=True)
class ReferenceRequired:
    """With no tolerance configured but ``require_reference = true``: a reference must exist."""

    name: ClassVar[str] = "reference_required"

    def check(self, ctx: QuoteContext) -> Verdict:
        if ctx.reference is None:
            return Verdict(self.name, False, "no reference price, and the mandate requires one")
        return Verdict(
            self.name, True, f"reference price {fmt_amount(ctx.reference.value)} available"
        )


@dataclass(frozen=True, slots=True)
class DealerCredit:
    """``dealer_exposure + award_notional <= credit_limit`` of the quote's dealer.

    A dealer without a limit in the mandate is not approved: its quotes fail.
    """

    limits: Mapping[str, Decimal]
    ccy: str = "USD"
    name: ClassVar[str] = "dealer_credit"

    def check(self, ctx: QuoteContext) -> Verdict:
        dealer = ctx.quote.dealer_id
        limit = self.limits.get(dealer)
        if limit is None:
            return Verdict(self.name, False, f"dealer {dealer} has no credit limit: not approved")
        total = ctx.dealer_exposure + ctx.award_notional
        text = (
            f"exposure {fmt_amount(ctx.dealer_exposure)} {self.ccy} with {dealer} plus this "
            f"award {fmt_amount(ctx.award_notional)} {self.ccy} is {fmt_amount(total)} {self.ccy}"
        )
        known = _LIMIT_TEXTS.get((dealer, self.ccy))
        if known is not None and known[0] is limit:
            cap = known[1]
        else:
            cap = f"its credit limit {fmt_amount(limit)} {self.ccy}"
            if len(_LIMIT_TEXTS) >= _LIMIT_TEXTS_MAX:
                _LIMIT_TEXTS.clear()
            _LIMIT_TEXTS[(dealer, self.ccy)] = (limit, cap)
        if total > limit:
            return Verdict(self.name, False, f"{text}, above {cap}")
        return Verdict(self.name, True, f"{text}, within {cap}")


# --- at award -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MinQuotes:
    """No award on fewer than ``min_quotes`` valid quotes: one quote proves no competition."""

    min_quotes: int
    name: ClassVar[str] = "min_quotes"

    def check(self, valid_count: int) -> Verdict:
        text = f"{valid_count} valid quotes, at least {self.min_quotes} needed"
        return Verdict(self.name, valid_count >= self.min_quotes, text)


@dataclass(frozen=True, slots=True)
class ApprovalThreshold:
    """Above ``threshold`` notional a second person must approve (``passed=False``).

    A notional exactly at the threshold needs no approval ("above which").
    """

    threshold: Decimal | None
    ccy: str = "USD"
    name: ClassVar[str] = "approval"

    def check(self, notional: Decimal) -> Verdict:
        this = f"notional {fmt_amount(notional)} {self.ccy}"
        if self.threshold is None:
            return Verdict(self.name, True, f"{this}: no approval threshold in the mandate")
        limit = f"the approval threshold {fmt_amount(self.threshold)} {self.ccy}"
        if notional > self.threshold:
            return Verdict(
                self.name, False, f"{this} exceeds {limit}: a second person must approve"
            )
        return Verdict(self.name, True, f"{this} within {limit}: no second approval needed")
