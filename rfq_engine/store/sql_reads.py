"""The query tables' reads of the SQL store (rfqs, quotes, awards, fills).

The SQLite writer commits the query tables just after the events (sqlite_commit.py), so
they can be behind what was acknowledged. In the writing process each read first waits
for them to reach the durable head (``wait``: usually they are there already, else one
projection transaction). A read-only reader cannot write them: if they are behind (an
engine between its two commits, or one killed there and not yet restarted), it projects
the missing events' rows in memory (``missing_rows``) and merges them, by key, into its
SQL answer, read in the same snapshot; the result is filtered and ordered by the same
pure rules as the in-memory store (queries.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rfq_engine.store import queries
from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow, StoreError
from rfq_engine.store.projection import Tables, Touched, apply_change, changes_for, touched
from rfq_engine.store.tables import (
    PROJECTION,
    audit_events,
    awards,
    fills,
    projection_state,
    quotes,
    rfqs,
    row_to_award,
    row_to_event,
    row_to_fill,
    row_to_quote,
    row_to_rfq,
)

__all__ = ["TableReads", "chunks", "load_rows", "missing_rows", "store_errors"]

_IN_CHUNK: Final = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit


@contextlib.contextmanager
def store_errors(doing: str) -> Iterator[None]:
    """Database and OS failures surface as StoreError, as the protocol promises."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise StoreError(f"audit store: {doing} failed: {exc}") from exc


def chunks(keys: Iterable[Any]) -> Iterator[list[Any]]:
    items = sorted(keys)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


async def load_rows(conn: AsyncConnection, keys: Touched, found: Tables) -> None:
    """Add the current rows behind ``keys`` to ``found``, read inside the commit's
    transaction (rows already in ``found`` are not decoded again)."""
    for chunk in chunks(keys.rfq_ids):
        for row in await conn.execute(select(rfqs).where(rfqs.c.rfq_id.in_(chunk))):
            found.rfqs[row.rfq_id] = row_to_rfq(row)
    for chunk in chunks({k[0] for k in keys.quote_keys}):
        for row in await conn.execute(select(quotes).where(quotes.c.rfq_id.in_(chunk))):
            key = (row.rfq_id, row.dealer_id, row.quote_id)
            if key not in found.quotes:
                found.quotes[key] = row_to_quote(row)
    for chunk in chunks(keys.execution_ids):
        stmt = select(awards).where(awards.c.execution_id.in_(chunk))
        for row in await conn.execute(stmt):
            found.awards[row.execution_id] = row_to_award(row)
    for chunk in chunks(keys.fill_ids):
        for row in await conn.execute(select(fills).where(fills.c.fill_id.in_(chunk))):
            found.fills[row.fill_id] = row_to_fill(row)


async def missing_rows(conn: AsyncConnection) -> Tables | None:
    """The query-table rows of the events after the ``projection_state`` watermark,
    projected in memory; None when there are none (or no watermark: tables always current)."""
    try:
        mark = (await conn.execute(
            select(projection_state.c.seq).where(projection_state.c.name == PROJECTION)
        )).scalar()
    except SQLAlchemyError:  # a database from before projection_state: always current
        return None
    if mark is None:
        return None
    stmt = select(audit_events).where(audit_events.c.seq > mark).order_by(audit_events.c.seq)
    changes = [c for row in await conn.execute(stmt) for c in changes_for(row_to_event(row))]
    if not changes:
        return None
    tables = Tables()
    await load_rows(conn, touched(changes), tables)
    for change in changes:
        apply_change(tables, change)
    return tables


class TableReads:
    """The reads, on ``engine``. ``wait``: the writing store's wait for its projection.
    ``overlay``: a read-only SQLite reader, which merges ``missing_rows`` into its answers,
    both read in one snapshot."""

    def __init__(
        self, engine: AsyncEngine, wait: Callable[[], Awaitable[None]], *, overlay: bool
    ) -> None:
        self._engine = engine
        self._wait = wait
        self._overlay = overlay

    async def _read(
        self, build: Callable[[Tables | None], Select[Any] | None]
    ) -> tuple[Tables | None, list[Any]]:
        """The rows missing from the tables (None: none) and the rows of ``build(missing)``
        (a None statement: no query)."""
        await self._wait()
        with store_errors("query"):
            async with self._engine.connect() as conn:
                missing = None
                if self._overlay:
                    await conn.exec_driver_sql("BEGIN")  # one snapshot for both (WAL)
                    missing = await missing_rows(conn)
                stmt = build(missing)
                return missing, [] if stmt is None else list(await conn.execute(stmt))

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None:
        c = rfqs.c
        where = (c.requester == requester, c.client_rfq_id == client_rfq_id)

        def build(missing: Tables | None) -> Select[Any]:
            if missing is not None:
                return select(rfqs).where(*where)
            return select(c.rfq_id).where(*where).order_by(
                c.created_at.desc(), c.rfq_id.desc()
            ).limit(1)

        missing, rows = await self._read(build)
        if missing is not None:
            found = [row_to_rfq(row) for row in rows]
            return queries.find_rfq(_merged(found, missing.rfqs, _rfq_key), requester, client_rfq_id)
        return str(rows[0][0]) if rows else None

    async def get_rfq(self, rfq_id: str) -> RfqRow | None:
        def build(missing: Tables | None) -> Select[Any] | None:
            if missing is not None and rfq_id in missing.rfqs:
                return None
            return select(rfqs).where(rfqs.c.rfq_id == rfq_id)

        missing, rows = await self._read(build)
        if missing is not None and rfq_id in missing.rfqs:
            return missing.rfqs[rfq_id]
        return row_to_rfq(rows[0]) if rows else None

    async def rfqs(
        self, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[RfqRow]:
        def build(missing: Tables | None) -> Select[Any]:
            stmt = select(rfqs).order_by(rfqs.c.created_at.desc(), rfqs.c.rfq_id.desc())
            if states is not None:
                stmt = stmt.where(rfqs.c.state.in_(list(states)))
            if limit is not None:  # the missing rows can replace at most as many as they are
                stmt = stmt.limit(limit + (0 if missing is None else len(missing.rfqs)))
            return stmt

        missing, rows = await self._read(build)
        found = [row_to_rfq(row) for row in rows]
        if missing is None:
            return found
        return queries.select_rfqs(_merged(found, missing.rfqs, _rfq_key), states, limit)

    async def quotes(self, rfq_id: str) -> list[QuoteRow]:
        c = quotes.c
        stmt = select(quotes).where(c.rfq_id == rfq_id).order_by(
            c.received_at, c.dealer_id, c.quote_id
        )
        missing, rows = await self._read(lambda _: stmt)
        found = [row_to_quote(row) for row in rows]
        if missing is None:
            return found
        return queries.select_quotes(_merged(found, missing.quotes, _quote_key), rfq_id)

    async def awards(self, rfq_id: str) -> list[AwardRow]:
        c = awards.c
        stmt = select(awards).where(c.rfq_id == rfq_id).order_by(c.confirm_by, c.execution_id)
        missing, rows = await self._read(lambda _: stmt)
        found = [row_to_award(row) for row in rows]
        if missing is None:
            return found
        return queries.select_awards(_merged(found, missing.awards, _award_key), rfq_id)

    async def fills(
        self,
        rfq_id: str | None = None,
        dealer_id: str | None = None,
        since: datetime | None = None,
    ) -> list[FillRow]:
        c = fills.c
        stmt = select(fills).order_by(c.filled_at, c.fill_id)
        if rfq_id is not None:
            stmt = stmt.where(c.rfq_id == rfq_id)
        if dealer_id is not None:
            stmt = stmt.where(c.dealer_id == dealer_id)
        if since is not None:
            stmt = stmt.where(c.filled_at >= since)
        missing, rows = await self._read(lambda _: stmt)
        found = [row_to_fill(row) for row in rows]
        if missing is None:
            return found
        return queries.select_fills(
            _merged(found, missing.fills, _fill_key), rfq_id, dealer_id, since
        )

    async def filled_notional(
        self,
        *,
        since: datetime | None = None,
        mandate: str | None = None,
        dealer_id: str | None = None,
        open_on: date | None = None,
    ) -> Decimal:
        """Summed in Python: the column is exact decimal text and SQL SUM would use floats."""
        c = fills.c

        def build(missing: Tables | None) -> Select[Any]:
            stmt = select(c.notional) if missing is None else select(fills)
            if since is not None:
                stmt = stmt.where(c.filled_at >= since)
            if mandate is not None:
                stmt = stmt.where(c.mandate == mandate)
            if dealer_id is not None:
                stmt = stmt.where(c.dealer_id == dealer_id)
            if open_on is not None:
                stmt = stmt.where((c.last_date.is_(None)) | (c.last_date >= open_on))
            return stmt

        missing, rows = await self._read(build)
        if missing is None:
            return sum((row[0] for row in rows), Decimal(0))
        return queries.sum_notional(
            _merged([row_to_fill(row) for row in rows], missing.fills, _fill_key), since=since,
            mandate=mandate, dealer_id=dealer_id, open_on=open_on,
        )

R = TypeVar("R")


def _merged(found: list[R], missing: Mapping[Any, R], key: Callable[[R], Any]) -> list[R]:
    """``found`` (the SQL answer) with every row of ``missing`` in place of its stored self."""
    rows = {key(row): row for row in found}
    rows.update(missing)
    return list(rows.values())


def _rfq_key(row: RfqRow) -> str:
    return row.rfq_id


def _quote_key(row: QuoteRow) -> tuple[str, str, str]:
    return row.rfq_id, row.dealer_id, row.quote_id


def _award_key(row: AwardRow) -> str:
    return row.execution_id


def _fill_key(row: FillRow) -> str:
    return row.fill_id
