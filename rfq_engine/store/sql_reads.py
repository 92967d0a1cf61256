"""The query tables' reads of the SQL store (rfqs, quotes, awards, fills).

The SQLite writer commits the query tables just after the events (sqlite_commit.py), so
they can be behind what was acknowledged. In the writing process each read first waits
for them to reach the durable head (``wait``: usually they are there already, else one
projection transaction). A read-only reader cannot write them: if they are behind (an
engine between its two commits, or one killed there and not yet restarted), it projects
the missing events' rows in memory (``missing_rows``) and merges them, by key, into its
SQL answer, read in the same snapshot; the result is filtered and ordered by the same
pure rules as the in-memory store (queries.py).

Every filter and the keyset pagination of ``RfqQuery`` run in SQL (``rfq_where``), on the
``(…, created_at, rfq_id)`` indexes of tables.py: a page of RFQs reads about as many rows
as it returns, however many RFQs there are.
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Select, Table, literal, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rfq_engine.store import queries
from rfq_engine.store.base import (
    AwardRow,
    FillQuery,
    FillRow,
    QueryTables,
    QuoteRow,
    RfqQuery,
    RfqRow,
    StoreError,
)
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

__all__ = [
    "SqlQueryTables",
    "chunks",
    "fill_where",
    "load_rows",
    "missing_rows",
    "rfq_where",
    "store_errors",
]

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


def _equal(table: Table, **values: str | None) -> list[ColumnElement[bool]]:
    """``column = value`` for each value given (None: any)."""
    return [table.c[name] == value for name, value in values.items() if value is not None]


def rfq_where(query: RfqQuery) -> list[ColumnElement[bool]]:
    """``query``'s criteria (all but the limit) as a WHERE clause: queries.rfq_matches in SQL."""
    c = rfqs.c
    where = _equal(rfqs, requester=query.requester, mandate=query.mandate)
    if query.states is not None:
        where.append(c.state.in_(list(query.states)))
    if query.created_since is not None:
        where.append(c.created_at >= query.created_since)
    if query.created_until is not None:
        where.append(c.created_at < query.created_until)
    if query.after is not None:  # a row value: one range on the (created_at, rfq_id) index
        after = query.after
        where.append(tuple_(c.created_at, c.rfq_id) < tuple_(
            literal(after.created_at, c.created_at.type), literal(after.rfq_id, c.rfq_id.type)
        ))
    return where


def fill_where(query: FillQuery) -> list[ColumnElement[bool]]:
    """``query`` as a WHERE clause: queries.fill_matches in SQL."""
    c = fills.c
    where = _equal(fills, rfq_id=query.rfq_id, dealer_id=query.dealer_id, mandate=query.mandate)
    if query.since is not None:
        where.append(c.filled_at >= query.since)
    if query.open_on is not None:
        where.append(c.last_date.is_(None) | (c.last_date >= query.open_on))
    return where


NEWEST_FIRST: Final = (rfqs.c.created_at.desc(), rfqs.c.rfq_id.desc())


class SqlQueryTables(QueryTables):
    """The query tables of SqlAuditStore, which mixes this in and supplies the engine
    (``_require_engine``), the writing process's wait for its projection
    (``_tables_current``) and whether reads merge the rows the tables miss
    (``_overlays``: a read-only SQLite reader, which merges ``missing_rows`` into its
    answers, both read in one snapshot)."""

    @abstractmethod
    def _require_engine(self) -> AsyncEngine: ...

    @abstractmethod
    async def _tables_current(self) -> None: ...

    @property
    @abstractmethod
    def _overlays(self) -> bool: ...

    async def _read(
        self, build: Callable[[Tables | None], Select[Any] | None]
    ) -> tuple[Tables | None, list[Any]]:
        """The rows missing from the tables (None: none) and the rows of ``build(missing)``
        (a None statement: no query)."""
        await self._tables_current()
        with store_errors("query"):
            async with self._require_engine().connect() as conn:
                missing = None
                if self._overlays:
                    await conn.exec_driver_sql("BEGIN")  # one snapshot for both (WAL)
                    missing = await missing_rows(conn)
                stmt = build(missing)
                return missing, [] if stmt is None else list(await conn.execute(stmt))

    async def get_rfq(self, rfq_id: str) -> RfqRow | None:
        def build(missing: Tables | None) -> Select[Any] | None:
            if missing is not None and rfq_id in missing.rfqs:
                return None
            return select(rfqs).where(rfqs.c.rfq_id == rfq_id)

        missing, rows = await self._read(build)
        if missing is not None and rfq_id in missing.rfqs:
            return missing.rfqs[rfq_id]
        return row_to_rfq(rows[0]) if rows else None

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None:
        c = rfqs.c
        where = (c.requester == requester, c.client_rfq_id == client_rfq_id)

        def build(missing: Tables | None) -> Select[Any]:
            if missing is not None:
                return select(rfqs).where(*where)
            return select(c.rfq_id).where(*where).order_by(*NEWEST_FIRST).limit(1)

        missing, rows = await self._read(build)
        if missing is not None:
            found = [row_to_rfq(row) for row in rows]
            return queries.find_rfq(_merged(found, missing.rfqs, _rfq_key), requester, client_rfq_id)
        return str(rows[0][0]) if rows else None

    async def select_rfqs(self, query: RfqQuery) -> list[RfqRow]:
        def build(missing: Tables | None) -> Select[Any]:
            stmt = select(rfqs).where(*rfq_where(query)).order_by(*NEWEST_FIRST)
            if query.limit is not None:  # a missing row replaces at most one stored row
                stmt = stmt.limit(query.limit + (0 if missing is None else len(missing.rfqs)))
            return stmt

        missing, rows = await self._read(build)
        found = [row_to_rfq(row) for row in rows]
        if missing is None:
            return found
        return queries.select_rfqs(_merged(found, missing.rfqs, _rfq_key), query)

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

    async def select_fills(self, query: FillQuery) -> list[FillRow]:
        stmt = select(fills).where(*fill_where(query)).order_by(fills.c.filled_at, fills.c.fill_id)
        missing, rows = await self._read(lambda _: stmt)
        found = [row_to_fill(row) for row in rows]
        if missing is None:
            return found
        return queries.select_fills(_merged(found, missing.fills, _fill_key), query)

    async def sum_notional(self, query: FillQuery) -> Decimal:
        """Summed in Python: the column is exact decimal text and SQL SUM would use floats."""
        def build(missing: Tables | None) -> Select[Any]:
            return select(fills.c.notional if missing is None else fills).where(*fill_where(query))

        missing, rows = await self._read(build)
        if missing is None:
            return sum((row[0] for row in rows), Decimal(0))
        found = [row_to_fill(row) for row in rows]
        return queries.sum_notional(_merged(found, missing.fills, _fill_key), query)


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
