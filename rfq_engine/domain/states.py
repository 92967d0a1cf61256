"""The RFQ state machine: one explicit transition table.

    created ──► pending_approval ──► open ──► awarding ──► confirming ──► filled
       │              │               │          │  ▲           │    ├──► partially_filled
       │              │               │          │  └───────────┘    └──► not_filled
       └──► rejected  └──► expired    └──► not_filled / expired
                                                   confirming ──► unresolved ──► filled,
                                                                 partially_filled, not_filled
    any non-terminal state ──► cancelled, failed

``confirming -> awarding`` is the fallback to the next best quote after a last-look
reject, or after an unknown outcome was reconciled as "not executed".
``confirming -> unresolved``: an award's outcome could not be reconciled in time; the RFQ
waits (non-terminal, exposure reserved) until the dealer or a person settles it, then ends
with what it filled. Every transition is an audit event (the engine writes it).
"""

from __future__ import annotations

from enum import StrEnum

from rfq_engine.domain.errors import IllegalTransition

__all__ = ["TERMINAL", "TRANSITIONS", "RfqState", "check_transition"]


class RfqState(StrEnum):
    CREATED = "created"
    PENDING_APPROVAL = "pending_approval"
    OPEN = "open"
    AWARDING = "awarding"
    CONFIRMING = "confirming"
    UNRESOLVED = "unresolved"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    NOT_FILLED = "not_filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[RfqState] = frozenset({
    RfqState.FILLED, RfqState.PARTIALLY_FILLED, RfqState.NOT_FILLED, RfqState.CANCELLED,
    RfqState.EXPIRED, RfqState.REJECTED, RfqState.FAILED})
_ALWAYS = frozenset({RfqState.CANCELLED, RfqState.FAILED})
_ENDED_WITH_FILLS = frozenset({RfqState.FILLED, RfqState.PARTIALLY_FILLED, RfqState.NOT_FILLED})

TRANSITIONS: dict[RfqState, frozenset[RfqState]] = {
    RfqState.CREATED: frozenset({RfqState.PENDING_APPROVAL, RfqState.OPEN, RfqState.REJECTED,
                                 RfqState.EXPIRED}) | _ALWAYS,
    RfqState.PENDING_APPROVAL: frozenset({RfqState.OPEN, RfqState.REJECTED,
                                          RfqState.EXPIRED}) | _ALWAYS,
    RfqState.OPEN: frozenset({RfqState.AWARDING, RfqState.NOT_FILLED, RfqState.EXPIRED}) | _ALWAYS,
    RfqState.AWARDING: frozenset({RfqState.CONFIRMING, RfqState.NOT_FILLED,
                                  RfqState.PARTIALLY_FILLED, RfqState.EXPIRED}) | _ALWAYS,
    # A confirm can still arrive after a cancel was asked for: the confirming state may end
    # filled/partially_filled even then (the dealer traded), or cancelled if nothing filled.
    RfqState.CONFIRMING: frozenset({RfqState.AWARDING, RfqState.UNRESOLVED,
                                    RfqState.EXPIRED}) | _ENDED_WITH_FILLS | _ALWAYS,
    RfqState.UNRESOLVED: _ENDED_WITH_FILLS | _ALWAYS,
    **{state: frozenset() for state in TERMINAL},
}


def check_transition(rfq_id: str, current: RfqState, target: RfqState) -> None:
    """Raise IllegalTransition unless the table allows ``current -> target``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(rfq_id, current.value, target.value)
