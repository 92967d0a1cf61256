"""Single-writer locks: one writer per audit database, or the chain forks.

Two writers would both assign seq N+1 on top of the same head; one commit fails on the
primary key at best, and at worst (different databases restored from one backup) two
valid-looking chains diverge. So ``open`` in write mode takes a lock that lives exactly
as long as the writer process holds it, and is released by the OS or the server when the
process dies (no stale lock files to clean up):

- SQLite: ``flock(LOCK_EX | LOCK_NB)`` on ``<dbfile>.lock``. ``flock`` locks belong to the
  open file description, so a second open in the *same* process is refused too.
- PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection held for the store's
  lifetime (session-level, survives transactions). If that connection drops, the server
  releases the lock: a caveat shared by every advisory-lock scheme. So after a lost
  connection the writer calls ``ensure`` before it writes again: if the lock's session
  died, the lock is taken again on a new one, or the writer is fenced (``WriterFenced``)
  when another session took it meanwhile.

Read-only stores (verify / show / export) take no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rfq_engine.store.base import StoreError
from rfq_engine.store.outage import WriterFenced

__all__ = ["PG_LOCK_KEY", "FileLock", "PgAdvisoryLock"]

# A fixed signed 64-bit key, derived from a name so it is recognisable in pg_locks.
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"rfq_engine.store.audit_writer").digest()[:8], "big", signed=True
)


class FileLock:
    """An exclusive, non-blocking ``flock`` on a lock file; records the holder's pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl  # POSIX only; imported here so the module loads everywhere

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"another writer holds {self.path} (pid {holder}); open read-only to inspect"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock


class PgAdvisoryLock:
    """A session-level advisory lock on its own AUTOCOMMIT connection (never idle in a
    transaction, so ``idle_in_transaction_session_timeout`` cannot kill it)."""

    def __init__(self, engine: AsyncEngine, key: int = PG_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> None:
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            ).scalar()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            database = self._engine.url.database
            raise StoreError(
                f"another writer holds the audit lock (pg advisory lock {self._key}) on "
                f"database {database!r}; open read-only to inspect"
            )
        self._conn = conn

    async def ensure(self) -> None:
        """After a lost connection: keep the lock if its session is alive, else take it
        again. WriterFenced if another session holds it now; any other error (the server
        still unreachable) propagates, for the caller to retry."""
        conn = self._conn
        if conn is not None:
            try:
                await conn.execute(text("SELECT 1"))
                return  # a session-level lock lives as long as its session
            except Exception:
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.invalidate()
                with contextlib.suppress(Exception):
                    await conn.close()
        try:
            await self.acquire()
        except StoreError as exc:
            raise WriterFenced(f"{exc} (taken while this writer's connection was lost)") from None

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        finally:
            await conn.close()
