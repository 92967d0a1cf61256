"""WAL checkpoints for the SQLite writer, on a thread of their own.

Why. In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them
back into the database file and fsyncs it. By default SQLite runs that checkpoint inside
whichever commit pushes the WAL past 1,000 pages: about one small commit in fifty then
pays for a copy and an extra fsync, which is the p99 of a decision's latency. Here the
writer's connection has ``wal_autocheckpoint = 0`` and this class runs
``PRAGMA wal_checkpoint(PASSIVE)`` on a second connection and thread, asked for by the
writer after every ``every_rows`` rows it changed. PASSIVE never blocks the writer or the
readers; the copy and the fsync overlap the next commits instead of sitting inside one.

How often. A checkpoint ends with an fsync of the database file, and a decision's commit
that fsyncs the WAL meanwhile waits behind it on the same disk: the p99 of a decision is
the share of commits that meet a checkpoint. Checkpoints every 20,000 changed rows
(``EVERY_ROWS``; each writes every page changed since the last one once, so fewer and
larger ones write less in all) cut the p99 of a decision's store part from 5.1 to 1.5 ms
against every 1,000 rows, and raised sustained appends by about 10%. The WAL then holds up
to some 20,000 frames (about 80 MiB), which SQLite reuses from its start after each one.

The catch, and what handles it. SQLite starts the WAL over from its beginning only when a
write transaction *begins* while every frame is already checkpointed. Under a continuous
load the background checkpoint finishes while the next batch is already open, so the WAL
would grow without end. When a checkpoint reports more than ``restart_frames`` frames in
the WAL, the writer runs one PASSIVE checkpoint itself before its next ``BEGIN`` (nothing
can be appended meanwhile, so it completes unless a reader pins an old snapshot) and the
WAL starts over. That is SQLite's own autocheckpoint, but only when the background one has
fallen behind (sustained saturation), never for a handful of pages.

If a background checkpoint fails, the failure is logged and the writer runs the next one
itself, before its next ``BEGIN``; the committed data is in the WAL either way.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

__all__ = ["EVERY_ROWS", "WalCheckpointer", "WalStats", "close_on_thread"]

log = logging.getLogger(__name__)

PASSIVE: Final = "PRAGMA wal_checkpoint(PASSIVE)"
EVERY_ROWS: Final = 20_000
SLOW_CHECKPOINT_S: Final = 0.5  # a checkpoint slower than this is logged (a warning)


async def close_on_thread(
    executor: ThreadPoolExecutor | None, conn: sqlite3.Connection | None
) -> None:
    """Close a connection on the one thread that owns it, then stop that thread."""
    if executor is None:
        return
    try:
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
    finally:
        executor.shutdown(wait=True)


@dataclass(slots=True)
class WalStats:
    background: int = 0  # checkpoints run on the checkpointer's thread
    inline: int = 0  # checkpoints the writer ran itself because the WAL had stopped resetting
    failed: int = 0
    last_wal_frames: int = 0  # frames in the WAL at the last checkpoint
    longest_s: float = 0.0  # the longest checkpoint (its copy and the database's fsync)


class WalCheckpointer:
    """Owns the checkpointing connection. ``after_commit`` and ``before_begin`` are called
    on the writer's thread; they only read counters and hand work to this thread."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, every_rows: int = EVERY_ROWS,
        restart_frames: int = 16_384,
    ) -> None:
        if every_rows < 1 or restart_frames < 1:
            raise ValueError("every_rows and restart_frames must be >= 1")
        self._connect = connect
        self._every_rows = every_rows
        self._restart_frames = restart_frames
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._rows_at_last = 0
        self._running = False
        self._last: Future[None] | None = None
        self._restart = False
        self.stats = WalStats()

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit-sqlite-checkpointer")
        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        await close_on_thread(executor, conn)

    async def wait_idle(self) -> None:
        """Until the background checkpoint asked for last has finished."""
        last = self._last
        if last is not None:
            await asyncio.wrap_future(last)

    # --- on the writer's thread -------------------------------------------------------------

    def before_begin(self, writer: sqlite3.Connection) -> None:
        """If the WAL has stopped starting over, checkpoint it here so the next write does."""
        if not self._restart:
            return
        self._restart = False
        if self._passive(writer, "inline"):
            self.stats.inline += 1

    def after_commit(self, writer: sqlite3.Connection) -> None:
        """Ask for a background checkpoint once ``every_rows`` rows changed since the last."""
        rows = writer.total_changes
        if self._running or rows - self._rows_at_last < self._every_rows:
            return
        executor = self._executor
        if executor is None:
            return
        self._rows_at_last = rows
        self._running = True
        self._last = executor.submit(self._checkpoint)

    # --- on the checkpointer's thread -------------------------------------------------------

    def _checkpoint(self) -> None:
        try:
            conn = self._conn
            if conn is None:
                return
            if self._passive(conn, "background"):
                self.stats.background += 1
                self._restart = self.stats.last_wal_frames > self._restart_frames
            else:
                self._restart = True  # the writer tries once itself before its next BEGIN
        finally:
            self._running = False

    def _passive(self, conn: sqlite3.Connection, where: str) -> bool:
        """One PASSIVE checkpoint on ``conn``; False (counted, logged) if it failed."""
        started = time.monotonic()
        try:
            _busy, frames, copied = conn.execute(PASSIVE).fetchone()
        except sqlite3.Error as exc:
            self.stats.failed += 1
            log.warning("audit WAL checkpoint (%s) failed: %s", where, exc)
            return False
        took = time.monotonic() - started
        self.stats.longest_s = max(self.stats.longest_s, took)
        if took > SLOW_CHECKPOINT_S:  # its fsync of the database delays the commits' fsyncs
            log.warning("audit WAL checkpoint (%s) took %.3f s: %d of %d frames copied to the "
                        "database and synced", where, took, copied, frames)
        self.stats.last_wal_frames = frames
        return True
