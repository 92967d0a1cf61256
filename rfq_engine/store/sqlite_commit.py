"""The SQLite writer's commit: a whole batch in one hop to the writer's own thread.

Why not the async engine. Through aiosqlite + SQLAlchemy async every statement is a round
trip between the event loop and aiosqlite's thread (BEGIN, the events executemany, each
SELECT, each upsert, COMMIT): about ten hops per batch, each costing more than the
statement. Here a plain ``sqlite3`` connection, owned by a single-thread executor, runs
the insert, the row loads, the projection, the upserts and the COMMIT in one
``run_in_executor`` call. Reads stay on the async engine (WAL: they never block this).

The writer (``GroupCommitWriter``) runs ``commit_sync`` and the checkpoint's write in that
same hop (``ThreadCommit``). WAL checkpoints run on a second connection and thread
(``wal.WalCheckpointer``), never inside a commit. Rows that exist are changed by
``UPDATE`` of the columns that changed (``updates.ColumnUpdates``), not rewritten whole.

Rows the batch itself creates are not read first (see ``projection.touched``):
``quote.received`` replaces its row anyway; a new rfq, award or fill is written with a
plain INSERT, and if such a row did exist after all (a replayed ``rfq.submitted``, a
repeated ``fill.recorded``), the INSERT's conflict rolls the transaction back and the
batch is redone reading every row, so the result is exactly the projection's rules.

Only the writer task calls ``commit`` and one at a time, so the row cache is used by one
thread at a time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Date, Table, insert

from rfq_engine.domain import parse_ts
from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow
from rfq_engine.store.projection import Change, Dirty, Tables, Touched, apply_change, touched
from rfq_engine.store.rowcache import RowCache
from rfq_engine.store.tables import (
    Bulk,
    DecimalText,
    UtcTimestamp,
    awards,
    fills,
    quotes,
    rfqs,
)
from rfq_engine.store.updates import ColumnUpdates
from rfq_engine.store.wal import WalCheckpointer, close_on_thread
from rfq_engine.store.writer import ThreadCommit

__all__ = ["SqliteCommitter"]

_IN_CHUNK: Final = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit
Prepared = tuple[list[tuple[Any, ...]], list[Change]]  # event rows, projection changes


def _parse_ts(value: str) -> Any:
    return parse_ts(value, "ts")


def _decoder(table: Table, name: str) -> Callable[[Any], Any] | None:
    column = table.c[name]
    if isinstance(column.type, DecimalText):
        return Decimal
    if isinstance(column.type, UtcTimestamp):
        return _parse_ts
    if isinstance(column.type, Date):
        return date.fromisoformat
    if name == "spec":
        return json.loads
    return None


class _Loader:
    """SELECT of whole rows by one key column, decoded as the async engine would."""

    def __init__(self, table: Table, key: str, make: Callable[..., Any]) -> None:
        names = [c.name for c in table.columns]
        self._sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE {key} IN "
        self._decoders = [(i, d) for i, n in enumerate(names) if (d := _decoder(table, n))]
        self._make = make

    def rows(self, conn: sqlite3.Connection, keys: Iterable[str]) -> Iterator[Any]:
        items = sorted(keys)
        for start in range(0, len(items), _IN_CHUNK):
            chunk = items[start : start + _IN_CHUNK]
            sql = f"{self._sql}({', '.join('?' * len(chunk))})"
            for raw in conn.execute(sql, chunk):
                values = list(raw)
                for i, decode in self._decoders:
                    if values[i] is not None:
                        values[i] = decode(values[i])
                yield self._make(*values)


_RFQS: Final = _Loader(rfqs, "rfq_id", RfqRow)
_QUOTES: Final = _Loader(quotes, "rfq_id", QuoteRow)
_AWARDS: Final = _Loader(awards, "execution_id", AwardRow)
_FILLS: Final = _Loader(fills, "fill_id", FillRow)


class _Conflict(Exception):
    """A row assumed new already existed: redo the batch reading every row."""


class _Stale(Exception):
    """A row believed present (cached) was not there to update: drop the cache and redo."""


def _connect(path: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in pragmas:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteCommitter:
    """Owns the writer's ``sqlite3`` connection and the thread it lives on."""

    def __init__(
        self, path: str, pragmas: Sequence[str], insert_events: Bulk,
        upserts: dict[str, Bulk], cache: RowCache, dialect: Any, *, cache_mib: int = 64,
        wal_every_rows: int = 1000,
    ) -> None:
        self._path = path
        self._pragmas = [
            *pragmas, "PRAGMA wal_autocheckpoint = 0", f"PRAGMA cache_size = {-1024 * cache_mib}",
        ]
        self._insert_events = insert_events
        self._upserts = upserts
        self._inserts = {t.name: Bulk.compile(insert(t), t, dialect) for t in (rfqs, awards, fills)}
        self._updates = {t.name: ColumnUpdates(t) for t in (rfqs, quotes, awards, fills)}
        self.cache = cache
        self.wal = WalCheckpointer(
            functools.partial(_connect, path, list(pragmas)), every_rows=wal_every_rows
        )
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit-sqlite-writer")
        self._conn = await asyncio.get_running_loop().run_in_executor(
            self._executor, _connect, self._path, self._pragmas
        )
        await self.wal.open()

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        try:
            await self.wal.close()  # first: the last connection to close checkpoints the WAL
        finally:
            await close_on_thread(executor, conn)

    def thread_commit(self) -> ThreadCommit[Prepared]:
        """``commit_sync`` and the thread it runs on, for the writer."""
        if self._executor is None:
            raise sqlite3.ProgrammingError("the SQLite writer connection is not open")
        return ThreadCommit(self._executor, self.commit_sync)

    def commit_sync(self, parts: list[Prepared]) -> None:
        """One transaction for the batch. Only on the writer's thread (``thread_commit``)."""
        if self._conn is None:
            raise sqlite3.ProgrammingError("the SQLite writer connection is closed")
        self._commit(self._conn, parts)

    # --- in the writer thread ------------------------------------------------------------

    def _commit(self, conn: sqlite3.Connection, parts: list[Prepared]) -> None:
        params = [row for part in parts for row in part[0]]
        changes = [change for part in parts for change in part[1]]
        self.wal.before_begin(conn)
        optimistic = True
        try:
            while True:  # at most three rounds: the third reads every row, with no cache
                try:
                    tables, dirty = self._transaction(conn, params, changes, optimistic=optimistic)
                    break
                except _Conflict:  # a row assumed new existed: read every row
                    optimistic = False
                except _Stale:  # a cached row had gone: read every row, trust no cache
                    optimistic = False
                    self.cache.clear()
        except BaseException:
            self.cache.clear()  # the rows applied may or may not be in the database
            raise
        self.cache.remember(tables, dirty)
        self.wal.after_commit(conn)

    def _transaction(
        self, conn: sqlite3.Connection, params: list[tuple[Any, ...]], changes: list[Change],
        *, optimistic: bool,
    ) -> tuple[Tables, Dirty]:
        tables, dirty = Tables(), Dirty()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self._insert_events.sql, params)
            if changes:
                created = Touched() if optimistic else None
                tables, missing = self.cache.split(touched(changes, created))
                if created is not None:  # cached rows exist: only the others are assumed new
                    created.rfq_ids -= tables.rfqs.keys()
                    created.execution_ids -= tables.awards.keys()
                    created.fill_ids -= tables.fills.keys()
                    missing.rfq_ids -= created.rfq_ids
                    missing.quote_keys -= created.quote_keys
                    missing.execution_ids -= created.execution_ids
                    missing.fill_ids -= created.fill_ids
                self._load(conn, missing, tables)
                stored = Tables(  # the rows as stored: cached or just read
                    dict(tables.rfqs), dict(tables.quotes), dict(tables.awards), dict(tables.fills)
                )
                for change in changes:
                    apply_change(tables, change, dirty)
                self._write(conn, tables, stored, dirty, created or Touched())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return tables, dirty

    @staticmethod
    def _load(conn: sqlite3.Connection, keys: Touched, found: Tables) -> None:
        for rfq in _RFQS.rows(conn, keys.rfq_ids):
            found.rfqs[rfq.rfq_id] = rfq
        for quote in _QUOTES.rows(conn, {k[0] for k in keys.quote_keys}):
            found.quotes.setdefault((quote.rfq_id, quote.dealer_id, quote.quote_id), quote)
        for award in _AWARDS.rows(conn, keys.execution_ids):
            found.awards[award.execution_id] = award
        for fill in _FILLS.rows(conn, keys.fill_ids):
            found.fills[fill.fill_id] = fill

    def _write(
        self, conn: sqlite3.Connection, tables: Tables, stored: Tables, dirty: Dirty, new: Touched,
    ) -> None:
        """Stored rows by UPDATE of what changed; rows of ``new`` keys (not read: assumed
        absent) by plain INSERT; the rest (absent, or replaced without reading) by upsert."""
        self._write_table(conn, "rfqs", tables.rfqs, stored.rfqs, dirty.rfqs, new.rfq_ids)
        self._write_table(conn, "quotes", tables.quotes, stored.quotes, dirty.quotes, set())
        self._write_table(conn, "awards", tables.awards, stored.awards, dirty.awards,
                          new.execution_ids)
        self._write_table(conn, "fills", tables.fills, stored.fills, dirty.fills, new.fill_ids)

    def _write_table(
        self, conn: sqlite3.Connection, name: str, rows: dict[Any, Any], stored: dict[Any, Any],
        keys: set[Any], assumed: set[Any],
    ) -> None:
        fresh: list[Any] = []
        rest: list[Any] = []
        changed: list[tuple[Any, Any]] = []
        for key in keys:
            before = stored.get(key)
            if before is not None:
                changed.append((before, rows[key]))
            elif key in assumed:
                fresh.append(rows[key])
            else:
                rest.append(rows[key])
        if fresh:
            bulk = self._inserts[name]
            try:
                conn.executemany(bulk.sql, bulk.params(fresh))
            except sqlite3.IntegrityError as exc:
                raise _Conflict(name) from exc
        if rest:
            bulk = self._upserts[name]
            conn.executemany(bulk.sql, bulk.params(rest))
        if changed:
            meant, updated = self._updates[name].execute(conn, changed)
            if updated != meant:
                raise _Stale(name)
