"""InMemoryAuditStore: both halves of the AuditStore protocol on a list and four dicts.

For tests, simulations and ``--dry-run``: same writer (group commit, futures resolved after
the "commit", chain, optional checkpoint) and same projection code as the SQL store, so
code tested against it behaves the same on SQLite or PostgreSQL. Nothing survives the
process; ``close`` then ``open`` on the same instance keeps the events (a "reopen").
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from rfq_engine.domain import format_ts
from rfq_engine.store import queries
from rfq_engine.store.base import (
    AuditStore,
    AwardRow,
    EventFilter,
    FillQuery,
    FillRow,
    QuoteRow,
    RfqQuery,
    RfqRow,
    StoreError,
    VerifyReport,
)
from rfq_engine.store.chain import RawRow, event_row
from rfq_engine.store.checkpoint import CheckpointLog, key_from_env
from rfq_engine.store.events import GENESIS_HASH, AuditEvent
from rfq_engine.store.outage import HealthWatcher, RetryPolicy, WriterHealth
from rfq_engine.store.projection import Change, Tables, apply_change, changes_for
from rfq_engine.store.verify import check_before_writing, verify_pages
from rfq_engine.store.writer import GroupCommitWriter, WriterStats

__all__ = ["InMemoryAuditStore", "matches"]

_ALL = EventFilter()
_Prepared = tuple[list[AuditEvent], list[Change]]


def matches(event: AuditEvent, flt: EventFilter) -> bool:
    """The EventFilter semantics, as the SQL store's WHERE clause implements them."""
    return (
        event.seq > flt.after_seq
        and (flt.rfq_id is None or event.rfq_id == flt.rfq_id)
        and (flt.types is None or event.type in flt.types)
        and (flt.actor is None or event.actor == flt.actor)
        and (flt.since is None or event.ts >= flt.since)
        and (flt.until is None or event.ts < flt.until)
    )


class InMemoryAuditStore(WriterHealth, AuditStore):
    """An AuditStore that keeps everything in process memory."""

    def __init__(
        self,
        *,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_key: bytes | None = None,
        batch_max: int = 1000,
        retry: RetryPolicy | None = None,
    ) -> None:
        key = checkpoint_key if checkpoint_key is not None else key_from_env()
        self._checkpoint = None if checkpoint_path is None else CheckpointLog(checkpoint_path, key)
        self._batch_max = batch_max
        self._retry = retry
        self._watchers: list[HealthWatcher] = []
        self._events: list[AuditEvent] = []
        self._tables = Tables()
        self._writer: GroupCommitWriter[_Prepared] | None = None
        self.stats = WriterStats()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            raise StoreError("the audit store is already open")
        head = self._head()
        await check_before_writing(self._checkpoint, self._raw_pages(), head)
        writer = GroupCommitWriter(
            self._prepare, self._commit, self._load_head, head, checkpoint=self._checkpoint,
            batch_max=self._batch_max, retry=self._retry,
        )
        writer.stats = self.stats
        self._attach(writer)
        writer.start()
        self._writer = writer

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()

    # --- writing ----------------------------------------------------------------------------

    def append(
        self, rfq_id: str | None, type_: str, actor: str, payload: Mapping[str, Any]
    ) -> asyncio.Future[AuditEvent]:
        if self._writer is None:
            raise StoreError("the audit store is not open")
        return self._writer.submit(rfq_id, type_, actor, payload)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.flush()

    @property
    def queue_depth(self) -> int:
        return 0 if self._writer is None else self._writer.depth

    @staticmethod
    def _prepare(events: list[AuditEvent], payloads: list[dict[str, Any]]) -> _Prepared:
        changes = [c for e, p in zip(events, payloads, strict=True) for c in changes_for(e, p)]
        return events, changes

    async def _commit(self, parts: list[_Prepared]) -> None:
        for events, changes in parts:
            self._events.extend(events)
            for change in changes:
                apply_change(self._tables, change)

    async def _load_head(self) -> tuple[int, str]:
        return self._head()

    def _head(self) -> tuple[int, str]:
        if not self._events:
            return 0, GENESIS_HASH
        last = self._events[-1]
        return last.seq, last.hash

    # --- events -----------------------------------------------------------------------------

    def _select(self, flt: EventFilter) -> Iterator[AuditEvent]:
        # seq is contiguous from 1, so after_seq is a list index.
        start = bisect.bisect_right(self._events, flt.after_seq, key=lambda e: e.seq)
        found = 0
        for event in self._events[start:]:
            if flt.limit is not None and found >= flt.limit:
                return
            if matches(event, flt):
                found += 1
                yield event

    async def events(self, flt: EventFilter = _ALL) -> list[AuditEvent]:
        return list(self._select(flt))

    async def stream(self, flt: EventFilter = _ALL, batch: int = 5000) -> AsyncIterator[AuditEvent]:
        for n, event in enumerate(self._select(flt), 1):
            yield event
            if n % batch == 0:
                await asyncio.sleep(0)  # let the engine run between batches

    async def verify(self) -> VerifyReport:
        return await verify_pages(self._raw_pages(), self._checkpoint)

    async def _raw_pages(self, size: int = 20_000) -> AsyncGenerator[Sequence[RawRow], None]:
        events = list(self._events)
        for start in range(0, len(events), size):
            yield [event_row(e, format_ts(e.ts)) for e in events[start : start + size]]
            await asyncio.sleep(0)

    # --- query tables -----------------------------------------------------------------------

    async def get_rfq(self, rfq_id: str) -> RfqRow | None:
        return self._tables.rfqs.get(rfq_id)

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None:
        return queries.find_rfq(self._tables.rfqs.values(), requester, client_rfq_id)

    async def select_rfqs(self, query: RfqQuery) -> list[RfqRow]:
        return queries.select_rfqs(self._tables.rfqs.values(), query)

    async def quotes(self, rfq_id: str) -> list[QuoteRow]:
        return queries.select_quotes(self._tables.quotes.values(), rfq_id)

    async def awards(self, rfq_id: str) -> list[AwardRow]:
        return queries.select_awards(self._tables.awards.values(), rfq_id)

    async def select_fills(self, query: FillQuery) -> list[FillRow]:
        return queries.select_fills(self._tables.fills.values(), query)

    async def sum_notional(self, query: FillQuery) -> Decimal:
        return queries.sum_notional(self._tables.fills.values(), query)
