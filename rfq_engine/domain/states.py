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


S = RfqState
TERMINAL: frozenset[RfqState] = frozenset(
    {S.FILLED, S.PARTIALLY_FILLED, S.NOT_FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED, S.FAILED}
)
_ALWAYS = frozenset({S.CANCELLED, S.FAILED})

TRANSITIONS: dict[RfqState, frozenset[RfqState]] = {
    S.CREATED: frozenset({S.PENDING_APPROVAL, S.OPEN, S.REJECTED, S.EXPIRED}) | _ALWAYS,
    S.PENDING_APPROVAL: frozenset({S.OPEN, S.REJECTED, S.EXPIRED}) | _ALWAYS,
    S.OPEN: frozenset({S.AWARDING, S.NOT_FILLED, S.EXPIRED}) | _ALWAYS,
    S.AWARDING: frozenset({S.CONFIRMING, S.NOT_FILLED, S.PARTIALLY_FILLED, S.EXPIRED}) | _ALWAYS,
    # A confirm can still arrive after a cancel was asked for: the confirming state may end
    # filled/partially_filled even then (the dealer traded), or cancelled if nothing filled.
    S.CONFIRMING: frozenset({S.AWARDING, S.UNRESOLVED, S.FILLED, S.PARTIALLY_FILLED,
                             S.NOT_FILLED, S.EXPIRED}) | _ALWAYS,
    S.UNRESOLVED: frozenset({S.FILLED, S.PARTIALLY_FILLED, S.NOT_FILLED}) | _ALWAYS,
    **{state: frozenset() for state in TERMINAL},
}


def check_transition(rfq_id: str, current: RfqState, target: RfqState) -> None:
    """Raise IllegalTransition unless the table allows ``current -> target``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(rfq_id, current.value, target.value)
