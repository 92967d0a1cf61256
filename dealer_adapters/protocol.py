"""The one small protocol every dealer transport implements.

An adapter carries messages; it never decides. The engine calls ``send_*`` and the
adapter hands every inbound message to the ``InboundSink`` it was started with, stamped
with ``received_at`` on arrival. Messages the transport cannot accept (malformed,
unsigned, spoofed) are handed over as ``InboundRejected`` so the engine audits them.

One adapter may serve several dealers (one MQTT connection for all MQTT desks); the
engine maps each dealer id to the adapter that serves it.

Exceptions: ``send_*`` raise ``DealerUnavailable`` when the message could not be handed
to the transport (dealer offline, connection down) and so provably never reached the
dealer. The engine treats that dealer as absent for the RFQ; it never retries a send on its
own. Any other failure of ``send_award`` (a timeout, a lost connection, a cancelled send)
leaves the award's outcome *unknown*: the engine then reconciles it through
``query_execution`` and makes no other award for that quantity until it is settled.

Each adapter declares, per dealer, how that dealer can be asked about an execution
(``lookup_policy``): which key carries our execution id, whether it can be asked at all,
and whether its "not found" proves the execution never happened. The engine's
unknown-outcome rule (``rfq_engine.engine.reconcile``) uses that declaration; the adapter
only carries the question and the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    Inbound,
    RfqClosed,
    RfqNew,
)
from rfq_engine.domain.errors import Unavailable

__all__ = [
    "DealerAdapter",
    "DealerUnavailable",
    "ExecutionLookup",
    "ExecutionState",
    "InboundSink",
    "LookupPolicy",
]

InboundSink = Callable[[Inbound], None]
"""Non-blocking hand-off to the engine; called on the event loop's thread."""


class DealerUnavailable(Unavailable):
    """The transport could not take a message for this dealer."""

    def __init__(self, dealer_id: str, reason: str) -> None:
        super().__init__(f"dealer {dealer_id} unavailable: {reason}")
        self.dealer_id = dealer_id
        self.reason = reason


class ExecutionState(StrEnum):
    """What a dealer's answer to ``query_execution`` says."""

    CONFIRMED = "confirmed"
    """The dealer executed it; ``ExecutionLookup.confirm`` carries the trade."""
    REJECTED = "rejected"
    """The dealer explicitly refused it (last look, a failed order): it was not executed."""
    NOT_FOUND = "not_found"
    """The dealer answered and has no record of the execution id. What that proves is the
    dealer's ``LookupPolicy.not_found_proves_absent``."""
    UNKNOWN = "unknown"
    """No answer: the transport cannot ask, the dealer is unreachable, the order is still
    pending, or the answer could not be read. Never taken as a "no"."""


@dataclass(frozen=True, slots=True)
class LookupPolicy:
    """How one dealer can be asked what became of an execution (declared by its adapter)."""

    key: str
    """What carries our execution id at the dealer, e.g. ``execution_id`` or
    ``Deribit label``."""
    can_query: bool
    """True when ``query_execution`` really asks the dealer (or a record the dealer keeps);
    False when it can only repeat what the dealer already said on the wire."""
    not_found_proves_absent: bool
    """True when a ``NOT_FOUND`` answer proves the dealer did not and will not execute it
    (the dealer fences the id once it has answered "not found", or the adapter's own
    journal shows the order never left). False: "not found" proves nothing, and an award
    whose outcome is unknown stays unresolved until the dealer or a person settles it."""
    note: str = ""
    """One line for operators: where the answer comes from."""

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "can_query": self.can_query,
                "not_found_proves_absent": self.not_found_proves_absent, "note": self.note}


class ExecutionLookup:
    """What a dealer says about one execution id (used by recovery to reconcile)."""

    __slots__ = ("confirm", "reason", "state")

    def __init__(
        self,
        state: ExecutionState,
        confirm: ExecutionConfirm | None = None,
        reason: str = "",
    ) -> None:
        self.state = state
        self.confirm = confirm
        self.reason = reason

    def __repr__(self) -> str:
        return f"ExecutionLookup({self.state.value}, confirm={self.confirm!r}, reason={self.reason!r})"


@runtime_checkable
class DealerAdapter(Protocol):
    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        """The dealers this adapter serves."""
        ...

    async def start(self, sink: InboundSink) -> None:
        """Connect; from now on deliver inbound messages to ``sink``."""
        ...

    async def close(self) -> None:
        """Disconnect and release resources. Idempotent."""
        ...

    def is_online(self, dealer_id: DealerId) -> bool: ...

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None: ...

    async def send_award(self, dealer_id: DealerId, award: Award) -> None: ...

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None: ...

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """Ask the dealer what became of an execution; UNKNOWN when it cannot say,
        NOT_FOUND only when the dealer answered that it has no record of it."""
        ...

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        """How ``dealer_id`` can be asked (see ``LookupPolicy``)."""
        ...
