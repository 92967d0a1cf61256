"""The writer's units of work: an event waiting for its commit (``Pending``), a linked,
prepared batch of them (``Batch``), and what a store hands the writer (``PrepareFn``,
``CommitFn`` or ``ThreadCommit``, ``HeadFn``, ``ReconnectFn``); the writer's counters."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from rfq_engine.store.events import AuditEvent

__all__ = [
    "WAIT_BUCKETS", "Batch", "CommitFn", "HeadFn", "Pending", "PrepareFn", "ReconnectFn",
    "ThreadCommit", "WriterStats", "wake_through",
]

P = TypeVar("P")
# prepare(events, payloads): the store's CPU work for linked events, no I/O. payloads[i] is
# events[i].payload already parsed (a fresh dict the store may keep).
PrepareFn = Callable[[list[AuditEvent], list[dict[str, Any]]], P]
# commit(parts): one transaction for the prepared parts of one batch, in order.
CommitFn = Callable[[list[P]], Awaitable[None]]
HeadFn = Callable[[], Awaitable[tuple[int, str]]]
# reconnect(): before a retry, drop the connections a failure may have broken (and retake
# the writer's lock if its session died with them; WriterFenced if someone else has it).
ReconnectFn = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ThreadCommit(Generic[P]):
    """A store's blocking commit and the executor (one thread) it must run on.

    ``commit(parts)`` makes the batch's events durable; the futures resolve when it
    returns. ``after(parts)``, if given, is the rest of the batch's work that appenders
    need not wait for (SQLite: the query tables); it runs on the same thread once the
    tasks the futures woke have run, and handles its own errors (an exception from it is
    logged; the events stand). ``flush`` and ``settled`` wait for it."""

    executor: Executor
    commit: Callable[[list[P]], None]
    after: Callable[[list[P]], None] | None = None


WAIT_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                   2.5, 5.0, 10.0)
"""Upper bounds (seconds) of ``WriterStats.waits``: ``/metrics``' ``rfq_audit_wait_seconds``."""


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    failed_events: int = 0
    checkpoint_errors: int = 0
    failed_commits: int = 0
    """Commit attempts that failed (each is retried; none of them lost an event)."""
    outages: int = 0
    """Times the store went down (a retry on a new connection failed too)."""
    slow_commits: int = 0
    """Batches that took over ``commit_watch.SLOW_COMMIT_S`` to become durable."""
    longest_commit_s: float = 0.0
    """The longest a batch took to become durable (retries included)."""
    settles: int = 0
    """Runs of a ``ThreadCommit``'s ``after`` (SQLite: query-table transactions), each for
    one batch or, under load, for several (writer.AFTER_EVERY_S)."""
    waits: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS) + 1))
    """Batches by how long their oldest event waited from its append to durable (queue and
    commit: what the call that appended it waited), one count per ``WAIT_BUCKETS`` bound and
    one over the last; ``wait_s`` their sum."""
    wait_s: float = 0.0

    def observe_wait(self, seconds: float) -> None:
        self.waits[bisect.bisect_left(WAIT_BUCKETS, seconds)] += 1
        self.wait_s += seconds


class Pending:
    __slots__ = ("actor", "future", "payload", "payload_json", "queued", "rfq_id", "ts", "type")

    def __init__(
        self, ts: datetime, rfq_id: str | None, type_: str, actor: str, payload_json: str,
        payload: dict[str, Any], future: asyncio.Future[AuditEvent],
    ) -> None:
        self.ts = ts
        self.rfq_id = rfq_id
        self.type = type_
        self.actor = actor
        self.payload_json = payload_json
        self.payload = payload
        self.future = future
        self.queued = time.monotonic()


class Batch(Generic[P]):
    """Linked, prepared events waiting for one commit, in submission order."""

    __slots__ = ("events", "parts", "pendings")

    def __init__(self) -> None:
        self.pendings: list[Pending] = []
        self.events: list[AuditEvent] = []
        self.parts: list[P] = []

    def __len__(self) -> int:
        return len(self.pendings)

    @classmethod
    def joined(cls, batches: list[Batch[P]]) -> Batch[P]:
        """One batch of the events and parts of consecutive ``batches`` (no pendings)."""
        if len(batches) == 1:
            return batches[0]
        joined: Batch[P] = cls()
        for batch in batches:
            joined.events += batch.events
            joined.parts += batch.parts
        return joined


def wake_through(waiters: list[tuple[int, asyncio.Future[None]]], seq: int, *, everyone: bool = False
                 ) -> list[tuple[int, asyncio.Future[None]]]:
    """Wake the ``(seq, future)`` waiters at or below ``seq`` (all with ``everyone``); the rest."""
    still = []
    for target, waiter in waiters:
        if everyone or target <= seq:
            if not waiter.done():
                waiter.set_result(None)
        else:
            still.append((target, waiter))
    return still
