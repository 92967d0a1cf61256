"""Leadership of a PostgreSQL audit store: one writer at a time, fenced by an epoch.

Active-passive high availability is two ``rfq serve --ha`` against one PostgreSQL. The
leader holds the writer's advisory lock (locks.py) on a connection of its own; the standby
polls for the same lock and takes it when the leader's session ends (the process died, its
machine's TCP keepalives ran out, or the database failed over: locks are not replicated).

The lock alone does not fence: a leader that was paused (a long GC, a stopped VM) while
its lock's session was killed still holds pooled connections and a head in memory. So the
lock comes with an **epoch**, the one row of ``leader_epochs``:

- taking the lock, the new leader increments the epoch and records its name, advertised
  address and the time, in one statement on the lock's connection, under the lock;
- every commit of the audit writer first reads the row ``FOR SHARE`` inside its own
  transaction and refuses (``WriterFenced``) when the epoch is not its own. The share lock
  makes the increment wait for a commit in flight, and a commit that starts after the
  increment sees it: an old leader's batch lands entirely before the new leader reads the
  head, or not at all;
- a writer whose lock's session died takes the lock again only if the epoch is still its
  own (nobody led meanwhile), incrementing it; otherwise it is fenced and stops.

PostgreSQL's default (no ``--ha``) keeps the behaviour of a single writer: the lock is
tried once and a second writer is refused, but the epoch is taken and checked all the
same. The table is created by the first writer that needs it, so a store written before
it existed opens unchanged.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from rfq_engine.domain import utc_now
from rfq_engine.store.outage import WriterFenced

__all__ = [
    "EPOCH_TABLE", "USER_TIMEOUT_MS", "Candidate", "LeaderRecord", "Role", "check_epoch", "default_name",
    "leading_as", "opening_candidate", "read_leader", "take_epoch",
]

EPOCH_TABLE: Final = "leader_epochs"

_CREATE: Final = text(
    f"CREATE TABLE IF NOT EXISTS {EPOCH_TABLE} ("
    "id smallint PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL CHECK (epoch > 0), "
    "name text NOT NULL, address text, since timestamptz NOT NULL)")
_FIRST: Final = text(
    f"INSERT INTO {EPOCH_TABLE} AS e (id, epoch, name, address, since) "
    "VALUES (1, 1, :name, :address, :since) "
    "ON CONFLICT (id) DO UPDATE SET epoch = e.epoch + 1, name = EXCLUDED.name, "
    "address = EXCLUDED.address, since = EXCLUDED.since RETURNING epoch")
_AGAIN: Final = text(
    f"UPDATE {EPOCH_TABLE} SET epoch = epoch + 1, name = :name, address = :address, "
    "since = :since WHERE id = 1 AND epoch = :expected RETURNING epoch")
_READ: Final = text(f"SELECT epoch, name, address, since FROM {EPOCH_TABLE} WHERE id = 1")
_CHECK: Final = f"SELECT epoch FROM {EPOCH_TABLE} WHERE id = 1 FOR SHARE"
USER_TIMEOUT_MS: Final = 5000
"""``tcp_user_timeout`` of the leader's lock session, server side: with the session's
keepalives (locks.py: 2 s idle, 1 s apart, 3 probes) they bound how long the server keeps
the lock of a leader whose machine vanished (no FIN, no RST). Keepalives alone do not run
while the server has unacknowledged data on the socket (a reply in flight when the link
went): the retransmissions then last up to ``tcp_retries2`` (about 15 minutes on Linux);
the user timeout ends those after 5 s too."""
_USER_TIMEOUT: Final = text(f"SELECT set_config('tcp_user_timeout', '{USER_TIMEOUT_MS}', false)")


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Role(StrEnum):
    STANDBY = "standby"
    """Waiting for the lock; the API answers "not leader"."""
    LEADER = "leader"
    """Holds the lock and the epoch (recovering, then trading)."""
    DEPOSED = "deposed"
    """Was leader and lost the lock or the epoch: it writes nothing more and exits."""


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """The row of ``leader_epochs``: who took the lead, at which epoch, when."""

    epoch: int
    name: str
    address: str | None
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "name": self.name, "address": self.address,
                "since": self.since}


class Candidate:
    """One engine's side of the election: who it is, whether it waits for the lock (``wait``,
    ``rfq serve --ha``) and what it knows: its role and the leader it saw or is."""

    def __init__(self, name: str | None = None, address: str | None = None, *,
                 wait: bool = True, poll_s: float = 0.2) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.name = name or default_name()
        self.address = address
        self.wait = wait
        self.poll_s = poll_s
        self.role = Role.STANDBY
        self.leader: LeaderRecord | None = None
        self.problem: str | None = None
        """Why the standby could not poll (the database unreachable), or why it was deposed."""
        self._watchers: list[Callable[[Candidate], None]] = []

    @property
    def epoch(self) -> int | None:
        return self.leader.epoch if self.role is Role.LEADER and self.leader else None

    def watch(self, watcher: Callable[[Candidate], None]) -> None:
        self._watchers.append(watcher)

    def observed(self, record: LeaderRecord | None, problem: str | None = None) -> None:
        if self.role is Role.STANDBY:
            self.leader, self.problem = record, problem

    def elected(self, record: LeaderRecord) -> None:
        self.role, self.leader, self.problem = Role.LEADER, record, None
        self._tell()

    def deposed(self, reason: str) -> None:
        if self.role is not Role.DEPOSED:
            self.role, self.problem = Role.DEPOSED, reason
            self._tell()

    def _tell(self) -> None:
        for watcher in list(self._watchers):
            watcher(self)


_OPENING: ContextVar[Candidate | None] = ContextVar("rfq_store_opening_candidate", default=None)


@contextmanager
def leading_as(candidate: Candidate) -> Iterator[None]:
    """Within: a store opened for writing belongs to ``candidate``'s leadership term, so
    its checkpoint log opens the term with a ``lead`` entry and names the engine and epoch
    in each entry (verify.check_before_writing). ``rfq serve --ha`` opens its store inside
    this; a store's ``candidate`` argument does not reach its checkpoint log (sql.py)."""
    token = _OPENING.set(candidate)
    try:
        yield
    finally:
        _OPENING.reset(token)


def opening_candidate() -> Candidate | None:
    """The candidate of ``leading_as`` around this open, if any."""
    return _OPENING.get()


async def take_epoch(conn: AsyncConnection, candidate: Candidate,
                     expected: int | None) -> LeaderRecord:
    """Under the lock, on its AUTOCOMMIT connection: increment the epoch and record the
    candidate as leader. With ``expected`` (taking the lock again after its session died),
    only if the epoch is still that one; WriterFenced if someone led meanwhile. Also bounds
    the lock session's life after a silent loss of the leader (``USER_TIMEOUT_MS``)."""
    await conn.execute(_USER_TIMEOUT)
    await conn.execute(_CREATE)
    since = utc_now()
    params = {"name": candidate.name, "address": candidate.address, "since": since}
    if expected is None:
        epoch = (await conn.execute(_FIRST, params)).scalar_one()
    else:
        epoch = (await conn.execute(_AGAIN, {**params, "expected": expected})).scalar()
        if epoch is None:
            seen = await read_leader(conn)
            who = "nobody" if seen is None else f"{seen.name} (epoch {seen.epoch})"
            raise WriterFenced(f"another engine led while this writer's connection was lost: "
                               f"the epoch is no longer {expected}, now {who}")
    return LeaderRecord(int(epoch), candidate.name, candidate.address, since)


async def read_leader(conn: AsyncConnection) -> LeaderRecord | None:
    """The current leader's row; None before the first leader (or before the table)."""
    try:
        row = (await conn.execute(_READ)).first()
    except DBAPIError as exc:
        if "does not exist" in str(exc.orig):  # a store older than the table: no leader yet
            return None
        raise
    if row is None:
        return None
    return LeaderRecord(int(row[0]), str(row[1]), None if row[2] is None else str(row[2]), row[3])


async def check_epoch(conn: AsyncConnection, epoch: int) -> None:
    """Inside a commit's transaction, before its first insert: WriterFenced unless the epoch
    is still ``epoch``; holds the row's share lock until that transaction ends."""
    found = (await conn.exec_driver_sql(_CHECK)).scalar()
    if found != epoch:
        raise WriterFenced(f"fenced: this writer's epoch is {epoch}, the store's is {found} "
                           "(another engine took the lead); it writes nothing more")
