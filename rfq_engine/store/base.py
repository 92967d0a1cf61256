"""The abstract audit store, in two halves, three implementations (memory, SQLite, PostgreSQL).

Writes go through ``append``, which returns a future that resolves once the event is
durable (group commit by one writer task). Await it before acting on a decision
(write-ahead); fire-and-forget is fine for observations (a quote received), which are
still written in order.

``EventRecorder`` is the write side: append, flush, read and verify the events. The
``QueryTables`` (rfqs, quotes, awards, fills) are the read side: projections of the events,
maintained by the writer, queried with one filter value per table (``RfqQuery``,
``FillQuery``) that every implementation takes and the SQL store turns into its WHERE clause.
``AuditStore`` is both, as the stores implement them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from rfq_engine.domain.errors import StoreFault
from rfq_engine.store.events import AuditEvent

if TYPE_CHECKING:
    from rfq_engine.store.outage import HealthWatcher, StoreHealth

__all__ = [
    "ALL_FILLS",
    "ALL_RFQS",
    "AuditStore",
    "AwardRow",
    "EventFilter",
    "EventRecorder",
    "FillQuery",
    "FillRow",
    "QueryTables",
    "QuoteRow",
    "RfqCursor",
    "RfqPage",
    "RfqQuery",
    "RfqRow",
    "StoreError",
    "VerifyReport",
]


class StoreError(StoreFault):
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


@dataclass(frozen=True, slots=True)
class RfqCursor:
    """Where a page of RFQs ended: its last row's ``(created_at, rfq_id)``. The next page
    holds the RFQs after it in newest-first order (keyset pagination: no offset, so a page
    costs the same however deep it is, and RFQs created meanwhile shift nothing)."""

    created_at: datetime
    rfq_id: str

    @classmethod
    def of(cls, row: RfqRow) -> RfqCursor:
        return cls(row.created_at, row.rfq_id)


@dataclass(frozen=True, slots=True)
class RfqQuery:
    """Which RFQs, newest first (``created_at`` then ``rfq_id``, both descending). Every
    given criterion must match: ``state in states`` (an empty list matches nothing),
    ``requester``, ``mandate``, ``created_since <= created_at < created_until``, and
    ``after``: older than that cursor. ``limit`` caps the result (None: all)."""

    states: Sequence[str] | None = None
    requester: str | None = None
    mandate: str | None = None
    created_since: datetime | None = None
    created_until: datetime | None = None
    after: RfqCursor | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


@dataclass(frozen=True, slots=True)
class RfqPage:
    """One page of an RfqQuery; ``next`` is the cursor of the following page (None: last)."""

    rows: list[RfqRow]
    next: RfqCursor | None


@dataclass(frozen=True, slots=True)
class FillQuery:
    """Which fills, oldest first (``filled_at`` then ``fill_id``). Every given criterion
    must match: ``rfq_id``, ``dealer_id``, ``mandate``, ``filled_at >= since``, and
    ``open_on``: the instrument is still alive on that date (``last_date`` None or >= it)."""

    rfq_id: str | None = None
    dealer_id: str | None = None
    mandate: str | None = None
    since: datetime | None = None
    open_on: date | None = None


ALL_RFQS: Final = RfqQuery()
ALL_FILLS: Final = FillQuery()


@runtime_checkable
class EventRecorder(Protocol):
    """The write side: the hash-chained log of events, its lifecycle and its verification."""

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

    @property
    def health(self) -> StoreHealth:
        """Whether the writer can commit (``outage.py``); a store that does not say is up."""
        from rfq_engine.store.outage import UP

        return UP

    def watch_health(self, watcher: HealthWatcher) -> None:
        """Call ``watcher`` when the store goes down, comes back, or its writer stops."""
        return None


@runtime_checkable
class QueryTables(Protocol):
    """The read side: the query tables, projections of the events that every answer shows
    as of every event acknowledged durable. A store implements the seven queries on top;
    the shorthands below are written once here, for the stores that subclass it."""

    async def get_rfq(self, rfq_id: str) -> RfqRow | None: ...

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None:
        """The newest RFQ with this requester and client id."""
        ...

    async def select_rfqs(self, query: RfqQuery) -> list[RfqRow]: ...

    async def quotes(self, rfq_id: str) -> list[QuoteRow]:
        """Ordered by (received_at, dealer_id, quote_id)."""
        ...

    async def awards(self, rfq_id: str) -> list[AwardRow]:
        """Ordered by (confirm_by, execution_id)."""
        ...

    async def select_fills(self, query: FillQuery) -> list[FillRow]: ...

    async def sum_notional(self, query: FillQuery) -> Decimal:
        """The exact sum of the matching fills' notional (Decimal, never a float)."""
        ...

    # --- shorthands ---------------------------------------------------------------------

    async def rfq_page(self, query: RfqQuery) -> RfqPage:
        """``query.limit`` RFQs (all if None) and the cursor of the next page, if any."""
        if query.limit is None:
            return RfqPage(await self.select_rfqs(query), None)
        rows = await self.select_rfqs(replace(query, limit=query.limit + 1))
        more = len(rows) > query.limit > 0  # one row more than asked for: a next page
        del rows[query.limit :]
        return RfqPage(rows, RfqCursor.of(rows[-1]) if more else None)

    async def rfqs(
        self, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[RfqRow]:
        return await self.select_rfqs(RfqQuery(states=states, limit=limit))

    async def fills(
        self, rfq_id: str | None = None, dealer_id: str | None = None,
        since: datetime | None = None,
    ) -> list[FillRow]:
        return await self.select_fills(FillQuery(rfq_id=rfq_id, dealer_id=dealer_id, since=since))

    async def filled_notional(
        self, *, since: datetime | None = None, mandate: str | None = None,
        dealer_id: str | None = None, open_on: date | None = None,
    ) -> Decimal:
        return await self.sum_notional(
            FillQuery(dealer_id=dealer_id, mandate=mandate, since=since, open_on=open_on)
        )


@runtime_checkable
class AuditStore(EventRecorder, QueryTables, Protocol):
    """Both sides, as the memory and SQL stores implement them (subclassing this for the
    shorthands of QueryTables). Code that only writes, or only reads, can ask for one side."""
