"""A named mandate: its config turned into the ordered lists of rules the engine runs.

The engine asks a ``Mandate`` for verdicts at each moment of an RFQ and records all of
them, passed or failed, so the audit log shows every rule that was applied and why it
decided as it did. A limit the config leaves out is not a rule at all (its verdict
would say nothing); a configured rule that does not apply to a request (a hedge-ratio
cap without a forecast) passes with a reason saying so.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from rfq_engine.domain.rfq import ClosePolicy
from rfq_engine.mandate.config import MandateConfig
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
    PreTradeRule,
    PriceTolerance,
    QuoteContext,
    QuoteRule,
    ReferenceRequired,
    UnderlyingAllowed,
)
from rfq_engine.mandate.verdict import Verdict

__all__ = ["Mandate"]


class Mandate:
    """The rules of one ``[mandates.<name>]`` section, in a stable order.

    Pre-trade order: underlying, instrument, max_tenor, notional_per_rfq,
    notional_per_day, notional_per_month, dealers_approved, enough_dealers, hedge_ratio.
    Quote order: price_tolerance (or reference_required), dealer_credit.
    """

    def __init__(self, name: str, config: MandateConfig) -> None:
        self._name = name
        self._config = config
        ccy = config.currency
        approved = frozenset(config.dealers)
        self._limits: dict[str, Decimal] = {
            dealer: terms.credit_limit for dealer, terms in config.dealers.items()
        }
        pre: list[PreTradeRule] = [
            UnderlyingAllowed(frozenset(config.underlyings)),
            InstrumentAllowed(frozenset(config.instruments)),
            MaxTenor(config.max_tenor_days),
        ]
        if config.max_notional_per_rfq is not None:
            pre.append(NotionalCap("rfq", config.max_notional_per_rfq, ccy))
        if config.max_notional_per_day is not None:
            pre.append(NotionalCap("day", config.max_notional_per_day, ccy))
        if config.max_notional_per_month is not None:
            pre.append(NotionalCap("month", config.max_notional_per_month, ccy))
        pre.append(DealersApproved(approved))
        pre.append(EnoughDealers(config.min_quotes, approved))
        if config.max_hedge_ratio is not None:
            pre.append(HedgeRatio(config.max_hedge_ratio))
        self._pre_trade: tuple[PreTradeRule, ...] = tuple(pre)

        quote: list[QuoteRule] = []
        if config.price_tolerance_bps is not None:
            quote.append(PriceTolerance(config.price_tolerance_bps, config.reference_required))
        elif config.reference_required:
            quote.append(ReferenceRequired())
        quote.append(DealerCredit(dict(self._limits), ccy))
        self._quote: tuple[QuoteRule, ...] = tuple(quote)

        self._min_quotes = MinQuotes(config.min_quotes)
        self._approval = ApprovalThreshold(config.approval_threshold, ccy)

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> MandateConfig:
        return self._config

    @property
    def pre_trade_rules(self) -> tuple[PreTradeRule, ...]:
        return self._pre_trade

    @property
    def quote_rules(self) -> tuple[QuoteRule, ...]:
        return self._quote

    @property
    def approved_dealers(self) -> frozenset[str]:
        return frozenset(self._limits)

    @property
    def min_quotes(self) -> int:
        return self._config.min_quotes

    @property
    def close_policy(self) -> ClosePolicy:
        """The mandate's default response-window close policy."""
        return self._config.close_policy

    @property
    def approval_timeout(self) -> timedelta:
        """How long an RFQ waits for a second person's approval before it is cancelled."""
        return timedelta(seconds=self._config.approval_timeout_s)

    @property
    def reference_required(self) -> bool:
        return self._config.reference_required

    def credit_limit(self, dealer_id: str) -> Decimal | None:
        """The dealer's credit limit, or None when the mandate does not approve it."""
        return self._limits.get(dealer_id)

    def check_pre_trade(self, ctx: PreTradeContext) -> list[Verdict]:
        """Every pre-trade rule's verdict, in order; the RFQ may be sent only if all passed."""
        return [rule.check(ctx) for rule in self._pre_trade]

    def approval_verdict(self, notional: Decimal) -> Verdict:
        """``passed=False`` means a second person must approve before the RFQ is sent."""
        return self._approval.check(notional)

    def check_quote(self, ctx: QuoteContext) -> list[Verdict]:
        """Every quote rule's verdict, in order; the quote competes only if all passed."""
        return [rule.check(ctx) for rule in self._quote]

    def check_min_quotes(self, valid_count: int) -> Verdict:
        """Whether ``valid_count`` valid quotes are enough to award."""
        return self._min_quotes.check(valid_count)

    def __repr__(self) -> str:
        return f"Mandate({self._name!r})"
