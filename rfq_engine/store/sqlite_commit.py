"""The SQLite writer's commit, on the writer's own thread: a batch is two transactions, the
events, then the query tables.

Why not the async engine. Through aiosqlite + SQLAlchemy async every statement is a round
trip between the event loop and aiosqlite's thread (BEGIN, the events executemany, each
SELECT, each upsert, COMMIT): about ten hops per batch, each costing more than the
statement. Here a plain ``sqlite3`` connection, owned by a single-thread executor, runs
each transaction in one ``run_in_executor`` call. Reads stay on the async engine (WAL:
they never block this).

Events first, the query tables after. The events (the audit record, the chain) are one
transaction with the configured ``synchronous`` (FULL: fsynced): ``commit_events``, in
the same hop as the checkpoint's write, after which the writer resolves the appenders'
futures. ``project`` then applies the batch to the query tables (rfqs, quotes, awards,
fills) in a second transaction that also moves the ``projection_state`` watermark, as a
second job on this thread once the tasks the futures woke have run (``ThreadCommit.after``).
A decision waits for its event's commit only, not for the projection's reads, upserts and
index pages (measured: about half of the old single transaction). The second transaction
runs with ``synchronous = NORMAL``: no fsync of its own. The WAL is written in order, so
the next events commit's fsync makes it durable too; a power loss before that loses at
most projection rows whose events are durable.

The query tables are a function of the events (projection.py), so nothing is lost when they
lag: if the process dies between the two transactions, or the second one fails (it is
logged and ``projection_error`` set; the events stand), the next commit, a reader
(``catch_up``) or the next ``open`` replays the events after the watermark. Readers in this
process wait for the projection to reach the durable head before they read
(``SqlAuditStore``), so a caller never misses the rows of an event it was told is durable.

WAL checkpoints run on a second connection and thread (``wal.WalCheckpointer``), never
inside a commit; a checkpoint fsyncs the WAL before it copies frames, so it never moves an
unsynced projection frame into the database file. Rows that exist are changed by
``UPDATE`` of the columns that changed (``updates.ColumnUpdates``), not rewritten whole.

Rows the batch itself creates are not read first (see ``projection.touched``):
``quote.received`` replaces its row anyway; a new rfq, award or fill is written with a
plain INSERT, and if such a row did exist after all (a replayed ``rfq.submitted``, a
repeated ``fill.recorded``), the INSERT's conflict rolls the transaction back and the
batch is redone reading every row, so the result is exactly the projection's rules.

Only the writer task calls ``commit_events`` and ``project``, one at a time, and ``catch_up``
runs on the same single thread, so the row cache is used by one thread at a time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Date, Table, insert

from rfq_engine import failpoints
from rfq_engine.domain import parse_ts
from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow
from rfq_engine.store.events import AuditEvent, EventType
from rfq_engine.store.projection import (
    Change,
    Dirty,
    Tables,
    Touched,
    apply_change,
    changes_for,
    touched,
)
from rfq_engine.store.rowcache import RowCache
from rfq_engine.store.tables import (
    PROJECTION,
    Bulk,
    DecimalText,
    UtcTimestamp,
    awards,
    fills,
    projection_state,
    quotes,
    rfqs,
)
from rfq_engine.store.updates import ColumnUpdates
from rfq_engine.store.wal import EVERY_ROWS, WalCheckpointer, close_on_thread
from rfq_engine.store.writer import ThreadCommit

__all__ = ["SqliteCommitter"]

log = logging.getLogger(__name__)

_IN_CHUNK: Final = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit
_REPLAY_CHUNK: Final = 2000  # events per transaction when the tables catch up
_REPLAY_SQL: Final = (
    "SELECT seq, ts, rfq_id, type, actor, payload, prev_hash, hash FROM audit_events "
    "WHERE seq > ? ORDER BY seq LIMIT ?"
)
_WATERMARK_SQL: Final = f"UPDATE {projection_state.name} SET seq = ? WHERE name = ?"
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
        wal_every_rows: int = EVERY_ROWS, synchronous: str = "FULL",
    ) -> None:
        self._path = path
        sync = synchronous.upper()
        self._events_sync = sync  # what the pragmas set: the events' transactions
        self._tables_sync = "NORMAL" if sync in ("FULL", "EXTRA") else sync
        self._sync_now = sync
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
        # The newest seq the query tables are committed up to (read and written on the
        # writer's thread; an int read from the loop's thread by the read barrier).
        self.projected = 0
        self.projection_error: Exception | None = None

    async def open(self) -> None:
        """Connect, and bring the query tables up to the events (a crash may have left
        them behind). Raises if they cannot be: the store must not serve stale tables."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit-sqlite-writer")
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(
            self._executor, _connect, self._path, self._pragmas
        )
        await self.wal.open()
        await loop.run_in_executor(self._executor, self._open_projection)

    async def catch_up(self) -> None:
        """Replay the events the query tables miss, on the writer's thread (between two
        commits). Raises what stopped it; ``projection_error`` keeps it too."""
        if self._executor is None:
            raise sqlite3.ProgrammingError("the SQLite writer connection is not open")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._catch_up_sync)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        try:
            await self.wal.close()  # first: the last connection to close checkpoints the WAL
        finally:
            await close_on_thread(executor, conn)

    def thread_commit(self) -> ThreadCommit[Prepared]:
        """``commit_events`` then ``project``, and the thread they run on, for the writer."""
        if self._executor is None:
            raise sqlite3.ProgrammingError("the SQLite writer connection is not open")
        return ThreadCommit(self._executor, self.commit_events, self.project)

    def commit_events(self, parts: list[Prepared]) -> None:
        """The batch's events, one transaction with the configured ``synchronous``. Only on
        the writer's thread (``thread_commit``)."""
        conn = self._require_conn()
        self.wal.before_begin(conn)
        self._use_sync(conn, self._events_sync)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self._insert_events.sql, [row for part in parts for row in part[0]])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if failpoints.active("award.tables_pending") and any(
            row[3] == EventType.AWARD_DECIDED for part in parts for row in part[0]
        ):
            failpoints.hit("award.tables_pending")

    def project(self, parts: list[Prepared]) -> None:
        """The batch's changes to the query tables, after ``commit_events``; a failure is
        logged and kept in ``projection_error``, and replayed later. Writer's thread only."""
        conn = self._require_conn()
        try:
            self._use_sync(conn, self._tables_sync)
            first, last = parts[0][0][0][0], parts[-1][0][-1][0]
            if self.projected == first - 1:
                self._project(conn, [change for part in parts for change in part[1]], last)
            else:  # behind (a failure, or a commit that landed despite an error): replay
                self._catch_up(conn)
        except Exception as exc:
            self._projection_failed(exc)
        else:
            self.projection_error = None
        self.wal.after_commit(conn)

    # --- in the writer thread ------------------------------------------------------------

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the SQLite writer connection is closed")
        return self._conn

    def _use_sync(self, conn: sqlite3.Connection, mode: str) -> None:
        if self._sync_now != mode:
            conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync_now = mode

    def _projection_failed(self, exc: Exception) -> None:
        self.cache.clear()
        self.projection_error = exc
        log.error("audit query tables stopped at seq %d (the events are durable; replayed "
                  "at the next commit): %r", self.projected, exc)

    def _open_projection(self) -> None:
        conn = self._require_conn()
        head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0]
        row = conn.execute(
            f"SELECT seq FROM {projection_state.name} WHERE name = ?", (PROJECTION,)
        ).fetchone()
        if row is None:  # a new database, or one whose tables were committed with the events
            conn.execute(
                f"INSERT INTO {projection_state.name} (name, seq) VALUES (?, ?)", (PROJECTION, head)
            )
            self.projected = int(head)
        else:
            self.projected = int(row[0])
        if self.projected < head:
            log.warning("audit query tables at seq %d, events at %d: replaying", self.projected, head)
            self._catch_up_sync()

    def _catch_up_sync(self) -> None:
        conn = self._require_conn()
        try:
            self._use_sync(conn, self._tables_sync)
            self._catch_up(conn)
        except Exception as exc:
            self._projection_failed(exc)
            raise
        self.projection_error = None

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        """Apply the stored events after the watermark, a chunk per transaction."""
        while rows := conn.execute(_REPLAY_SQL, (self.projected, _REPLAY_CHUNK)).fetchall():
            changes = [
                change for r in rows
                for change in changes_for(AuditEvent(r[0], _parse_ts(r[1]), *r[2:]))
            ]
            self._project(conn, changes, rows[-1][0])

    def _project(self, conn: sqlite3.Connection, changes: list[Change], last: int) -> None:
        """Apply ``changes`` (the events up to ``last``) to the query tables and move the
        watermark to ``last``, in one transaction."""
        optimistic = True
        try:
            while True:  # at most three rounds: the third reads every row, with no cache
                try:
                    tables, dirty = self._transaction(conn, changes, last, optimistic=optimistic)
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
        self.projected = last

    def _transaction(
        self, conn: sqlite3.Connection, changes: list[Change], last: int, *, optimistic: bool,
    ) -> tuple[Tables, Dirty]:
        tables, dirty = Tables(), Dirty()
        conn.execute("BEGIN IMMEDIATE")
        try:
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
            conn.execute(_WATERMARK_SQL, (last, PROJECTION))
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
