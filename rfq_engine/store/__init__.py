"""The hash-chained, append-only audit store.

    store = open_store("sqlite+aiosqlite:///var/rfq/audit.db")
    async with store:
        event = await store.append(rfq_id, EventType.RFQ_SUBMITTED, "alice", payload)
        report = await store.verify()
        page = await store.rfq_page(RfqQuery(mandate="treasury", limit=50))

``open_store`` only builds the store; ``open()`` (or ``async with``) takes the writer lock,
creates the tables and starts the writer. Pieces, for the curious: ``writer`` (group commit
and chain), ``projection`` (query tables from events), ``checkpoint`` (chain head kept
outside the database), ``verify``/``chain`` (tamper detection), ``memory``/``sql``
(the stores), ``queries``/``sql_reads`` (the query tables' reads, in Python and in SQL),
``locks`` (single writer), ``outage`` (a commit that fails: retried, never dropped),
``witness`` (heads published outside the operator's reach).
"""

from __future__ import annotations

import os
from types import EllipsisType

from rfq_engine.store.base import (
    AuditStore,
    AwardRow,
    EventFilter,
    EventRecorder,
    FillQuery,
    FillRow,
    QueryTables,
    QuoteRow,
    RfqCursor,
    RfqPage,
    RfqQuery,
    RfqRow,
    StoreError,
    VerifyReport,
)
from rfq_engine.store.checkpoint import KEY_ENV, Checkpoint, read_checkpoint, write_checkpoint
from rfq_engine.store.events import GENESIS_HASH, AuditEvent, EventType, chain_hash
from rfq_engine.store.leader import Candidate
from rfq_engine.store.memory import InMemoryAuditStore
from rfq_engine.store.outage import RetryPolicy, StoreHealth, StoreState
from rfq_engine.store.sql import DEFAULT_URL, SqlAuditStore

__all__ = [
    "DEFAULT_URL",
    "GENESIS_HASH",
    "KEY_ENV",
    "MEMORY_URL",
    "AuditEvent",
    "AuditStore",
    "AwardRow",
    "Checkpoint",
    "EventFilter",
    "EventRecorder",
    "EventType",
    "FillQuery",
    "FillRow",
    "InMemoryAuditStore",
    "QueryTables",
    "QuoteRow",
    "RfqCursor",
    "RfqPage",
    "RfqQuery",
    "RfqRow",
    "SqlAuditStore",
    "StoreError",
    "StoreHealth",
    "StoreState",
    "VerifyReport",
    "chain_hash",
    "open_store",
    "read_checkpoint",
    "write_checkpoint",
]

MEMORY_URL = "memory://"


def open_store(
    url: str = DEFAULT_URL,
    *,
    checkpoint_path: str | os.PathLike[str] | EllipsisType | None = ...,
    readonly: bool = False,
    sqlite_synchronous: str = "FULL",
    sqlite_cache_mib: int = 64,
    witness: str | os.PathLike[str] | None = None,
    outage_limit_s: float | None = None,
    candidate: Candidate | None = None,
) -> AuditStore:
    """The store for ``url`` (not yet opened).

    ``memory://`` gives an InMemoryAuditStore; ``sqlite+aiosqlite:///path`` and
    ``postgresql+asyncpg://...`` a SqlAuditStore. ``checkpoint_path=...`` (the default)
    means ``<dbfile>.head`` for SQLite and no checkpoint for PostgreSQL and memory, whose
    checkpoint must be named explicitly; None disables it. ``witness``: a file outside the
    operator's reach for the heads (witness.py); ``outage_limit_s``: how long a failing
    commit is retried before the writer stops (outage.py); ``candidate``: leadership on
    PostgreSQL (leader.py).
    """
    retry = None if outage_limit_s is None else RetryPolicy(give_up_after_s=outage_limit_s)
    if url == MEMORY_URL:
        if readonly:
            raise StoreError("a read-only memory store would always be empty")
        path = None if checkpoint_path is ... else checkpoint_path
        return InMemoryAuditStore(checkpoint_path=path, retry=retry)
    return SqlAuditStore(
        url, checkpoint_path=checkpoint_path, readonly=readonly,
        sqlite_synchronous=sqlite_synchronous, sqlite_cache_mib=sqlite_cache_mib,
        witness=witness, retry=retry, candidate=candidate,
    )
