"""What a ccxt dealer says, as the engine's wire bodies and as the journal's records.

A venue's answers (a priced ``QuotePlan``, an execution's ``Outcome``) become protocol
bodies here, which the adapter parses with the shared ``parse_body``
(``dealer_adapters.common.parse_inbound``) exactly as a remote desk's message would be.
The journal's intent and outcome lines are built here too, and ``lookup_policy_for``
says how each dealer can be asked about an execution. The venue's own fields (which one
carries our key, how to look an order up) are ``dialects.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.dialects import dialect_for
from dealer_adapters.ccxt.route import Outcome, QuotePlan
from dealer_adapters.common import confirm_body, quote_body, reject_body
from dealer_adapters.protocol import LookupPolicy
from rfq_engine.domain import Award, DealerId, QuoteId, RfqId, decimal_str, format_ts, utc_now

__all__ = [
    "INSTRUMENTS",
    "award_ref",
    "intent_record",
    "lookup_policy_for",
    "outcome_message",
    "outcome_record",
    "plan_quote_body",
]

INSTRUMENTS = {
    "book": ("spot", "perpetual", "future", "option"),
    "convert": ("spot",),
    "okx_rfq": ("spot", "perpetual", "future", "option"),
    "deribit_block_rfq": ("spot", "perpetual", "future", "option"),
}
"""What each mode quotes (the dealer's ``status.instruments``)."""

_NOT_FOUND_NOTE = ("'not found' only when the journal shows the order was never placed, and the id "
                   "is then fenced; an order the venue cannot find stays unknown")


def lookup_policy_for(config: CcxtDealerConfig) -> LookupPolicy:
    """How one ccxt dealer can be asked about an execution (``LookupPolicy``).

    ``not_found_proves_absent`` is True for every mode: NOT_FOUND comes from the journal
    alone (no intent, and the id fenced), never from a venue's empty answer.
    ``can_query`` is True where the venue can be asked by our key: a book venue with a
    dialect, OKX convert (``clTReqId``), the OKX block RFQ (its rfq and quote ids). A
    convert dealer elsewhere has no look-up: it repeats the journal only, and an unknown
    outcome there waits for a person. (The config refuses a book venue with no dialect.)
    """
    dialect = dialect_for(config.exchange)
    if config.mode == "book" and dialect is not None:
        return LookupPolicy(
            key=f"{dialect.venue} {dialect.field}", can_query=True, not_found_proves_absent=True,
            note=f"the venue, by {dialect.lookup_call}; {_NOT_FOUND_NOTE}")
    if config.mode == "deribit_block_rfq":
        return LookupPolicy(key="Deribit block_rfq_id", can_query=True, not_found_proves_absent=True,
                            note="the venue, by private/get_block_rfqs / get_block_trades (an open Block "
                                 "RFQ is cancelled first, so its state is final); " + _NOT_FOUND_NOTE)
    if config.mode == "okx_rfq":
        return LookupPolicy(key="OKX block RFQ rfqId + quoteId", can_query=True, not_found_proves_absent=True,
                            note="the venue, by privateGetRfqTrades / privateGetRfqRfqs; " + _NOT_FOUND_NOTE)
    if config.exchange == "okx":
        return LookupPolicy(key="OKX convert clTReqId", can_query=True, not_found_proves_absent=True,
                            note="the venue, by fetchConvertTrade(clTReqId); " + _NOT_FOUND_NOTE)
    return LookupPolicy(key="none (the journal only)", can_query=False, not_found_proves_absent=True,
                        note=(f"{config.exchange} {config.mode} has no look-up by our id: the journal's "
                              f"outcome only; {_NOT_FOUND_NOTE}"))


def plan_quote_body(rfq_id: RfqId, quote_id: QuoteId, plan: QuotePlan) -> dict[str, Any]:
    """The ``quote`` body of a priced plan (its sides; or the coin premium it quotes)."""
    if plan.premium is not None:  # what the venue said, converted by the engine's domain rule
        return {**quote_body(rfq_id, quote_id, plan.quantity, plan.valid_until),
                "premium": plan.premium.to_dict()}
    prices = {side.side.value: side.price for side in plan.sides}
    return quote_body(rfq_id, quote_id, plan.quantity, plan.valid_until,
                      bid=prices.get("bid"), ask=prices.get("ask"))


def award_ref(award: Award) -> dict[str, Any]:
    """The award as the journal keeps it, so its answer can be rebuilt after a restart."""
    return {
        "rfq_id": award.rfq_id, "quote_id": award.quote_id, "side": award.side.value,
        "price": decimal_str(award.price), "quantity": decimal_str(award.quantity),
        "execution_id": award.execution_id, "confirm_by": format_ts(award.confirm_by),
    }


def intent_record(dealer_id: DealerId, ref: Mapping[str, Any], prepared: Mapping[str, Any]) -> dict[str, Any]:
    """The journal's intent line: what the route prepared, plus the award."""
    return {**prepared, "kind": "intent", "dealer_id": dealer_id, "execution_id": ref["execution_id"],
            "award": dict(ref), "ts": format_ts(utc_now())}


def outcome_record(dealer_id: DealerId, ref: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The journal's outcome line."""
    return {"kind": "outcome", "dealer_id": dealer_id, "execution_id": ref["execution_id"],
            "award": dict(ref), **outcome.to_record(), "ts": format_ts(utc_now())}


def outcome_message(ref: Mapping[str, Any], outcome: Outcome) -> tuple[str, dict[str, Any]]:
    """The engine's confirm or reject for an outcome: its message type and body."""
    if outcome.confirmed:
        trade_id = outcome.dealer_trade_id or "-"
        return "execution.confirm", confirm_body(ref["execution_id"], ref["rfq_id"], ref["quote_id"],
                                                 outcome.price, outcome.quantity, trade_id)
    return "execution.reject", reject_body(ref["execution_id"], ref["rfq_id"], outcome.reason or "rejected")
