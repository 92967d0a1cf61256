"""Which quotes can be awarded, in which order, and which to award next (pure functions).

``QuoteJudge`` checks one quote *now*: the engine's own validity rules (side, size,
positivity, validity, limit) and then the mandate's quote rules (price tolerance against
the reference, the dealer's credit with in-flight awards). ``rank`` applies it to every
dealer's latest quote at the window's close; ``select`` re-checks the next candidates
when an award round starts (quotes expire and credit moves between rounds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rfq_engine.domain import DealerId, Quote, QuoteId, RfqSpec, decimal_str, format_ts, rank_quotes
from rfq_engine.engine.validation import check_quote
from rfq_engine.mandate import Mandate, QuoteContext, Verdict, all_passed
from rfq_engine.pricing.reference import PackageReference

__all__ = ["Candidates", "QuoteJudge", "Ranking", "rank", "select"]

Candidates = deque[tuple[Quote, int]]
"""Valid quotes still to try, best first, each with its rank at the window's close."""


@dataclass(frozen=True, slots=True)
class QuoteJudge:
    spec: RfqSpec
    mandate: Mandate
    reference: PackageReference | None
    exposure: Callable[[DealerId, date], Decimal]
    unit_notional: Decimal
    min_validity: timedelta

    def verdicts(self, quote: Quote, quantity: Decimal, today: date) -> list[Verdict]:
        side = self.spec.award_side
        price = quote.price(side)
        assert price is not None
        return self.mandate.check_quote(QuoteContext(
            self.spec, quote, side, price, quantity, self.reference,
            self.exposure(quote.dealer_id, today), quantity * self.unit_notional))

    def why_not(self, quote: Quote, quantity: Decimal, now: datetime) -> tuple[str | None, list[Verdict]]:
        """(None, verdicts) when ``quote`` may be awarded ``quantity`` now, else (reason, verdicts)."""
        reason = check_quote(self.spec, quote, now=now, min_validity=self.min_validity)
        if reason is not None:
            return reason, []
        verdicts = self.verdicts(quote, quantity, now.date())
        if not all_passed(verdicts):
            return "; ".join(v.reason for v in verdicts if not v.passed), verdicts
        return None, verdicts


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: list[Quote]
    verdicts_of: dict[QuoteId, list[Verdict]]
    rejected: list[dict[str, Any]]
    min_quotes: Verdict

    def candidates(self) -> Candidates:
        return deque((q, i + 1) for i, q in enumerate(self.ranked))

    def payload(self, spec: RfqSpec, reference: PackageReference | None) -> dict[str, Any]:
        """The ``quotes.ranked`` audit event: every quote, its rank or why it was rejected."""
        side = spec.award_side
        return {
            "side": side.value,
            "reference": None if reference is None else reference.to_dict(),
            "min_quotes": self.min_quotes.to_dict(),
            "ranking": [{"rank": i + 1, "dealer_id": q.dealer_id, "quote_id": q.quote_id,
                         "price": decimal_str(q.price(side) or Decimal(0)),
                         "quantity": decimal_str(q.quantity),
                         "received_at": format_ts(q.received_at),
                         "verdicts": [v.to_dict() for v in self.verdicts_of[q.quote_id]]}
                        for i, q in enumerate(self.ranked)],
            "rejected": self.rejected,
        }


def rank(judge: QuoteJudge, quotes: Iterable[Quote], now: datetime) -> Ranking:
    """Validate every latest quote at ``now`` and rank the valid ones (best first, ties to
    the earlier quote)."""
    valid: list[Quote] = []
    verdicts_of: dict[QuoteId, list[Verdict]] = {}
    rejected: list[dict[str, Any]] = []
    side = judge.spec.award_side
    for quote in quotes:
        reason, verdicts = judge.why_not(quote, min(quote.quantity, judge.spec.quantity), now)
        if reason is None:
            valid.append(quote)
            verdicts_of[quote.quote_id] = verdicts
        else:
            price = quote.price(side)
            rejected.append({"dealer_id": quote.dealer_id, "quote_id": quote.quote_id,
                             "price": None if price is None else decimal_str(price),
                             "reason": reason, "verdicts": [v.to_dict() for v in verdicts]})
    ranked = rank_quotes(valid, side)
    return Ranking(ranked, verdicts_of, rejected, judge.mandate.check_min_quotes(len(ranked)))


def select(judge: QuoteJudge, candidates: Candidates, remaining: Decimal, now: datetime
           ) -> tuple[list[tuple[Quote, Decimal, int]], list[tuple[Quote, str]]]:
    """The next quotes to award for ``remaining`` (taken from ``candidates``), re-checked
    at ``now``; and the ones found no longer awardable, with why. Without partial fills
    one quote covers the whole remainder."""
    batch: list[tuple[Quote, Decimal, int]] = []
    dropped: list[tuple[Quote, str]] = []
    left = remaining
    while left > 0 and candidates:
        quote, position = candidates.popleft()
        quantity = min(quote.quantity, left)
        reason, _ = judge.why_not(quote, quantity, now)
        if reason is not None:
            dropped.append((quote, reason))
            continue
        batch.append((quote, quantity, position))
        left -= quantity
        if not judge.spec.allow_partial:
            break
    return batch, dropped
