"""``verify`` for every store: stream raw rows through the chain check, then the checkpoint.

The store only supplies pages of raw rows in seq order (``chain.RawRow``); the judgement
(which problem wins, what is merely a note) lives here once. Chain problems come first
because they name the lowest bad seq; the checkpoint can only speak about the head.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from rfq_engine.store.base import StoreError, VerifyReport
from rfq_engine.store.chain import ChainVerifier, RawRow
from rfq_engine.store.checkpoint import KEY_ENV, Checkpoint, CheckpointError, CheckpointFile

__all__ = ["check_before_writing", "checkpoint_problem", "verify_pages"]

NO_CHECKPOINT_NOTE = "no checkpoint configured: deletion of the newest events cannot be detected"
UNAUTHENTICATED_NOTE = (
    f"checkpoint is not authenticated ({KEY_ENV} is not set): whoever can write both the "
    "database and the checkpoint file can hide a deletion"
)


def checkpoint_problem(
    checkpoint: CheckpointFile, cp: Checkpoint | None, head_seq: int, hash_at_cp: str | None
) -> tuple[str, int | None] | None:
    """What is wrong between a (valid) chain ending at ``head_seq`` and its checkpoint.

    ``hash_at_cp`` is the hash stored in the database at ``cp.seq`` (None if absent).
    Returns (problem, first_bad_seq) or None when they agree.
    """
    if cp is None:
        if head_seq > 0:
            return (
                f"checkpoint {checkpoint.path} is missing but the chain holds events up to "
                f"seq {head_seq} (checkpoint deleted, or database moved without it)",
                None,
            )
        return None
    if not checkpoint.mac_ok(cp):
        return (
            f"checkpoint {checkpoint.path}: MAC does not verify "
            f"(forged checkpoint or wrong {KEY_ENV})",
            None,
        )
    if head_seq < cp.seq:
        return (
            f"events after seq {head_seq} were deleted "
            f"(the checkpoint records seq {cp.seq} as the head)",
            head_seq + 1,
        )
    if cp.seq > 0 and hash_at_cp != cp.hash:
        return (
            f"seq {cp.seq}: hash differs from the checkpoint "
            f"(chain rewritten at or before seq {cp.seq})",
            cp.seq,
        )
    return None


async def check_before_writing(
    checkpoint: CheckpointFile | None,
    head: tuple[int, str],
    hash_at: Callable[[int], Awaitable[str | None]],
) -> None:
    """Before a writer extends a chain: refuse (StoreError) if the chain disagrees with its
    checkpoint, because appending would move the checkpoint on and hide a deletion or a
    rewrite for good; seal a new chain's empty head so a missing file always means loss."""
    if checkpoint is None:
        return
    try:
        cp = await checkpoint.read()
    except CheckpointError as exc:
        raise StoreError(str(exc)) from exc
    found = checkpoint_problem(checkpoint, cp, head[0], None if cp is None else await hash_at(cp.seq))
    if found is not None:
        raise StoreError(f"refusing to write: {found[0]}; run `rfq audit verify`")
    if cp is None:
        await checkpoint.write(*head)


async def verify_pages(
    pages: AsyncGenerator[Sequence[RawRow], None], checkpoint: CheckpointFile | None
) -> VerifyReport:
    """Verify a chain given as pages of raw rows; reads the checkpoint *before* the rows so a
    running writer can only be ahead of it, never behind."""
    started = time.perf_counter()
    notes: list[str] = []
    cp: Checkpoint | None = None
    cp_error: str | None = None
    if checkpoint is None:
        notes.append(NO_CHECKPOINT_NOTE)
    else:
        try:
            cp = await checkpoint.read()
        except (CheckpointError, OSError) as exc:
            cp_error = f"checkpoint unreadable: {exc}"
    verifier = ChainVerifier(watch_seq=None if cp is None else cp.seq)
    async with contextlib.aclosing(pages):
        async for page in pages:
            if not verifier.feed(page):
                break
    problem, first_bad = verifier.problem, verifier.first_bad_seq
    if checkpoint is not None:
        if not checkpoint.authenticated:
            notes.append(UNAUTHENTICATED_NOTE)
        if problem is None and cp_error is not None:
            problem = cp_error
        elif problem is None:
            found = checkpoint_problem(checkpoint, cp, verifier.head_seq, verifier.watched_hash)
            if found is not None:
                problem, first_bad = found
        if problem is None and cp is not None and verifier.head_seq > cp.seq:
            notes.append(
                f"{verifier.head_seq - cp.seq} events after checkpoint seq {cp.seq} are not "
                "covered yet (a writer is committing, or stopped between commit and checkpoint)"
            )
    return VerifyReport(
        ok=problem is None,
        events=verifier.count,
        head_seq=verifier.head_seq,
        head_hash=verifier.head_hash,
        first_bad_seq=first_bad,
        problem=problem,
        checkpoint_seq=None if cp is None else cp.seq,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
