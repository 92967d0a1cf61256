"""Fixtures: one shared suite over the memory store, SQLite and the real PostgreSQL server.

PostgreSQL: a fresh database ``rfq_test_<random>`` per test session, created through
asyncpg on the ``postgres`` database of 127.0.0.1:5432 (trust auth, user postgres) and
dropped at the end; each test starts from dropped tables. If the server is unreachable the
PostgreSQL tests fail, unless RFQ_TEST_SKIP_PG=1 (RFQ_TEST_PG_SERVER overrides the server DSN).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from audit_backends import Backend, make_backend

PG_SERVER = os.environ.get("RFQ_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(autouse=True)
def _no_checkpoint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that want an authenticated checkpoint set the key themselves."""
    monkeypatch.delenv("RFQ_AUDIT_CHECKPOINT_KEY", raising=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The asyncpg DSN of a fresh database, dropped after the session."""
    if os.environ.get("RFQ_TEST_SKIP_PG") == "1":
        pytest.skip("RFQ_TEST_SKIP_PG=1")
    name = f"rfq_test_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL at {PG_SERVER} is not usable ({exc!r}); "
            "start it or set RFQ_TEST_SKIP_PG=1 to skip the PostgreSQL tests",
            pytrace=False,
        )
    yield f"{PG_SERVER}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, asyncpg DSN or ""); sync, so the session database is created outside any loop."""
    dsn = request.getfixturevalue("pg_database") if request.param == "postgres" else ""
    return request.param, dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    dsn = request.getfixturevalue("pg_database") if request.param == "postgres" else ""
    return request.param, dsn


@pytest.fixture
async def backend(backend_kind: tuple[str, str], tmp_path: Path) -> AsyncIterator[Backend]:
    """A store factory on each backend in turn; every store it made is closed afterwards."""
    b = await make_backend(*backend_kind, tmp_path)
    yield b
    await b.close_all()


@pytest.fixture
async def sql_backend(sql_backend_kind: tuple[str, str], tmp_path: Path) -> AsyncIterator[Backend]:
    b = await make_backend(*sql_backend_kind, tmp_path)
    yield b
    await b.close_all()


@pytest.fixture
async def pg_backend(pg_database: str, tmp_path: Path) -> AsyncIterator[Backend]:
    b = await make_backend("postgres", pg_database, tmp_path)
    yield b
    await b.close_all()
