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
  when another session took it meanwhile. The lock comes with the fencing epoch of
  leader.py: taken with it, checked by every commit (``check``), and taken again after a
  lost session only if nobody led meanwhile. With a waiting ``Candidate`` (``rfq serve
  --ha``) ``acquire`` polls until the lock is free instead of refusing, and a watchdog
  pings the lock's session every second, so a leader learns it was deposed between
  commits too.

Read-only stores (verify / show / export) take no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rfq_engine.store.base import StoreError
from rfq_engine.store.leader import Candidate, LeaderRecord, check_epoch, read_leader, take_epoch
from rfq_engine.store.outage import WriterFenced

__all__ = ["PG_LOCK_KEY", "PING_TIMEOUT_S", "FileLock", "PgAdvisoryLock"]

# A fixed signed 64-bit key, derived from a name so it is recognisable in pg_locks.
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"rfq_engine.store.audit_writer").digest()[:8], "big", signed=True
)

PING_TIMEOUT_S = 2.0
"""A lock's session that does not answer ``SELECT 1`` within this is taken for dead."""
KEEPALIVES = ("SELECT set_config('tcp_keepalives_idle', '2', false), "
              "set_config('tcp_keepalives_interval', '1', false), "
              "set_config('tcp_keepalives_count', '3', false)")


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
    transaction, so ``idle_in_transaction_session_timeout`` cannot kill it), with the
    fencing epoch taken under it (leader.py)."""

    def __init__(self, engine: AsyncEngine, key: int = PG_LOCK_KEY,
                 candidate: Candidate | None = None) -> None:
        self._engine = engine
        self._key = key
        self._conn: AsyncConnection | None = None
        self.candidate = candidate or Candidate(wait=False)
        self.record: LeaderRecord | None = None
        self._ensuring = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def epoch(self) -> int | None:
        return None if self.record is None else self.record.epoch

    async def acquire(self) -> None:
        """Take the lock and a new epoch. A waiting candidate polls every ``poll_s`` until
        the lock is free (the database being unreachable meanwhile is reported to it, not
        raised); otherwise a lock held elsewhere is refused at once."""
        candidate = self.candidate
        while True:
            try:
                conn = await self._try_lock()
            except Exception as exc:
                if not candidate.wait:
                    raise
                candidate.observed(candidate.leader, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(max(candidate.poll_s, 0.5))
                continue
            if conn is not None:
                break
            if not candidate.wait:
                database = self._engine.url.database
                raise StoreError(
                    f"another writer holds the audit lock (pg advisory lock {self._key}) on "
                    f"database {database!r}; open read-only to inspect")
            await asyncio.sleep(candidate.poll_s)
        try:
            self.record = await take_epoch(conn, candidate, None)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        candidate.elected(self.record)
        if candidate.wait:
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _try_lock(self) -> AsyncConnection | None:
        """A connection holding the lock, or None (after noting who holds it)."""
        async with asyncio.timeout(PING_TIMEOUT_S * 2):
            conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # A machine that vanishes sends no FIN: the server ends this session (and frees
            # the lock for the standby) after these keepalives go unanswered, about 5 s.
            await conn.execute(text(KEEPALIVES))
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            ).scalar()
            if not got and self.candidate.wait:
                self.candidate.observed(await read_leader(conn))
        except BaseException:
            await conn.close()
            raise
        if got:
            return conn
        await conn.close()
        return None

    async def check(self, conn: AsyncConnection) -> None:
        """In a commit's transaction: WriterFenced unless this lock's epoch is current."""
        epoch = self.epoch
        if epoch is None:
            raise WriterFenced("this writer holds no epoch")
        try:
            await check_epoch(conn, epoch)
        except WriterFenced as exc:
            self.candidate.deposed(str(exc))
            raise

    async def ensure(self) -> None:
        """After a lost connection: keep the lock if its session is alive, else take it
        again (and the next epoch, if nobody led meanwhile). WriterFenced if another
        session holds it now or led meanwhile; any other error (the server still
        unreachable) propagates, for the caller to retry."""
        async with self._ensuring:
            conn = self._conn
            if conn is not None:
                try:
                    async with asyncio.timeout(PING_TIMEOUT_S):
                        await conn.execute(text("SELECT 1"))
                    return  # a session-level lock lives as long as its session
                except Exception:
                    self._conn = None
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                    with contextlib.suppress(Exception):
                        await conn.close()
            try:
                await self._take_again()
            except WriterFenced as exc:
                self.candidate.deposed(str(exc))
                raise

    async def _take_again(self) -> None:
        conn = await self._try_lock()
        if conn is None:
            raise WriterFenced(f"another writer holds the audit lock (pg advisory lock "
                               f"{self._key}): taken while this writer's connection was lost")
        try:
            self.record = await take_epoch(conn, self.candidate, self.epoch)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            await conn.close()
            raise
        self._conn = conn
        self.candidate.elected(self.record)

    async def _watch(self) -> None:
        """Every second: is the lock's session alive? If not, take the lock again or learn
        that this leader was deposed (the candidate is told; the writer, at its next
        commit, is fenced anyway)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.ensure()
            except WriterFenced:
                return
            except Exception:  # the database unreachable: the next tick tries again
                continue

    async def release(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        finally:
            await conn.close()
