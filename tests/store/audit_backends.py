"""Stores under test: one test's view of a backend (memory, SQLite file, PostgreSQL database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from audit_tamper import SqlTamper

from rfq_engine.store import AuditStore, InMemoryAuditStore, SqlAuditStore
from rfq_engine.store.outage import RetryPolicy

STORE_TABLES = "audit_events, rfqs, quotes, awards, fills"


@dataclass
class Backend:
    """Builds stores on one backend for one test; closes them all at teardown."""

    kind: str  # memory | sqlite | postgres
    url: str
    head: Path  # checkpoint file used when a test asks for one
    dsn: str = ""  # asyncpg DSN (postgres) or the database file (sqlite)
    stores: list[Any] = field(default_factory=list)
    memory: InMemoryAuditStore | None = None

    @property
    def is_sql(self) -> bool:
        return self.kind != "memory"

    def build(
        self, *, readonly: bool = False, checkpoint: bool = True, key: bytes | None = None,
        batch_max: int = 1000, witness: Path | None = None, retry: RetryPolicy | None = None,
    ) -> AuditStore:
        path = self.head if checkpoint else None
        if self.kind == "memory":
            # One instance per test: "reopen" is close() then open() on it.
            if self.memory is None:
                self.memory = InMemoryAuditStore(
                    checkpoint_path=path, checkpoint_key=key, batch_max=batch_max, retry=retry,
                )
            return self.memory
        store = SqlAuditStore(
            self.url, checkpoint_path=path, checkpoint_key=key, readonly=readonly,
            batch_max=batch_max, witness=witness, retry=retry,
        )
        self.stores.append(store)
        return store

    async def open(self, **kw: Any) -> AuditStore:
        store = self.build(**kw)
        await store.open()
        return store

    def tamper(self) -> SqlTamper:
        assert self.is_sql, "direct SQL needs a SQL backend"
        return SqlTamper(self.kind, self.dsn)

    async def close_all(self) -> None:
        for store in [*self.stores, self.memory]:
            if store is not None:
                await store.close()


async def _fresh_pg_tables(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {STORE_TABLES} CASCADE")
    finally:
        await conn.close()


async def make_backend(kind: str, pg_dsn: str, tmp_path: Path) -> Backend:
    if kind == "memory":
        return Backend("memory", "memory://", tmp_path / "memory.head")
    if kind == "sqlite":
        db = tmp_path / "audit.db"
        return Backend("sqlite", f"sqlite+aiosqlite:///{db}", Path(f"{db}.head"), str(db))
    await _fresh_pg_tables(pg_dsn)
    url = pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    return Backend("postgres", url, tmp_path / "pg.head", pg_dsn)
