"""Dealer scorecards, computed from audit events alone (pure).

Per dealer, over the events given (the caller picks the time range):

- ``asked``: RFQs it was sent; ``responded``: it quoted or declined (response rate);
- ``median_response_ms``: from the RFQ opening (the durable ``open`` transition, which
  precedes the send) to the dealer's first answer;
- ``win_rate``: RFQs where it filled / RFQs it quoted;
- ``avg_distance_bps``: how far its price was from the best valid price in the ranking,
  in bps of the underlying (0 when it was the best);
- ``last_look_reject_rate``: awards it rejected or let time out / awards it received.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain import decimal_str
from rfq_engine.domain.events import (
    AwardDecided,
    EventType,
    ExecutionRejected,
    FillRecorded,
    QuoteDeclined,
    QuoteReceived,
    QuotesRanked,
    RfqSent,
    RfqStateChanged,
)
from rfq_engine.domain.states import RfqState
from rfq_engine.readmodels.events import typed_events
from rfq_engine.store.events import AuditEvent

__all__ = ["SCORECARD_EVENT_TYPES", "Scorecard", "dealer_scorecards"]

SCORECARD_EVENT_TYPES = (
    EventType.RFQ_STATE_CHANGED, EventType.RFQ_SENT, EventType.QUOTE_RECEIVED,
    EventType.QUOTE_DECLINED, EventType.QUOTES_RANKED, EventType.AWARD_DECIDED,
    EventType.EXECUTION_CONFIRMED, EventType.EXECUTION_REJECTED, EventType.FILL_RECORDED,
)


@dataclass
class Scorecard:
    dealer_id: str
    asked: int = 0
    responded: int = 0
    quoted: int = 0
    wins: int = 0
    awards: int = 0
    last_look_rejects: int = 0
    response_ms: list[float] = field(default_factory=list)
    distances_bps: list[Decimal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def ratio(num: int, den: int) -> str | None:
            return None if den == 0 else decimal_str(
                (Decimal(num) / Decimal(den)).quantize(Decimal("0.0001")))

        avg = (None if not self.distances_bps else decimal_str(
            (sum(self.distances_bps, Decimal(0)) / len(self.distances_bps)).quantize(Decimal("0.01"))))
        return {
            "dealer_id": self.dealer_id,
            "asked": self.asked,
            "responded": self.responded,
            "quoted": self.quoted,
            "awards": self.awards,
            "wins": self.wins,
            "response_rate": ratio(self.responded, self.asked),
            "median_response_ms": (None if not self.response_ms
                                   else round(statistics.median(self.response_ms), 3)),
            "win_rate": ratio(self.wins, self.quoted),
            "avg_distance_bps": avg,
            "last_look_reject_rate": ratio(self.last_look_rejects, self.awards),
        }


def dealer_scorecards(events: Iterable[AuditEvent]) -> dict[str, Scorecard]:
    cards: dict[str, Scorecard] = {}
    opened: dict[str, datetime] = {}
    answered: set[tuple[str, str]] = set()
    quoted: set[tuple[str, str]] = set()
    won: set[tuple[str, str]] = set()
    award_dealer: dict[str, str] = {}

    def card(dealer: str) -> Scorecard:
        if dealer not in cards:
            cards[dealer] = Scorecard(dealer)
        return cards[dealer]

    for stored, event in typed_events(events):
        rfq = stored.rfq_id or ""
        match event:
            case RfqStateChanged(to=RfqState.OPEN):
                opened[rfq] = stored.ts
            case RfqSent():
                for dealer in [*event.sent, *(event.failed or {})]:
                    card(dealer).asked += 1
            case QuoteReceived() | QuoteDeclined():
                dealer = event.dealer_id
                if (rfq, dealer) not in answered:
                    answered.add((rfq, dealer))
                    c = card(dealer)
                    c.responded += 1
                    if rfq in opened:
                        c.response_ms.append((stored.ts - opened[rfq]).total_seconds() * 1000)
                if isinstance(event, QuoteReceived) and (rfq, dealer) not in quoted:
                    quoted.add((rfq, dealer))
                    card(dealer).quoted += 1
            case QuotesRanked() if event.ranking:
                best = Decimal(event.ranking[0]["price"])
                reference = event.reference or {}
                base = Decimal(reference["underlying_price"]) if reference.get("underlying_price") \
                    else abs(best) or Decimal(1)
                for entry in event.ranking:
                    distance = abs(Decimal(entry["price"]) - best) / base * 10000
                    card(entry["dealer_id"]).distances_bps.append(distance)
            case AwardDecided():
                award_dealer[event.execution_id] = event.dealer_id
                card(event.dealer_id).awards += 1
            case ExecutionRejected():
                dealer = award_dealer.get(event.execution_id, event.dealer_id)
                if dealer:
                    card(dealer).last_look_rejects += 1
            case FillRecorded():
                dealer = event.dealer_id
                if (rfq, dealer) not in won:
                    won.add((rfq, dealer))
                    card(dealer).wins += 1
    return cards
