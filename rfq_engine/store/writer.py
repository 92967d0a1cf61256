"""The single writer: group commit, chain linking, checkpoint, futures. Shared by all stores.

Why one writer task. The chain needs a total order (``seq``) and each event's hash depends
on the previous one, so exactly one place may assign them. Callers ``submit`` and get a
future; the writer takes *everything queued* (up to ``batch_max``), links it to the head,
hands the batch to the store's ``commit`` (one transaction), writes the checkpoint, and only
then resolves the futures. There is no timer: while one commit is in flight new events
pile up and become the next batch, so batches grow with load and latency stays one commit
when idle.

Two stages, overlapped. A commit is mostly waiting (SQLite's thread, PostgreSQL's server,
fsync); linking and the store's CPU work (``prepare``: projections, row encoding) need no
database. So while batch N commits, the events arriving meanwhile are linked on top of
N's last event and prepared, in chunks with a yield between them so N's commit keeps
moving; when N is durable, N+1 goes straight to the database.

Where the commit is a blocking call on a thread of its own (``ThreadCommit``: SQLite), the
writer runs it and the checkpoint's write in one hop to that thread, and the checkpoint's
fdatasync follows in the background after the futures resolved (see checkpoint.py for why
that is safe); otherwise the checkpoint is written, durably, after the commit returns. A
``ThreadCommit`` may split off work the appenders need not wait for (``after``: SQLite's
query tables); it runs once the tasks the futures woke have had their turn, and ``flush``
and ``settled`` wait for it, ``depth`` does not count it.

If ``commit`` raises, the head is reloaded from the store. If the store's head turns out to
be this batch's last event the commit did land (the error came after it, e.g. a lost
connection during COMMIT) and the futures resolve normally; otherwise they fail with
``StoreError``, the next batch (linked on top of the failed one) goes back to the queue
and is relinked, and the seqs are reused, so the chain never has holes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

from rfq_engine.domain import to_jsonable, utc_now
from rfq_engine.domain.values import decimal_str
from rfq_engine.store.base import StoreError
from rfq_engine.store.chain import link_hash, ts_text
from rfq_engine.store.checkpoint import CheckpointFile
from rfq_engine.store.events import AuditEvent

__all__ = ["CommitFn", "GroupCommitWriter", "HeadFn", "PrepareFn", "ThreadCommit", "WriterStats"]

log = logging.getLogger(__name__)

P = TypeVar("P")
# prepare(events, payloads): the store's CPU work for linked events, no I/O. payloads[i] is
# events[i].payload already parsed (a fresh dict the store may keep).
PrepareFn = Callable[[list[AuditEvent], list[dict[str, Any]]], P]
# commit(parts): one transaction for the prepared parts of one batch, in order.
CommitFn = Callable[[list[P]], Awaitable[None]]
HeadFn = Callable[[], Awaitable[tuple[int, str]]]


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


PREPARE_CHUNK: Final = 200  # events linked and prepared between two yields to the loop


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    failed_events: int = 0
    checkpoint_errors: int = 0


def _refuse_float(text: str) -> Any:
    raise TypeError(f"floats are not allowed in audit payloads ({text}); use Decimal or str")


def _jsonable(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


# ``canonical_json`` with its encoder and decoder built once: json.dumps/json.loads with
# options construct new ones on every call, a quarter of the cost for small payloads.
_encode: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
).encode
_decode: Final = json.JSONDecoder(
    parse_float=_refuse_float, parse_constant=_refuse_float  # 1.5, NaN, Infinity
).decode
# For a payload already made of plain JSON values (see ``_native``): no ``default`` hook.
_encode_native: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode


class _Unusual(Exception):
    """A value ``_native`` leaves to the general path (encode, then parse back)."""


def _native(value: Any) -> Any:
    """A fresh copy of ``value`` as ``_decode(_encode(value))`` would return it, for the
    common types only (exact dict with str keys, list, tuple, str, int, bool, None,
    Decimal); TypeError on a float, ``_Unusual`` for anything else. Cheaper than parsing
    the encoded text back, and encoding the copy gives the same text as encoding ``value``."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Unusual
            out[k] = _native(v)
        return out
    if t is list or t is tuple:
        return [_native(v) for v in value]
    if t is Decimal:
        return decimal_str(value)
    if t is float:
        raise TypeError(f"floats are not allowed in audit payloads ({value!r}); use Decimal or str")
    raise _Unusual


class _Pending:
    __slots__ = ("actor", "future", "payload", "payload_json", "rfq_id", "ts", "type")

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


class _Batch(Generic[P]):
    """Linked, prepared events waiting for one commit, in submission order."""

    __slots__ = ("events", "parts", "pendings")

    def __init__(self) -> None:
        self.pendings: list[_Pending] = []
        self.events: list[AuditEvent] = []
        self.parts: list[P] = []

    def __len__(self) -> int:
        return len(self.pendings)


class GroupCommitWriter(Generic[P]):
    """Owns seq assignment for one store. ``start`` it after the head is known."""

    def __init__(
        self,
        prepare: PrepareFn[P],
        commit: CommitFn[P] | ThreadCommit[P],
        load_head: HeadFn,
        head: tuple[int, str],
        *,
        checkpoint: CheckpointFile | None = None,
        batch_max: int = 1000,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self._prepare = prepare
        self._commit = commit
        self._load_head = load_head
        self._head = head  # newest durable event
        self._linked = head  # newest linked event (ahead of _head while batches are staged)
        self._head_stale = False
        self._checkpoint = checkpoint
        self._batch_max = batch_max
        self._queue: collections.deque[_Pending] = collections.deque()
        self._committing: _Batch[P] | None = None
        self._staged: _Batch[P] | None = None
        self._commit_task: asyncio.Future[Any] | None = None
        self._work: asyncio.Future[None] | None = None
        self._submitted = 0
        self._processed = 0
        self._flush_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._settled = head[0]  # newest seq whose whole commit (not only its events) ended
        self._settle_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.stats = WriterStats()
        self.last_checkpoint_error: OSError | None = None

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed event."""
        return self._head

    @property
    def depth(self) -> int:
        """Events submitted but not yet durable (queued, staged or being committed)."""
        return (len(self._queue) + len(self._committing or ()) + len(self._staged or ()))

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("writer already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    def submit(
        self, rfq_id: str | None, type_: str, actor: str, payload: Mapping[str, Any]
    ) -> asyncio.Future[AuditEvent]:
        """Queue an event. Raises at once (never via the future) for caller errors: a closed
        writer (StoreError), an empty type/actor (ValueError), a float or another value
        without an exact canonical JSON form (TypeError)."""
        if self._task is None or self._closing:
            raise StoreError("the audit store is not open for writing")
        if not isinstance(type_, str) or not type_:
            raise ValueError("event type must be a non-empty string")
        if not isinstance(actor, str) or not actor:
            raise ValueError("event actor must be a non-empty string")
        if rfq_id is not None and not isinstance(rfq_id, str):
            raise ValueError("rfq_id must be a string or None")
        # The store gets its own JSON-native copy and floats are refused (json.dumps writes
        # them without asking), here rather than in the writer's critical path: by a copying
        # walk for the common types, else by encoding and parsing the text back.
        try:
            parsed: dict[str, Any] = _native(payload if type(payload) is dict else dict(payload))
            payload_json = _encode_native(parsed)
        except (_Unusual, RecursionError):
            payload_json = _encode(payload if type(payload) is dict else dict(payload))
            parsed = _decode(payload_json)
        future: asyncio.Future[AuditEvent] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(utc_now(), rfq_id, type_, actor, payload_json, parsed, future))
        self._submitted += 1
        self._notify()
        return future

    async def flush(self) -> None:
        """Wait until everything submitted so far is processed; StoreError if any of it failed."""
        target = self._submitted
        if self._processed >= target:
            return
        if self._task is None:
            raise StoreError("the audit writer is not running")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, self.stats.failed_events, waiter))
        await waiter

    async def settled(self, seq: int) -> None:
        """Wait until the commit that made ``seq`` durable has also finished what it does
        after that (``ThreadCommit``), or the writer stopped. For readers of what a commit
        writes after its events: wait for ``head[0]`` to see everything acknowledged."""
        if self._settled >= seq or self._task is None or self._task.done():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settle_waiters.append((seq, waiter))
        await asyncio.shield(waiter)

    async def close(self) -> None:
        """Drain the queue, then stop. Idempotent; survives the caller being cancelled."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._notify()
        try:
            await asyncio.shield(task)
            if self._checkpoint is not None:
                await asyncio.shield(self._checkpoint.synced())
                await asyncio.to_thread(self._sync_checkpoint)
        finally:
            self._task = None
            if self._checkpoint is not None:
                self._checkpoint.close()

    # --- the writer task ------------------------------------------------------------------

    def _notify(self) -> None:
        work = self._work
        if work is not None and not work.done():
            work.set_result(None)

    def _wait_for_work(self) -> asyncio.Future[None]:
        self._work = asyncio.get_running_loop().create_future()
        return self._work

    async def _run(self) -> None:
        try:
            while True:
                batch, self._staged = self._staged, None
                if self._queue and (batch is None or len(batch) < self._batch_max):
                    batch = await self._stage(batch)
                if batch is None:
                    if self._queue:  # a batch failed before staging (store unavailable)
                        continue
                    if self._closing:
                        return
                    await self._wait_for_work()
                    continue
                self._committing = batch
                commit = self._commit_task = self._start_commit(batch)
                await self._stage_while(commit)
                await self._finish(batch, commit)
        except asyncio.CancelledError:
            self._abandon("the audit writer was cancelled")
            raise
        except Exception as exc:  # a bug: refuse new events rather than queue them forever
            log.exception("audit writer crashed")
            self._closing = True
            self._abandon(f"the audit writer crashed: {exc!r}")
        finally:
            self._wake_settlers(everyone=True)

    async def _stage(self, batch: _Batch[P] | None) -> _Batch[P] | None:
        """Link and prepare what is queued, up to batch_max, yielding between chunks.
        None when nothing could be staged."""
        if self._head_stale and await self._reload_head():
            self._linked = self._head  # nothing is staged while the head is stale
        if self._head_stale:
            doomed = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_max))]
            self._fail(doomed, "audit store unavailable: could not read the chain head")
            self._processed += len(doomed)
            self._wake_flushers()
            return batch
        batch = batch if batch is not None else _Batch()
        while self._queue and len(batch) < self._batch_max:
            self._link_chunk(batch)
            if self._queue and len(batch) < self._batch_max:
                await asyncio.sleep(0)  # a yield, not a delay: submitters keep running
        return batch if batch else None

    def _start_commit(self, batch: _Batch[P]) -> asyncio.Future[bool]:
        """The batch's commit; its result says whether the checkpoint was written with it."""
        if isinstance(self._commit, ThreadCommit):
            last = batch.events[-1]
            return asyncio.get_running_loop().run_in_executor(
                self._commit.executor, self._commit_then_checkpoint, self._commit.commit,
                batch.parts, last.seq, last.hash,
            )
        return asyncio.ensure_future(self._commit_only(self._commit, batch.parts))

    @staticmethod
    async def _commit_only(commit: CommitFn[P], parts: list[P]) -> bool:
        await commit(parts)
        return False

    def _commit_then_checkpoint(
        self, commit: Callable[[list[P]], None], parts: list[P], seq: int, hash_: str
    ) -> bool:
        """On the commit's thread: commit, then write (not yet fdatasync) the checkpoint."""
        commit(parts)
        if self._checkpoint is not None:
            try:
                self._checkpoint.write_sync(seq, hash_, durable=False)
                self.last_checkpoint_error = None
            except OSError as exc:
                self._checkpoint_failed(exc)
        return True

    async def _after_commit(self, batch: _Batch[P]) -> None:
        """The store's work after a durable batch (``ThreadCommit.after``), started once
        the tasks its futures woke have had their turn: they run without this thread
        competing for the GIL, and the next batch is staged meanwhile."""
        commit = self._commit
        if not isinstance(commit, ThreadCommit) or commit.after is None:
            return
        await asyncio.sleep(0)
        after = self._commit_task = asyncio.get_running_loop().run_in_executor(
            commit.executor, commit.after, batch.parts
        )
        await self._stage_while(after)
        error = after.exception()
        if error is not None:
            log.error("audit events %d..%d are durable; the store's work after them failed: %r",
                      batch.events[0].seq, batch.events[-1].seq, error)

    async def _stage_while(self, commit: asyncio.Future[Any]) -> None:
        """Until ``commit`` ends, link and prepare arriving events as the next batch."""
        while not commit.done():
            staged = self._staged
            if self._queue and not self._head_stale and (
                staged is None or len(staged) < self._batch_max
            ):
                if staged is None:
                    staged = self._staged = _Batch()
                self._link_chunk(staged)
                await asyncio.sleep(0)  # let the commit take its next step
            else:
                waiting: set[asyncio.Future[Any]] = {commit, self._wait_for_work()}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    def _link_chunk(self, batch: _Batch[P]) -> None:
        count = min(len(self._queue), self._batch_max - len(batch), PREPARE_CHUNK)
        pendings = [self._queue.popleft() for _ in range(count)]
        seq, prev = self._linked
        events: list[AuditEvent] = []
        for p in pendings:
            seq += 1
            digest = link_hash(prev, seq, ts_text(p.ts), p.rfq_id, p.type, p.actor, p.payload_json)
            events.append(AuditEvent(seq, p.ts, p.rfq_id, p.type, p.actor, p.payload_json, prev, digest))
            prev = digest
        try:
            part = self._prepare(events, [p.payload for p in pendings])
        except Exception as exc:  # a store bug must cost these events, not the writer
            log.exception("audit store could not prepare %d events", len(pendings))
            self._fail(pendings, f"audit store could not prepare the events: {exc!r}")
            self._processed += len(pendings)
            self._wake_flushers()
            return
        self._linked = (seq, prev)
        batch.pendings += pendings
        batch.events += events
        batch.parts.append(part)

    async def _finish(self, batch: _Batch[P], commit: asyncio.Future[bool]) -> None:
        error = commit.exception()
        last = batch.events[-1]
        if error is not None and not await self._landed_anyway(last):
            self._fail(batch.pendings, f"audit write failed: {error}")
            self._unstage()
        else:
            if error is not None:
                log.warning("audit commit reported %r but the batch is in the store", error)
            self._head = (last.seq, last.hash)
            self.stats.batches += 1
            self.stats.events += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            written_with_commit = error is None and commit.result()
            if not written_with_commit:
                await self._write_checkpoint()
            for pending, event in zip(batch.pendings, batch.events, strict=True):
                if not pending.future.done():
                    pending.future.set_result(event)
            if written_with_commit and self._checkpoint is not None:
                self._checkpoint.request_sync(self._checkpoint_failed)  # after: off the wait
            self._committing = None  # durable: no longer counted in ``depth``
            await self._after_commit(batch)
            self._settled = last.seq
            self._wake_settlers()
        self._committing = self._commit_task = None
        self._processed += len(batch)
        self._wake_flushers()

    def _wake_settlers(self, *, everyone: bool = False) -> None:
        if not self._settle_waiters:
            return
        still: list[tuple[int, asyncio.Future[None]]] = []
        for seq, waiter in self._settle_waiters:
            if everyone or seq <= self._settled:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((seq, waiter))
        self._settle_waiters = still

    def _unstage(self) -> None:
        """The staged batch was linked on top of a failed one: back to the queue, unlinked."""
        staged, self._staged = self._staged, None
        if staged is not None:
            self._queue.extendleft(reversed(staged.pendings))
        self._linked = self._head

    async def _reload_head(self) -> bool:
        try:
            self._head = await self._load_head()
        except Exception:  # any store failure: retried before the next batch
            self._head_stale = True
            return False
        self._head_stale = False
        return True

    async def _landed_anyway(self, last: AuditEvent) -> bool:
        """After a commit error: reload the head; True if it shows the batch was committed."""
        return await self._reload_head() and self._head == (last.seq, last.hash)

    async def _write_checkpoint(self) -> None:
        if self._checkpoint is None:
            return
        try:
            await self._checkpoint.write(*self._head)
            self.last_checkpoint_error = None
        except OSError as exc:
            self._checkpoint_failed(exc)

    def _checkpoint_failed(self, exc: OSError) -> None:
        # The events are durable; failing their futures would invite duplicates. The
        # lagging checkpoint shows up as a note in verify and is retried next batch.
        self.stats.checkpoint_errors += 1
        self.last_checkpoint_error = exc
        log.error("audit checkpoint %s not written: %s", getattr(self._checkpoint, "path", "?"), exc)

    def _sync_checkpoint(self) -> None:
        if self._checkpoint is None:
            return
        try:
            self._checkpoint.sync()
        except OSError as exc:  # the next write replaces the file atomically (durable)
            self._checkpoint_failed(exc)

    def _fail(self, pendings: list[_Pending], reason: str) -> None:
        if not pendings:
            return
        self.stats.failed_batches += 1
        self.stats.failed_events += len(pendings)
        for pending in pendings:
            if not pending.future.done():
                pending.future.set_exception(StoreError(reason))

    def _wake_flushers(self) -> None:
        if not self._flush_waiters:
            return
        still: list[tuple[int, int, asyncio.Future[None]]] = []
        for target, failed_before, waiter in self._flush_waiters:
            if waiter.done():
                continue
            if self._processed < target:
                still.append((target, failed_before, waiter))
            elif self.stats.failed_events > failed_before:
                failed = self.stats.failed_events - failed_before
                waiter.set_exception(StoreError(f"{failed} audit events failed to commit"))
            else:
                waiter.set_result(None)
        self._flush_waiters = still

    def _abandon(self, reason: str) -> None:
        if self._commit_task is not None:
            self._commit_task.cancel()
        for batch in (self._committing, self._staged):
            if batch is not None:
                self._fail(batch.pendings, reason)
        self._committing = self._staged = None
        pending = list(self._queue)
        self._queue.clear()
        self._fail(pending, reason)
        for _, _, waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_exception(StoreError(reason))
        self._flush_waiters = []
