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
writer runs the checkpoint log's ``intent`` entry, the commit and its ``done`` entry in one
hop to that thread, and the log's fdatasync follows in the background after the futures
resolved (checkpoint.py says what a power cut in that window can and cannot cost);
otherwise the intent is appended durably before the commit and the done entry after it. A
``ThreadCommit`` may split off work the appenders need not wait for (``after``: SQLite's
query tables); it runs once the tasks the futures woke have had their turn (under load for
the batches of ``AFTER_EVERY_S`` at once), ``flush`` and ``settled`` wait for it (and make
it run), ``depth`` does not count it.

If ``commit`` raises, the batch is neither failed nor dropped (outage.py): the writer
reconnects (``reconnect``), reloads the head, and if the batch is not in the store after
all (the error came after the COMMIT), commits it again with the same seqs and hashes,
with a backoff, while later events wait behind it in order (the batch staged meanwhile
stays linked on top of it). Watchers see the store go down and come back. Only past the
retry policy's limits does the writer stop: every waiting future fails, nothing more is
written, and what the store holds is a prefix of what happened.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

from rfq_engine.domain import utc_now
from rfq_engine.store.base import StoreError
from rfq_engine.store.batch import (
    Batch,
    CommitFn,
    HeadFn,
    Pending,
    PrepareFn,
    ReconnectFn,
    ThreadCommit,
    WriterStats,
    wake_through,
)
from rfq_engine.store.canonical import encode_payload
from rfq_engine.store.chain import link_hash, ts_text
from rfq_engine.store.checkpoint import DONE, CheckpointLog
from rfq_engine.store.commit_watch import CommitWatch
from rfq_engine.store.events import AuditEvent
from rfq_engine.store.outage import (
    HealthTracker,
    HealthWatcher,
    RetryPolicy,
    StoreHealth,
    WriterFenced,
    describe,
)
from rfq_engine.store.witness import Witness

__all__ = [
    "CommitFn", "GroupCommitWriter", "HeadFn", "PrepareFn", "ReconnectFn", "ThreadCommit",
    "WriterStats",
]

log = logging.getLogger(__name__)

P = TypeVar("P")
PREPARE_CHUNK: Final = 200  # events linked and prepared between two yields to the loop
AFTER_EVERY_S: Final = 0.05
"""Under load, ``after`` runs for the batches of this long in one call (one query-table
transaction, not one per batch, on the thread the next commit waits for); at once when
nothing is queued, a reader waits (``settled``, ``flush``) or the writer closes."""
AFTER_MAX_EVENTS: Final = 2000  # ... or once this many events wait for it


class _Stopped(Exception):
    """The writer gives up: past the retry policy's limits, or fenced."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GroupCommitWriter(Generic[P]):
    """Owns seq assignment for one store. ``start`` it after the head is known."""

    def __init__(
        self,
        prepare: PrepareFn[P],
        commit: CommitFn[P] | ThreadCommit[P],
        load_head: HeadFn,
        head: tuple[int, str],
        *,
        checkpoint: CheckpointLog | None = None,
        batch_max: int = 1000,
        reconnect: ReconnectFn | None = None,
        retry: RetryPolicy | None = None,
        witness: Witness | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self._prepare = prepare
        self._commit = commit
        self._load_head = load_head
        self._reconnect = reconnect
        self._policy = retry or RetryPolicy()
        self._head = head  # newest durable event
        self._linked = head  # newest linked event (ahead of _head while batches are staged)
        self._checkpoint = checkpoint
        self._witness = witness
        self._batch_max = batch_max
        self._queue: collections.deque[Pending] = collections.deque()
        self._committing: Batch[P] | None = None
        self._staged: Batch[P] | None = None
        self._commit_task: asyncio.Future[Any] | None = None
        self._work: asyncio.Future[None] | None = None
        self._submitted = 0
        self._processed = 0
        self._flush_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._settled = head[0]  # newest seq whose whole commit (not only its events) ended
        self._settle_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._unsettled: list[Batch[P]] = []  # durable, their ``after`` not run yet
        self._last_after = 0.0
        self._closing = False
        self._close_deadline: float | None = None
        self._refusal = "the audit store is not open for writing"
        self._tracker = HealthTracker(self._policy)
        self._task: asyncio.Task[None] | None = None
        self.stats = WriterStats()
        self.commits = CommitWatch()
        """How long batches take to become durable; slow ones are counted and logged."""
        self.last_checkpoint_error: OSError | None = None

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed event."""
        return self._head

    @property
    def depth(self) -> int:
        """Events submitted but not yet durable (queued, staged or being committed)."""
        return (len(self._queue) + len(self._committing or ()) + len(self._staged or ()))

    @property
    def health(self) -> StoreHealth:
        return self._tracker.health

    def watch(self, watcher: HealthWatcher) -> None:
        """Call ``watcher(health)`` at each change: down, back up, stopped."""
        self._tracker.watch(watcher)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("writer already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    def submit(
        self, rfq_id: str | None, type_: str, actor: str, payload: Mapping[str, Any]
    ) -> asyncio.Future[AuditEvent]:
        """Queue an event. Raises at once (never via the future) for caller errors: a closed
        or stopped writer (StoreError), an empty type/actor (ValueError), a float or another
        value without an exact canonical JSON form (TypeError)."""
        if self._task is None or self._closing:
            raise StoreError(self._refusal)
        if not isinstance(type_, str) or not type_:
            raise ValueError("event type must be a non-empty string")
        if not isinstance(actor, str) or not actor:
            raise ValueError("event actor must be a non-empty string")
        if rfq_id is not None and not isinstance(rfq_id, str):
            raise ValueError("rfq_id must be a string or None")
        # The store gets its own JSON-native copy and floats are refused (json.dumps writes
        # them without asking), here rather than in the writer's critical path.
        payload_json, parsed = encode_payload(payload)
        future: asyncio.Future[AuditEvent] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(utc_now(), rfq_id, type_, actor, payload_json, parsed, future))
        self._submitted += 1
        self._notify()
        return future

    async def flush(self) -> None:
        """Wait until everything submitted so far is processed; StoreError if any of it failed."""
        target = self._submitted
        if self._processed >= target:
            return
        if self._task is None or self._task.done():
            raise StoreError(self._refusal if self._task is not None else
                             "the audit writer is not running")
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
        self._notify()  # an idle writer with batches whose ``after`` is deferred runs it
        await asyncio.shield(waiter)

    async def close(self) -> None:
        """Drain the queue, then stop. With the store down, the retries go on for at most
        the policy's ``close_grace_s``. Idempotent; survives the caller being cancelled."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._refusal = "the audit store is closing"
        if self._close_deadline is None:
            self._close_deadline = time.monotonic() + self._policy.close_grace_s
        self._notify()
        try:
            await asyncio.shield(task)
            if self._checkpoint is not None:
                await asyncio.shield(self._checkpoint.synced())
                await asyncio.to_thread(self._sync_checkpoint)
            if self._witness is not None:
                await self._witness.close()
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
                    if self._queue:  # the events of a failed ``prepare`` were failed
                        continue
                    if self._unsettled:
                        await self._settle()
                        continue
                    if self._closing:
                        return
                    await self._idle()
                    continue
                self._committing = batch
                started, stacks = time.monotonic(), self.commits.arm()
                commit = self._commit_task = self._start_commit(batch)
                await self._stage_while(commit)
                await self._finish(batch, commit)
                stacks.cancel()
                self.commits.observe(time.monotonic() - started, len(batch), self.stats)
        except _Stopped as stopped:
            self._stop(stopped.reason)
        except asyncio.CancelledError:
            self._abandon("the audit writer was cancelled")
            raise
        except Exception as exc:  # a bug: refuse new events rather than queue them forever
            log.exception("audit writer crashed")
            self._stop(f"the audit writer crashed: {exc!r}")
        finally:
            self._wake_settlers(everyone=True)

    async def _stage(self, batch: Batch[P] | None) -> Batch[P] | None:
        """Link and prepare what is queued, up to batch_max, yielding between chunks.
        None when nothing could be staged."""
        batch = batch if batch is not None else Batch()
        while self._queue and len(batch) < self._batch_max:
            self._link_chunk(batch)
            if self._queue and len(batch) < self._batch_max:
                await asyncio.sleep(0)  # a yield, not a delay: submitters keep running
        return batch if batch else None

    def _start_commit(self, batch: Batch[P]) -> asyncio.Future[bool]:
        """The batch's commit; its result says whether the done entry was written with it."""
        last = batch.events[-1]
        if isinstance(self._commit, ThreadCommit):
            return asyncio.get_running_loop().run_in_executor(
                self._commit.executor, self._commit_then_checkpoint, self._commit.commit,
                batch.parts, last.seq, last.hash,
            )
        return asyncio.ensure_future(self._commit_only(self._commit, batch.parts, last))

    async def _commit_only(self, commit: CommitFn[P], parts: list[P], last: AuditEvent) -> bool:
        if self._checkpoint is not None:  # announced, durably, before it can exist
            await self._checkpoint.intent(last.seq, last.hash)
        await commit(parts)
        return False

    def _commit_then_checkpoint(
        self, commit: Callable[[list[P]], None], parts: list[P], seq: int, hash_: str
    ) -> bool:
        """On the commit's thread: the intent entry, the commit, the done entry (visible,
        not yet fdatasync'd). An intent that cannot be written fails the attempt: a row
        nobody announced would read as forged."""
        if self._checkpoint is not None:
            self._checkpoint.intent_sync(seq, hash_)
        commit(parts)
        if self._checkpoint is not None:
            try:
                self._checkpoint.done_sync(seq, hash_)
                self.last_checkpoint_error = None
            except OSError as exc:
                self._checkpoint_failed(exc)
        return True

    async def _after_commit(self, batch: Batch[P]) -> None:
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
            if self._queue and (staged is None or len(staged) < self._batch_max):
                if staged is None:
                    staged = self._staged = Batch()
                self._link_chunk(staged)
                await asyncio.sleep(0)  # let the commit take its next step
            else:
                waiting: set[asyncio.Future[Any]] = {commit, self._wait_for_work()}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    def _link_chunk(self, batch: Batch[P]) -> None:
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

    async def _finish(self, batch: Batch[P], commit: asyncio.Future[bool]) -> None:
        error = commit.exception()
        written_with_commit = commit.result() if error is None else await self._retry(batch, error)
        last = batch.events[-1]
        self._head = (last.seq, last.hash)
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        if not written_with_commit:
            await self._write_checkpoint()
        for pending, event in zip(batch.pendings, batch.events, strict=True):
            if not pending.future.done():
                pending.future.set_result(event)
        if batch.pendings:  # what the oldest appender of the batch waited for
            self.stats.observe_wait(time.monotonic() - batch.pendings[0].queued)
        if self._checkpoint is not None:
            if written_with_commit:  # off the wait (the other path's intent was synced)
                self._checkpoint.request_sync(self._checkpoint_failed)
            entry = self._checkpoint.last_entry
            if self._witness is not None and entry is not None and entry.kind == DONE:
                self._witness.offer(entry)
        self._committing = None  # durable: no longer counted in ``depth``
        self._unsettled.append(batch)
        if self._after_now():
            await self._settle()
        self._commit_task = None

    def _after_now(self) -> bool:
        """Whether the ``after`` of the durable batches runs now or joins the next ones'."""
        commit = self._commit
        if not isinstance(commit, ThreadCommit) or commit.after is None:
            return True
        return bool(self._settle_waiters or self._flush_waiters or self._closing
                    or not (self._queue or self._staged)
                    or sum(map(len, self._unsettled)) >= AFTER_MAX_EVENTS
                    or time.monotonic() - self._last_after >= AFTER_EVERY_S)

    async def _settle(self) -> None:
        """Run the deferred ``after`` of the durable batches (one call), then wake who waits."""
        merged, self._unsettled = Batch.joined(self._unsettled), []
        await self._after_commit(merged)
        self.stats.settles += 1
        self._last_after = time.monotonic()
        self._settled = merged.events[-1].seq
        self._wake_settlers()
        self._processed += len(merged.events)
        self._wake_flushers()

    # --- a commit failed --------------------------------------------------------------------

    async def _retry(self, batch: Batch[P], error: BaseException) -> bool:
        """Until ``batch`` is in the store: reconnect, reload the head, and commit it again
        (same seqs and hashes) unless it landed after all. Returns whether the done entry
        was written with the commit; raises ``_Stopped`` past the policy's limits."""
        first, last = batch.events[0].seq, batch.events[-1]
        started = time.monotonic()
        failures = 0
        while True:
            failures += 1
            self.stats.failed_commits += 1
            if isinstance(error, WriterFenced):
                raise _Stopped(describe(error))
            if failures == 1:
                log.warning("audit commit of seqs %d..%d failed (%s); retrying on a new connection",
                            first, last.seq, describe(error))
            else:
                if self._tracker.failed(error, failures - 1, self.depth):
                    self.stats.outages += 1
                self._check_limits(started)
                await self._pause(self._policy.delay(failures - 1))
            try:
                if self._reconnect is not None:
                    await self._reconnect()
                head = await self._load_head()
            except WriterFenced as exc:
                raise _Stopped(describe(exc)) from exc
            except Exception as exc:  # still unavailable: the next attempt, after a pause
                error = exc
                continue
            if head == (last.seq, last.hash):
                log.warning("audit commit of seqs %d..%d reported an error, but the batch is in "
                            "the store", first, last.seq)
                self._tracker.recovered(self.depth)
                return False
            if head != self._head:
                raise _Stopped(f"the chain head moved under this writer (seq {head[0]}; it wrote "
                               f"up to seq {self._head[0]}): is another writer running?")
            commit = self._commit_task = self._start_commit(batch)
            await self._stage_while(commit)
            error = commit.exception()  # type: ignore[assignment]
            if error is None:
                self._tracker.recovered(self.depth)
                return bool(commit.result())

    async def _idle(self) -> None:
        """Wait for work; meanwhile read the head every ``probe_interval_s`` (outage.py)."""
        work = self._wait_for_work()
        interval = self._policy.probe_interval_s
        if interval is None:
            await work
            return
        failures = 0
        while not work.done():
            await asyncio.wait({work}, timeout=interval if failures == 0 else
                               self._policy.delay(failures))
            if work.done():
                return
            try:
                if failures and self._reconnect is not None:
                    await self._reconnect()
                head = await self._load_head()
            except WriterFenced as exc:
                raise _Stopped(describe(exc)) from exc
            except Exception as exc:
                failures += 1
                if failures >= 2 and self._tracker.failed(exc, failures - 1, self.depth):
                    self.stats.outages += 1
                continue
            if head != self._head:
                raise _Stopped(f"the chain head moved under this writer (seq {head[0]}; it wrote "
                               f"up to seq {self._head[0]}): is another writer running?")
            failures = 0
            self._tracker.recovered(self.depth)

    def _check_limits(self, started: float) -> None:
        now, policy = time.monotonic(), self._policy
        if now - started > policy.give_up_after_s:
            raise _Stopped(f"the audit store has been unavailable for {now - started:.0f} s "
                           f"(the limit is {policy.give_up_after_s:g} s: [store] outage_limit_s)")
        if self.depth > policy.max_queued:
            raise _Stopped(f"{self.depth} audit events wait for an unavailable store (the limit "
                           f"is {policy.max_queued})")
        if self._close_deadline is not None and now > self._close_deadline:
            raise _Stopped("the audit store is still unavailable at shutdown")

    async def _pause(self, delay: float) -> None:
        if self._close_deadline is not None:
            delay = min(delay, max(0.0, self._close_deadline - time.monotonic()) + 0.01)
        await asyncio.sleep(delay)

    def _stop(self, reason: str) -> None:
        """Give up: fail everything waiting, refuse new events, write nothing more."""
        self._closing = True
        self._refusal = f"the audit writer stopped: {reason}"
        waiting = [b for b in (self._committing, self._staged) if b is not None]
        lost = self.depth
        first = waiting[0].events[0].seq if waiting else self._head[0] + 1
        log.error("audit writer stopped: %s; %d events were not written (seq %d and after); the "
                  "store holds everything up to seq %d, with no gap; restart the engine once the "
                  "store is back: recovery resumes from what is durable (runbooks/store-down.md)",
                  reason, lost, first, self._head[0])
        self._abandon(self._refusal)
        self._tracker.stopped(reason)

    # --- waiters, checkpoint ----------------------------------------------------------------

    def _wake_settlers(self, *, everyone: bool = False) -> None:
        if self._settle_waiters:
            self._settle_waiters = wake_through(self._settle_waiters, self._settled, everyone=everyone)

    async def _write_checkpoint(self) -> None:
        """The done entry after a commit that did not write it: an append to the page cache,
        done here rather than in a thread (a hop costs more). Not synced on its own: the
        batch's intent was, before the commit, and the next intent's fdatasync (or close)
        covers it; losing it to a power cut only leaves that intent as the newest entry."""
        if self._checkpoint is None:
            return
        try:
            self._checkpoint.done_sync(*self._head)
            self.last_checkpoint_error = None
        except OSError as exc:
            self._checkpoint_failed(exc)

    def _checkpoint_failed(self, exc: OSError) -> None:
        # The events are durable; failing their futures would invite duplicates. The next
        # batch's intent entry covers them (or fails that batch's commit, and retries it).
        self.stats.checkpoint_errors += 1
        self.last_checkpoint_error = exc
        log.error("audit checkpoint %s not written: %s", getattr(self._checkpoint, "path", "?"), exc)

    def _sync_checkpoint(self) -> None:
        if self._checkpoint is None:
            return
        try:
            self._checkpoint.sync()
        except OSError as exc:
            self._checkpoint_failed(exc)

    def _fail(self, pendings: list[Pending], reason: str) -> None:
        """Fail these futures. The writer has said why at error level, once: the failure
        counts as retrieved, so a future nobody awaited does not log it again."""
        if not pendings:
            return
        self.stats.failed_batches += 1
        self.stats.failed_events += len(pendings)
        for pending in pendings:
            if not pending.future.done():
                pending.future.set_exception(StoreError(reason))
                pending.future.exception()

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
