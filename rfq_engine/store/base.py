"""The abstract audit store: one protocol, three recorders (memory, SQLite, PostgreSQL).

Writes go through ``append``, which returns a future that resolves once the event is
durable (group commit by one writer task). Await it before acting on a decision
(write-ahead); fire-and-forget is fine for observations (a quote received), which are
still written in order.

Query tables (rfqs, quotes, awards, fills) are projections of the events, maintained by
the writer in the same transaction as the events that change them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from rfq_engine.store.events import AuditEvent

__all__ = [
    "AuditStore",
    "AwardRow",
    "EventFilter",
    "FillRow",
    "QuoteRow",
    "RfqRow",
    "StoreError",
    "VerifyReport",
]


class StoreError(Exception):
    """The store failed (connection lost, another writer holds the lock, a write failed)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every given criterion must match: ``seq > after_seq``, ``since <= ts < until``,
    ``type in types`` (an empty list matches nothing); ``limit`` caps the result, in seq order."""

    rfq_id: str | None = None
    after_seq: int = 0
    types: Sequence[str] | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None
    seconds: float = 0.0
    # What this verification could not prove, e.g. "no checkpoint: deletion of the
    # newest events cannot be detected"; informational, ``ok`` does not depend on it.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RfqRow:
    rfq_id: str
    client_rfq_id: str | None
    requester: str
    mandate: str
    direction: str
    quantity: Decimal
    quantity_unit: str
    state: str
    notional: Decimal
    filled_quantity: Decimal
    created_at: datetime
    updated_at: datetime
    reason: str
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QuoteRow:
    rfq_id: str
    dealer_id: str
    quote_id: str
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal | None
    valid_until: datetime | None
    received_at: datetime
    status: str  # received | valid | rejected
    rank: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AwardRow:
    execution_id: str
    rfq_id: str
    dealer_id: str
    quote_id: str
    side: str
    price: Decimal
    quantity: Decimal
    confirm_by: datetime
    status: str  # pending | confirmed | rejected
    reason: str


@dataclass(frozen=True, slots=True)
class FillRow:
    fill_id: str
    execution_id: str
    rfq_id: str
    dealer_id: str
    mandate: str
    price: Decimal
    quantity: Decimal
    notional: Decimal
    dealer_trade_id: str
    filled_at: datetime
    last_date: date | None


@runtime_checkable
class AuditStore(Protocol):
    async def open(self) -> None:
        """Create tables if needed, take the single-writer lock, start the writer."""
        ...

    async def close(self) -> None:
        """Flush pending events, stop the writer, release the lock. Idempotent."""
        ...

    def append(
        self, rfq_id: str | None, type_: str, actor: str, payload: Mapping[str, Any]
    ) -> asyncio.Future[AuditEvent]:
        """Queue an event; the future resolves with the stored event once it is durable."""
        ...

    async def flush(self) -> None:
        """Wait until every event appended so far is durable."""
        ...

    @property
    def queue_depth(self) -> int: ...

    async def events(self, flt: EventFilter = EventFilter()) -> list[AuditEvent]: ...

    def stream(
        self, flt: EventFilter = EventFilter(), batch: int = 5000
    ) -> AsyncIterator[AuditEvent]:
        """Every matching event in seq order, fetched in batches (for export and verify)."""
        ...

    async def verify(self) -> VerifyReport: ...

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None: ...

    async def get_rfq(self, rfq_id: str) -> RfqRow | None: ...

    async def rfqs(
        self, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[RfqRow]: ...

    async def quotes(self, rfq_id: str) -> list[QuoteRow]: ...

    async def awards(self, rfq_id: str) -> list[AwardRow]: ...

    async def fills(
        self,
        rfq_id: str | None = None,
        dealer_id: str | None = None,
        since: datetime | None = None,
    ) -> list[FillRow]: ...

    async def filled_notional(
        self,
        *,
        since: datetime | None = None,
        mandate: str | None = None,
        dealer_id: str | None = None,
        open_on: date | None = None,
    ) -> Decimal:
        """Sum of fill notional matching every given filter; ``open_on`` keeps fills whose
        instrument is still alive on that date (last_date None or >= open_on)."""
        ...
