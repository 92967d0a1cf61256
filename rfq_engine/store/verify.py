"""``verify`` for every store: stream raw rows through the chain check, then judge the chain
against its checkpoint log and, if there is one, its witness.

The store only supplies pages of raw rows in seq order (``chain.RawRow``); the judgement
(which problem wins, what is merely a note) lives here once. Chain problems come first
because they name the lowest bad seq; the checkpoint and the witness speak about heads.

What the checkpoint log's newest entry allows the database to hold (``checkpoint.py``):

- a ``done`` (or ``adopt``) entry for seq S: exactly S events, with the entry's hash at S;
- an ``intent`` for S after an entry for B: S events (the batch landed; its done entry is
  missing because a writer is between the two or stopped there) or B (not yet committed,
  or never: a writer stopped before its commit); both are notes;
- fewer: "events after seq N were deleted"; another hash at the entry's seq: the chain was
  rewritten; more: rows no writer announced ("not covered by the checkpoint log"). A
  writer may be committing while ``verify`` reads, so the log is read before the rows and,
  if the rows go past it, once more after.

A writer runs the same judgement when it opens the store (``check_before_writing``) and
refuses to extend a chain that fails it, naming the first bad seq and the runbook.

Under ``rfq serve --ha`` each engine keeps its own log, and a log's newest term may have
been followed by other engines' terms (a newer epoch in the witness, or the epoch being
taken now): then its newest committed entry must still be in the chain with its hash, a
trailing ``intent`` whose batch never landed is a note (its writer was fenced), and the rows
after it are the later terms', judged against the witness (whose heads of every engine and
epoch must all be in the chain) and, given, that engine's own log. ``lead`` entries (the
head each term adopted) must be in the chain too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace

from rfq_engine.store.base import StoreError, VerifyReport
from rfq_engine.store.chain import ChainVerifier, RawRow
from rfq_engine.store.checkpoint import (
    ADOPT,
    INTENT,
    KEY_ENV,
    LEAD,
    Checkpoint,
    CheckpointError,
    CheckpointLog,
    Entry,
    LogState,
    entry_mac_ok,
)
from rfq_engine.store.leader import Candidate, Role, opening_candidate
from rfq_engine.store.witness import publish, read_witness

__all__ = ["RUNBOOK", "adopt_tail", "check_before_writing", "verify_pages"]

log = logging.getLogger(__name__)

RUNBOOK = "runbooks/audit-chain-broken.md"
NO_CHECKPOINT_NOTE = "no checkpoint configured: deletion of the newest events cannot be detected"
UNAUTHENTICATED_NOTE = (
    f"checkpoint is not authenticated ({KEY_ENV} is not set): whoever can write both the "
    "database and the checkpoint file can hide a deletion"
)
HashAt = Callable[[int], "str | None"]
"""The stored hash at a seq the verifier watched (None: not seen, or not watched)."""


@dataclass(slots=True)
class _Judgement:
    problem: str | None = None
    first_bad: int | None = None
    checkpoint_seq: int | None = None
    notes: list[str] = field(default_factory=list)
    uncovered: bool = False

    def fail(self, problem: str, first_bad: int | None) -> _Judgement:
        self.problem, self.first_bad = problem, first_bad
        return self


def _rewritten(seq: int, what: str) -> str:
    return f"seq {seq}: hash differs from the {what} (chain rewritten at or before seq {seq})"


def _differs(hash_at: HashAt, seq: int, expected: str) -> bool:
    found = hash_at(seq)
    return found is not None and found != expected


def _legacy(log: CheckpointLog, cp: Checkpoint, head: int, hash_at: HashAt, j: _Judgement) -> _Judgement:
    """A checkpoint file of the previous format: one head, written after its commit."""
    j.checkpoint_seq = cp.seq
    if not log.mac_ok(cp):
        return j.fail(f"checkpoint {log.path}: MAC does not verify (forged checkpoint or wrong "
                      f"{KEY_ENV})", None)
    if head < cp.seq:
        return j.fail(f"events after seq {head} were deleted (the checkpoint records seq "
                      f"{cp.seq} as the head)", head + 1)
    if cp.seq > 0 and _differs(hash_at, cp.seq, cp.hash):
        return j.fail(_rewritten(cp.seq, "checkpoint"), cp.seq)
    if head > cp.seq:
        j.notes.append(f"{head - cp.seq} events after checkpoint seq {cp.seq} are not covered "
                       "(a checkpoint of the previous format; the next writer continues it as a log)")
    return j


def judge_log(log: CheckpointLog, state: LogState | None, head: int, hash_at: HashAt,
              later: int | None = None) -> _Judgement:
    """What the checkpoint file says about a chain that verified up to ``head``; ``later``:
    the epoch of a term that began after the log's newest entry (``--ha``)."""
    j = _Judgement()
    if state is None or (state.legacy is None and state.last is None and state.problem is None):
        what = "is missing" if state is None else "is empty"
        if head > 0 and later is None:
            j.fail(f"checkpoint {log.path} {what} but the chain holds events up to seq {head} "
                   "(checkpoint deleted, or database moved without it)", None)
        elif head > 0:
            j.notes.append(f"checkpoint {log.path} {what}: this engine's first term is epoch "
                           f"{later}; the events up to seq {head} are earlier terms'")
        return j
    if state.legacy is not None:
        return _legacy(log, state.legacy, head, hash_at, j)
    if state.problem is not None:
        return j.fail(state.problem, None)
    if state.torn:
        j.notes.append("the checkpoint log's last line is incomplete (a write in progress, or "
                       "torn by a crash): ignored")
    if state.skipped:
        lines = ", ".join(map(str, state.skipped[:5])) + (", …" if len(state.skipped) > 5 else "")
        j.notes.append(f"checkpoint log line(s) {lines}: not an intact entry (a torn write, or "
                       "junk): skipped; the entries around it link")
    j.notes += [f"checkpoint entry {e.n}: events up to seq {e.seq} were adopted by {e.by} "
                "(rfq audit adopt-tail)" for e in state.entries if e.kind == ADOPT]
    for e in state.entries:  # each term's start: the head its engine adopted
        if e.kind == LEAD and e.seq <= head and _differs(hash_at, e.seq, e.hash):
            return j.fail(_rewritten(e.seq, f"head {e.engine} adopted at epoch {e.epoch}"), e.seq)
    last = state.last
    assert last is not None
    if later is not None and later > last.epoch:
        return _superseded(state, head, hash_at, later, j)
    base = state.before_last if last.kind == INTENT else None
    if last.kind == INTENT and head == last.seq:
        j.notes.append(f"the batch up to seq {last.seq} was committed and its done entry is "
                       "missing (a writer is between the two, or stopped there)")
    elif base is not None and head == base.seq:
        j.checkpoint_seq = base.seq
        j.notes.append(f"checkpoint entry {last.n} announces seqs {base.seq + 1}..{last.seq}, "
                       "not in the database: a writer is committing them, or stopped before it did")
        if _differs(hash_at, base.seq, base.hash):
            return j.fail(_rewritten(base.seq, "checkpoint"), base.seq)
        return j
    if j.checkpoint_seq is None:
        j.checkpoint_seq = last.seq
    if _head_fails(j, last, head, hash_at):
        return j
    if head > last.seq:
        j.uncovered = True
        return j.fail(
            f"events {last.seq + 1}..{head} are not covered by the checkpoint log (its newest "
            f"entry, {last.n}, names seq {last.seq}): rows added behind the writer's back, or "
            f"checkpoint entries lost to a power cut; see {RUNBOOK}", last.seq + 1)
    return j


def _head_fails(j: _Judgement, entry: Entry, head: int, hash_at: HashAt) -> bool:
    """Whether the chain lacks the head ``entry`` names (deleted past it, or another hash
    at its seq); the judgement then says so."""
    if head < entry.seq:
        j.fail(f"events after seq {head} were deleted (the checkpoint records seq "
               f"{entry.seq} as the head)", head + 1)
    elif entry.seq > 0 and _differs(hash_at, entry.seq, entry.hash):
        j.fail(_rewritten(entry.seq, "checkpoint"), entry.seq)
    return j.problem is not None


def _superseded(state: LogState, head: int, hash_at: HashAt, later: int,
                j: _Judgement) -> _Judgement:
    """A log whose newest term ended (epoch ``later`` led since): its committed entries
    must be in the chain; the rows after them are the later terms'."""
    last = state.last
    assert last is not None
    done: Entry | None = last
    if last.kind == INTENT:
        done = state.before_last
        if head < last.seq or _differs(hash_at, last.seq, last.hash):
            j.notes.append(f"checkpoint entry {last.n} announces seqs up to {last.seq} that its "
                           f"writer never committed (epoch {later} took the lead first)")
        else:
            done = last
    end = 0 if done is None else done.seq
    if done is not None:
        j.checkpoint_seq = done.seq
        if _head_fails(j, done, head, hash_at):
            return j
    if head > end:
        who = f"{last.engine}'s epoch {last.epoch}" if last.engine else "this log's writer"
        j.notes.append(f"events {end + 1}..{head} were written after {who} (epoch {later} led "
                       "since): the witness and that engine's log cover them")
    return j


def _later_epoch(state: LogState | None, witnessed: Sequence[Entry]) -> int | None:
    """The newest epoch the witness saw, if it began after this log's newest entry."""
    newest = max((w.epoch for w in witnessed if w.engine), default=0)
    last = None if state is None else state.last
    return newest if newest > (0 if last is None else last.epoch) else None


def _after(state: LogState | None, taking: int) -> int | None:
    """``taking`` if another engine may have led since the log's newest entry (an epoch
    between): else nobody did, and rows past the log are not another term's."""
    last = None if state is None else state.last
    return taking if last is None or taking > last.epoch + 1 else None


def _term_heads(witnessed: Sequence[Entry]) -> list[Entry]:
    """The newest witnessed entry of each term (engine, epoch)."""
    heads: dict[tuple[str, int], Entry] = {}
    for w in witnessed:
        seen = heads.get((w.engine, w.epoch))
        if seen is None or w.seq >= seen.seq:
            heads[(w.engine, w.epoch)] = w
    return list(heads.values())


def judge_witness(witnessed: list[Entry], state: LogState | None, head: int, hash_at: HashAt,
                  key: bytes | None, path: str | os.PathLike[str], own: str = "") -> _Judgement:
    """The chain and its checkpoint log against the heads a witness holds; ``own``: the
    engine whose log ``state`` is (``--ha``), whose witnessed entries it must all hold."""
    j = _Judgement()
    if not witnessed:
        j.notes.append(f"the witness {path} holds no head yet")
        return j
    for w in witnessed:
        if not entry_mac_ok(w, key):
            return j.fail(f"witness {path}: entry {w.n} does not verify (forged, or the wrong "
                          f"{KEY_ENV})", None)
    newest = max(witnessed, key=lambda w: (w.seq, w.epoch, w.n))
    if head < newest.seq:
        who = f" by {newest.engine} at epoch {newest.epoch}" if newest.engine else ""
        return j.fail(
            f"events after seq {head} were deleted: the witness {path} saw seq {newest.seq} "
            f"committed{who} (checkpoint entry {newest.n}); the database and its checkpoint "
            "log were rolled back together", head + 1)
    for w in sorted(_term_heads(witnessed), key=lambda w: w.seq):
        if _differs(hash_at, w.seq, w.hash):
            return j.fail(_rewritten(w.seq, f"head the witness {path} saw"), w.seq)
    log_state = state if state is not None and state.legacy is None else None
    if log_state is not None or own:
        state = log_state or LogState()
        engines = {e.engine for e in state.entries} | ({own} if own else set())
        for w in witnessed:
            if w.engine not in engines:
                continue  # another engine's term: in its own log
            found = state.find(w.n)
            if found is None or found.link != w.link:
                return j.fail(f"the checkpoint log lacks the witnessed entry {w.n} (seq {w.seq}): "
                              "it was rolled back or rewritten", None)
    return j


def _seqs(state: LogState | None, witnessed: Sequence[Entry]) -> set[int]:
    """The seqs whose stored hash the judgement needs."""
    seqs = {w.seq for w in _term_heads(witnessed)}
    if state is not None:
        if state.legacy is not None:
            seqs.add(state.legacy.seq)
        seqs |= {e.seq for e in (state.last, state.before_last) if e is not None}
        seqs |= {e.seq for e in state.entries if e.kind == LEAD}
    return seqs


def _as_of(before: LogState | None, again: LogState | None, head: int) -> LogState | None:
    """The log read again after the rows, as it stood when they were read: a running
    writer may meanwhile have committed more batches past ``head`` and written their
    entries, which would read as rows deleted. Only entries appended since the first read
    (it is a prefix of the second) and naming seqs past ``head`` are dropped; anything else
    is judged as read."""
    if before is None or again is None or again.problem is not None:
        return again
    if again.entries[:len(before.entries)] != before.entries:
        return again
    kept = len(again.entries)
    while kept > len(before.entries) and again.entries[kept - 1].seq > head:
        kept -= 1
    return replace(again, entries=again.entries[:kept])


async def _verify(
    pages: AsyncGenerator[Sequence[RawRow], None], checkpoint: CheckpointLog | None,
    witness: str | os.PathLike[str] | None, taking: int | None = None, own: str = "",
) -> tuple[VerifyReport, LogState | None, bool]:
    """The report, the checkpoint log as judged, and whether the one problem is rows past
    the log (what ``adopt_tail`` may vouch for). ``taking``: the epoch whose term is
    starting (``--ha``): the log's own terms are all older."""
    started = time.perf_counter()
    notes: list[str] = []
    state: LogState | None = None
    cp_error: str | None = None
    witnessed: list[Entry] = []
    if checkpoint is None:
        notes.append(NO_CHECKPOINT_NOTE)
    else:
        try:
            state = await checkpoint.read()  # before the rows: a running writer is only ahead
        except (CheckpointError, OSError) as exc:
            cp_error = f"checkpoint unreadable: {exc}"
    if witness is not None:
        try:
            witnessed = read_witness(witness)
        except FileNotFoundError:
            notes.append(f"no witness file at {witness} yet")
        except (CheckpointError, OSError) as exc:
            cp_error = cp_error or f"witness unreadable: {exc}"
    verifier = ChainVerifier(watch=_seqs(state, witnessed))
    async with contextlib.aclosing(pages):
        async for page in pages:
            if not verifier.feed(page):
                break
    problem, first_bad, cp_seq = verifier.problem, verifier.first_bad_seq, None
    head, uncovered = verifier.head_seq, False
    if checkpoint is not None:
        if not checkpoint.authenticated:
            notes.append(UNAUTHENTICATED_NOTE)
        later = _later_epoch(state, witnessed) if taking is None else _after(state, taking)
        j = judge_log(checkpoint, state, head, verifier.hash_at, later)
        if j.uncovered:  # a writer may have committed since the log was read: once more
            again = _as_of(state, await checkpoint.read(), head)
            retry = judge_log(checkpoint, again, head, verifier.hash_at, later)
            if retry.problem is None:
                j, state = retry, again
        cp_seq = j.checkpoint_seq
        if problem is None and cp_error is None and j.problem is not None:
            problem, first_bad, uncovered = j.problem, j.first_bad, j.uncovered
        notes += j.notes
    if witness is not None and problem is None and cp_error is None:
        key = None if checkpoint is None else checkpoint.key
        w = judge_witness(witnessed, state, head, verifier.hash_at, key, witness, own)
        problem, first_bad = w.problem, w.first_bad
        notes += w.notes
    if problem is None and cp_error is not None:
        problem = cp_error
    report = VerifyReport(
        ok=problem is None, events=verifier.count, head_seq=head, head_hash=verifier.head_hash,
        first_bad_seq=first_bad, problem=problem, checkpoint_seq=cp_seq,
        seconds=time.perf_counter() - started, notes=tuple(notes))
    return report, state, uncovered


async def verify_pages(
    pages: AsyncGenerator[Sequence[RawRow], None], checkpoint: CheckpointLog | None,
    witness: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Verify a chain given as pages of raw rows against its checkpoint log (and witness)."""
    report, _, _ = await _verify(pages, checkpoint, witness)
    return report


async def check_before_writing(
    checkpoint: CheckpointLog | None, pages: AsyncGenerator[Sequence[RawRow], None],
    head: tuple[int, str], witness: str | os.PathLike[str] | None = None,
) -> None:
    """Before a writer extends a chain: verify all of it (the rows, the checkpoint log, the
    witness) and refuse (StoreError) if it fails, naming the first bad seq and the runbook:
    appending would bury the damage under new events. Then continue the log with a
    ``done`` entry for the head found (a new chain's seq 0, so that from then on a missing
    file is itself a finding; a batch that did or did not land before a crash).

    Opened inside ``leader.leading_as`` (``rfq serve --ha``), the engine starts its term
    instead: a ``lead`` entry for the head found, naming the engine and its new epoch, is
    appended and published to the witness before the first event; every later entry names
    them too."""
    term = opening_candidate() if checkpoint is not None else None
    taking = _taking(term)
    report, state, _ = await _verify(pages, checkpoint, witness, taking,
                                     "" if term is None or taking is None else term.name)
    if not report.ok:
        where = "" if report.first_bad_seq is None else f" (first bad seq {report.first_bad_seq})"
        raise StoreError(f"refusing to write: {report.problem}{where}; run `rfq audit verify` "
                         f"and follow {RUNBOOK}")
    if (report.head_seq, report.head_hash) != head:
        raise StoreError(f"refusing to write: the chain head moved while it was verified "
                         f"(seq {head[0]}, then {report.head_seq}): is another writer running?")
    if checkpoint is None:
        return
    checkpoint.resume(state)
    if term is not None and taking is not None:
        await _start_term(checkpoint, term, head, witness)
        return
    last = None if state is None else state.last
    if last is None or last.kind == INTENT or (last.seq, last.hash) != head:
        await checkpoint.done(*head)


def _taking(term: Candidate | None) -> int | None:
    """The epoch a just-elected candidate leads at (None: not an ``--ha`` open)."""
    if term is None or term.role is not Role.LEADER or term.leader is None:
        return None
    return term.leader.epoch


async def _start_term(checkpoint: CheckpointLog, term: Candidate, head: tuple[int, str],
                      witness: str | os.PathLike[str] | None) -> None:
    """The ``lead`` entry for ``head``, durable, then published to the witness (a witness
    that cannot be written is said at error level; the writer publishes its next heads)."""
    checkpoint.term = term
    entry = await asyncio.to_thread(checkpoint.append_sync, LEAD, head[0], head[1], durable=True)
    if witness is None:
        return
    try:
        await asyncio.to_thread(publish, witness, entry)
    except OSError as exc:
        log.error("audit witness %s not written (the lead of epoch %d at seq %d): %s",
                  witness, entry.epoch, entry.seq, exc)



async def adopt_tail(checkpoint: CheckpointLog, pages: AsyncGenerator[Sequence[RawRow], None],
                     through: int, by: str) -> tuple[int, int]:
    """A person vouches for the events past the checkpoint log (their entries lost to a
    power cut; docs/audit.md), with the writer's lock held: the chain must verify but for
    exactly that, ending at ``through``. Appends an ``adopt`` entry naming ``by``; returns
    the first and last seq adopted. Anything else wrong is refused."""
    report, state, uncovered = await _verify(pages, checkpoint, None)
    if report.ok:
        raise StoreError("nothing to adopt: every event is covered by the checkpoint log")
    if not uncovered or report.first_bad_seq is None:
        raise StoreError(f"refusing to adopt: {report.problem}; follow {RUNBOOK}")
    if report.head_seq != through:
        raise StoreError(f"the uncovered events are seqs {report.first_bad_seq}..{report.head_seq}, "
                         f"not up to {through}: check them, then name the last one")
    checkpoint.resume(state)
    await asyncio.to_thread(checkpoint.append_sync, ADOPT, report.head_seq, report.head_hash,
                            durable=True, by=by)
    return report.first_bad_seq, report.head_seq
