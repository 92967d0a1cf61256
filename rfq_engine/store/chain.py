"""Chain arithmetic shared by every store: linking new events and re-checking stored ones.

``events.chain_hash`` is the definition. ``link_hash`` computes the same bytes without
the generic ``canonical_json`` machinery (sorting, ``default=`` hooks) because the header
is always ``[int, str, str, str, str]``: for such a list ``json.dumps`` with ``,``/``:``
separators and ``ensure_ascii=False`` is exactly ``[seq,"ts","rfq","type","actor"]`` with
each string escaped by ``json.encoder.encode_basestring``. That keeps the writer and
``verify`` at a few microseconds per event (a test pins the equivalence).

``ChainVerifier`` consumes raw rows in seq order, in as many pieces as the caller likes
(the SQL store streams pages), and stops at the first problem, naming its seq.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, Final

from rfq_engine.domain import format_ts
from rfq_engine.store.events import GENESIS_HASH, AuditEvent

__all__ = ["ChainVerifier", "RawRow", "event_row", "link_hash", "ts_text"]

_enc: Final = encode_basestring
_sha256: Final = hashlib.sha256

# (seq, ts as "...Z" text, rfq_id | None, type, actor, payload_json, prev_hash, hash)
RawRow = Sequence[Any]


# Rendered timestamps, by instant. A timestamp is rendered several times on its way into
# the database (the event's hash, its row, the projection rows that carry it): a lookup
# costs a fiftieth of a rendering. Equal aware datetimes are the same instant and render
# the same text, whatever their tzinfo; naive ones are never stored (format_ts refuses them).
# Shared by the writer's threads: dict get/set are atomic, a lost entry is only a miss.
_TS_TEXT: Final[dict[datetime, str]] = {}
_TS_TEXT_MAX: Final = 8192


def ts_text(ts: datetime) -> str:
    """``format_ts``, remembered."""
    text = _TS_TEXT.get(ts)
    if text is not None:
        return text
    text = format_ts(ts)
    if len(_TS_TEXT) >= _TS_TEXT_MAX:
        _TS_TEXT.clear()
    _TS_TEXT[ts] = text
    return text


def link_hash(
    prev_hash: str, seq: int, ts_text: str, rfq_id: str | None, type_: str, actor: str,
    payload_json: str,
) -> str:
    """``events.chain_hash`` for a ts already rendered as ``...Z`` text, without the slow path."""
    header = f"[{int(seq)},{_enc(ts_text)},{_enc(rfq_id or '')},{_enc(type_)},{_enc(actor)}]"
    return _sha256(f"{prev_hash}\n{header}\n{payload_json}".encode()).hexdigest()


def event_row(event: AuditEvent, ts_text: str) -> tuple[Any, ...]:
    return (
        event.seq, ts_text, event.rfq_id, event.type, event.actor, event.payload_json,
        event.prev_hash, event.hash,
    )


class ChainVerifier:
    """Recomputes the chain row by row: contiguous seq from 1, prev_hash linkage, hashes.

    ``watch``: seqs whose stored hash is kept in ``watched`` (the checkpoint's and the
    witness's heads), so the caller can compare them afterwards; ``watch_seq`` is one more
    such seq, whose hash is also ``watched_hash``.
    """

    __slots__ = (
        "count", "first_bad_seq", "head_hash", "head_seq", "problem", "watch", "watch_seq",
        "watched",
    )

    def __init__(self, watch_seq: int | None = None, watch: Iterable[int] = ()) -> None:
        self.count = 0
        self.head_seq = 0
        self.head_hash = GENESIS_HASH
        self.first_bad_seq: int | None = None
        self.problem: str | None = None
        self.watch_seq = watch_seq
        self.watch = frozenset(watch) | ({watch_seq} if watch_seq is not None else set())
        self.watched: dict[int, str] = {0: GENESIS_HASH}

    @property
    def watched_hash(self) -> str | None:
        return None if self.watch_seq is None else self.watched.get(self.watch_seq)

    def hash_at(self, seq: int) -> str | None:
        """The stored hash at a watched ``seq`` (seq 0: the genesis), None if not seen."""
        return self.watched.get(seq)

    @property
    def failed(self) -> bool:
        return self.problem is not None

    def _fail(self, seq: int, problem: str) -> bool:
        self.first_bad_seq = seq
        self.problem = problem
        return False

    def feed(self, rows: Iterable[RawRow]) -> bool:
        """Check the next rows; False once a problem is found (later rows are ignored)."""
        if self.problem is not None:
            return False
        expected = self.head_seq + 1
        prev = self.head_hash
        watch = self.watch
        count = 0
        try:
            for seq, ts_text, rfq_id, type_, actor, payload, prev_hash, hash_ in rows:
                if seq != expected:
                    if seq < expected:  # only possible if the source is not ordered/unique
                        return self._fail(seq, f"seq {seq} appears twice or out of order")
                    return self._fail(expected, f"seq {expected} missing (row deleted or sequence gap)")
                if prev_hash != prev:
                    return self._fail(
                        seq,
                        f"seq {seq}: prev_hash does not match seq {seq - 1} "
                        "(row inserted or reordered)",
                    )
                if link_hash(prev_hash, seq, ts_text, rfq_id, type_, actor, payload) != hash_:
                    return self._fail(seq, f"seq {seq}: hash does not match its contents (row edited)")
                if seq in watch:
                    self.watched[seq] = hash_
                prev = hash_
                expected = seq + 1
                count += 1
        except (TypeError, ValueError, AttributeError) as exc:
            # A NULL or a mangled value in a column the hash covers: an edited row too.
            return self._fail(expected, f"seq {expected}: unreadable row ({exc}) (row edited)")
        finally:
            self.count += count
            self.head_seq = expected - 1
            self.head_hash = prev
        return True
