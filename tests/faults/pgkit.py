"""A PostgreSQL database of one test's own, and the store faults a test inflicts on it.

Every fault acts on that database only: its backends are terminated by database name
(never another test's), connections to it are refused with ``ALLOW_CONNECTIONS false``
(a restart as the engine sees it, without restarting the shared server), and it is made
read-only with ``default_transaction_read_only``. The database is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

PG_SERVER = os.environ.get("RFQ_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


async def _admin(sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@dataclass(frozen=True)
class PgDatabase:
    name: str

    @property
    def dsn(self) -> str:
        return f"{PG_SERVER}/{self.name}"

    @property
    def url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def terminate_backends(self) -> int:
        """Kill every session on this database (the engine's pool and its lock): what a
        database restart does to the engine's connections. Returns how many."""
        rows = await _admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", self.name)
        return len(rows)

    async def refuse_connections(self) -> None:
        """The database is down: new connections are refused, existing ones killed."""
        await _admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        await self.terminate_backends()

    async def allow_connections(self) -> None:
        await _admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    async def read_only(self, on: bool = True) -> None:
        """New sessions may not write (a standby, a full disk set read-only by the DBA)."""
        value = "on" if on else "off"
        await _admin(f'ALTER DATABASE "{self.name}" SET default_transaction_read_only = {value}')
        await self.terminate_backends()

    async def sessions(self) -> int:
        rows = await _admin("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.name)
        return int(rows[0][0])


@asynccontextmanager
async def fresh_database() -> AsyncIterator[PgDatabase]:
    db = PgDatabase(f"rfq_fault_{secrets.token_hex(6)}")
    await _admin(f'CREATE DATABASE "{db.name}"')
    try:
        yield db
    finally:
        await _admin(f'ALTER DATABASE "{db.name}" ALLOW_CONNECTIONS true')
        await _admin(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')


async def kill_connection_on(db: PgDatabase, event_type: str) -> None:
    """The first transaction that inserts an event of ``event_type`` loses its connection
    mid-commit: its backend terminates itself (a sequence, which no rollback undoes, makes
    it happen once). Needs the store's tables."""
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        await conn.execute(
            "CREATE SEQUENCE IF NOT EXISTS fault_hits; "
            "CREATE OR REPLACE FUNCTION kill_once() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.type = TG_ARGV[0] AND nextval('fault_hits') = 1 THEN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$; "
            "DROP TRIGGER IF EXISTS kill_once ON audit_events; "
            f"CREATE TRIGGER kill_once BEFORE INSERT ON audit_events FOR EACH ROW "
            f"EXECUTE FUNCTION kill_once('{event_type}');")
    finally:
        await conn.close()


async def fault_hits(db: PgDatabase) -> int:
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        row = await conn.fetchrow("SELECT last_value, is_called FROM fault_hits")
        return int(row[0]) if row is not None and row[1] else 0
    finally:
        await conn.close()
