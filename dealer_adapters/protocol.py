"""The one small protocol every dealer transport implements.

An adapter carries messages; it never decides. The engine calls ``send_*`` and the
adapter hands every inbound message to the ``InboundSink`` it was started with, stamped
with ``received_at`` on arrival. Messages the transport cannot accept (malformed,
unsigned, spoofed) are handed over as ``InboundRejected`` so the engine audits them.

One adapter may serve several dealers (one MQTT connection for all MQTT desks); the
engine maps each dealer id to the adapter that serves it.

Exceptions: ``send_*`` raise ``DealerUnavailable`` when the message could not be handed
to the transport (dealer offline, connection down). The engine treats that dealer as
absent for the RFQ; it never retries a send on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable

from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    Inbound,
    RfqClosed,
    RfqError,
    RfqNew,
)

__all__ = [
    "DealerAdapter",
    "DealerUnavailable",
    "ExecutionLookup",
    "ExecutionState",
    "InboundSink",
]

InboundSink = Callable[[Inbound], None]
"""Non-blocking hand-off to the engine; called on the event loop's thread."""


class DealerUnavailable(RfqError):
    """The transport could not take a message for this dealer."""

    def __init__(self, dealer_id: str, reason: str) -> None:
        super().__init__(f"dealer {dealer_id} unavailable: {reason}")
        self.dealer_id = dealer_id
        self.reason = reason


class ExecutionState(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the dealer has no record, or the transport cannot ask


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
        """Ask the dealer what became of an execution; UNKNOWN when it cannot say."""
        ...
