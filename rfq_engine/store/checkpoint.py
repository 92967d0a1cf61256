"""The checkpoint log: the chain's heads, kept outside the database, one entry per step.

Why it exists. The hash chain proves that every stored row is consistent with the row
before it. Deleting the *newest* rows leaves a shorter chain that is still consistent,
someone able to edit the database can recompute every hash after an edit ("rewrite the
chain"), and can append a row with a correctly computed hash. None of that can be seen
from inside the database. So the writer records its heads in an append-only file outside
it (``<dbfile>.head`` for SQLite, ``[store] checkpoint_path`` otherwise), one JSON line
an entry::

    {"check": "<sha256>", "hash": "<head hash>", "kind": "intent", "mac": "<hmac or empty>",
     "n": 41, "prev": "<link of entry 40>", "seq": 1234}

- ``n`` counts the entries from 1, with no gap; ``prev`` is the *link* of entry ``n-1``
  (its ``mac`` with a key, else its ``check``; empty for entry 1, or the previous file
  format's MAC when a log continues one): removing, reordering or splicing entries breaks
  the chain of links, and with ``RFQ_AUDIT_CHECKPOINT_KEY`` set a believable entry needs
  the key (``mac`` is HMAC-SHA256 of ``n:kind:seq:hash:prev[:by]``).
- ``check`` is SHA-256 over the same fields and the mac, without a key: a torn or edited
  line is detectable, keyed or not.
- ``kind``: ``intent`` is written *before* a batch is committed and names the batch's last
  seq and hash; ``done`` is written after the commit (and by a writer opening the store, for
  the head it found); ``adopt`` is a person's ``rfq audit adopt-tail`` (``by``). So every
  row in the database is announced by an entry before it exists: a row past the newest
  entry was not written by the writer (or its entry was lost by a power cut: see
  docs/audit.md), and is neither adopted by the next writer nor passed by ``verify``.
  ``lead`` opens a leadership term under ``rfq serve --ha``: the head the engine found when
  it took the lead (rows up to it were written by the engines before it, checked against
  the witness; verify.py).
- ``engine`` and ``epoch`` (only under ``--ha``, then in every entry, and in the MAC as
  ``|engine|epoch``): who wrote the entry and its leader epoch (``leader_epochs``), which
  never decreases within a log. Each engine keeps its own log on its own disk; between
  two of its terms the rows belong to the other engine's terms.

The file is only ever appended to (``O_APPEND``, one ``write`` an entry), so it can live on
a file with the append-only attribute (``chattr +a``), where the engine's own user cannot
truncate it. A final line without its newline is a write in progress or torn by a crash:
ignored (a note), and the next writer removes it (or, on an append-only file, ends it with
a newline). A line that is not an intact entry is skipped with a note: what it could hide
shows anyway, because the entries around it must still count on and link (an entry
edited or removed breaks that; the newest one cut off leaves rows uncovered). An entry is made visible
before the futures of its batch resolve; its fdatasync follows in the background (SQLite,
see writer.py) or before the commit (an ``intent`` of the asynchronous stores). If the path
stops naming the file the writer appends to (deleted, replaced, truncated, written by
someone else), the writer says so at error level and appends to whatever the path names
now, continuing its counter: the gap is then visible to ``verify``.

Files of the previous formats (one record, or two alternating fixed-size slots, each
``{"seq", "hash", "mac", "check"}``) are read as one checkpoint, and the first writer to
open the store continues them as a log whose entry 1 links to their MAC.

Past ``RFQ_AUDIT_CHECKPOINT_ROTATE_BYTES`` the live file is sealed as ``<path>.<n>`` and
continued in a new one; a reader takes the segments and the live file as one log
(``checkpoint_files.py``). The judgement (what a log says about a database) lives in
``verify.py``; this module reads, checks and appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

from rfq_engine.store.checkpoint_files import (
    read_segments,
    replace_file,
    rotate_bytes_from_env,
    seal,
    write_all,
)
from rfq_engine.store.checkpoint_legacy import (
    Checkpoint,
    CheckpointError,
    compute_mac,
    read_legacy,
)

__all__ = [
    "ADOPT",
    "DONE",
    "INTENT",
    "KEY_ENV",
    "LEAD",
    "Checkpoint",
    "CheckpointError",
    "CheckpointLog",
    "Entry",
    "LogState",
    "Term",
    "compute_mac",
    "key_from_env",
    "make_entry",
    "parse_entry",
    "read_checkpoint",
    "read_log",
    "write_checkpoint",
]

log = logging.getLogger(__name__)

KEY_ENV: Final = "RFQ_AUDIT_CHECKPOINT_KEY"
INTENT: Final = "intent"
DONE: Final = "done"
ADOPT: Final = "adopt"
LEAD: Final = "lead"
_KINDS: Final = frozenset({INTENT, DONE, ADOPT, LEAD})


class Term(Protocol):
    """Who writes under ``rfq serve --ha`` (leader.Candidate): its name, and its epoch in
    ``leader`` once elected."""

    @property
    def name(self) -> str: ...

    @property
    def leader(self) -> Any: ...
@dataclass(frozen=True, slots=True)
class Entry:
    n: int
    kind: str
    seq: int
    hash: str
    prev: str
    mac: str
    check: str
    by: str = ""
    engine: str = ""
    """Under ``rfq serve --ha``: the engine that wrote the entry ("" for a single writer)."""
    epoch: int = 0
    """Under ``rfq serve --ha``: its leader epoch when it wrote the entry (0: none)."""

    @property
    def link(self) -> str:
        """What entry ``n + 1`` names as its ``prev``."""
        return self.mac or self.check

    @property
    def head(self) -> Checkpoint:
        return Checkpoint(self.seq, self.hash, self.mac)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"n": self.n, "kind": self.kind, "seq": self.seq,
                                "hash": self.hash, "prev": self.prev, "mac": self.mac,
                                "check": self.check}
        if self.by:
            data["by"] = self.by
        if self.engine:
            data["engine"], data["epoch"] = self.engine, self.epoch
        return data

    def line(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def key_from_env() -> bytes | None:
    value = os.environ.get(KEY_ENV)
    return value.encode() if value else None


def _fields(n: int, kind: str, seq: int, hash_: str, prev: str, by: str, engine: str = "",
            epoch: int = 0) -> str:
    fields = f"{n}:{kind}:{seq}:{hash_}:{prev}" + (f":{by}" if by else "")
    return fields + (f"|{engine}|{epoch}" if engine else "")


def _entry_fields(entry: Entry) -> str:
    return _fields(entry.n, entry.kind, entry.seq, entry.hash, entry.prev, entry.by,
                   entry.engine, entry.epoch)


def make_entry(key: bytes | None, n: int, kind: str, seq: int, hash_: str, prev: str,
               by: str = "", engine: str = "", epoch: int = 0) -> Entry:
    fields = _fields(n, kind, seq, hash_, prev, by, engine, epoch)
    mac = hmac.new(key, fields.encode(), hashlib.sha256).hexdigest() if key else ""
    check = hashlib.sha256(f"{fields}:{mac}".encode()).hexdigest()
    return Entry(n, kind, seq, hash_, prev, mac, check, by, engine, epoch)


def entry_intact(entry: Entry) -> bool:
    fields = _entry_fields(entry)
    return hmac.compare_digest(entry.check, hashlib.sha256(f"{fields}:{entry.mac}".encode()).hexdigest())


def entry_mac_ok(entry: Entry, key: bytes | None) -> bool:
    """True without a key (nothing to check), else whether the MAC verifies."""
    if key is None:
        return True
    fields = _entry_fields(entry)
    return hmac.compare_digest(entry.mac, hmac.new(key, fields.encode(), hashlib.sha256).hexdigest())


def parse_entry(raw: bytes | str) -> Entry:
    """One line of a checkpoint log (or of a witness file); CheckpointError if it is not a
    whole, intact entry."""
    try:
        data = json.loads(raw)
        entry = Entry(data["n"], data["kind"], data["seq"], data["hash"], data["prev"],
                      data["mac"], data["check"], data.get("by", ""), data.get("engine", ""),
                      data.get("epoch", 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError("not a checkpoint entry") from exc
    ints = (entry.n, entry.seq, entry.epoch)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints) or entry.n < 1:
        raise CheckpointError("a checkpoint entry's n and seq must be non-negative integers")
    if entry.kind not in _KINDS or not all(isinstance(v, str) for v in (
            entry.hash, entry.prev, entry.mac, entry.check, entry.by, entry.engine)):
        raise CheckpointError("a checkpoint entry has a bad kind or a non-string field")
    if not entry_intact(entry):
        raise CheckpointError("a checkpoint entry's check does not match it (torn or edited)")
    return entry


def _is_log(raw: bytes) -> bool:
    first = raw.split(b"\n", 1)[0]
    try:
        data = json.loads(first)
    except ValueError:
        return b'"n":' in first or b'"kind":' in first  # a log whose first line is damaged
    return isinstance(data, dict) and "n" in data


# --- reading a log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogState:
    """A checkpoint file as read: its entries (or the previous format's one checkpoint)."""

    entries: tuple[Entry, ...] = ()
    legacy: Checkpoint | None = None
    torn: bool = False
    """The final line is incomplete: a write in progress, or torn by a crash (ignored)."""
    problem: str | None = None
    """The log contradicts itself (entries removed, spliced, forged, rolled back)."""
    skipped: tuple[int, ...] = ()
    """Lines (1-based) that are not intact entries: torn writes ended by a newline, junk."""
    size: int = 0
    """Bytes up to the end of the last complete line."""

    @property
    def last(self) -> Entry | None:
        return self.entries[-1] if self.entries else None

    @property
    def before_last(self) -> Entry | None:
        return self.entries[-2] if len(self.entries) > 1 else None

    def find(self, n: int) -> Entry | None:
        if not self.entries:
            return None
        i = n - self.entries[0].n
        return self.entries[i] if 0 <= i < len(self.entries) else None


def parse_log(raw: bytes, path: str | os.PathLike[str], key: bytes | None) -> LogState:
    """The entries of a checkpoint file and the first thing wrong with them, if any."""
    if not raw.strip():
        return LogState()
    if not _is_log(raw):
        return LogState(legacy=read_legacy(raw, path))
    *lines, rest = raw.split(b"\n")
    entries: list[Entry] = []
    skipped: list[int] = []
    problem: str | None = None
    durable = -1
    for number, line in enumerate(lines, 1):
        try:
            entry = parse_entry(line)
        except CheckpointError:
            skipped.append(number)
            continue
        previous = entries[-1] if entries else None
        if previous is None and entry.n != 1:
            problem = (f"checkpoint log {path} starts at entry {entry.n}: entries 1..{entry.n - 1} "
                       "are gone (the file was deleted or cut at its start)")
        elif previous is not None and entry.n != previous.n + 1:
            problem = (f"checkpoint log {path}: entry {entry.n} follows entry {previous.n} "
                       "(entries were removed, or the log was spliced)")
        elif previous is not None and entry.prev != previous.link:
            problem = (f"checkpoint log {path}: entry {entry.n} does not link to entry "
                       f"{previous.n} (entries removed, reordered or forged)")
        elif not entry_mac_ok(entry, key):
            problem = (f"checkpoint {path}: MAC does not verify at entry {entry.n} "
                       f"(forged checkpoint or wrong {KEY_ENV})")
        elif entry.kind != INTENT and entry.seq < durable:
            problem = (f"checkpoint log {path}: entry {entry.n} records head seq {entry.seq} "
                       f"after an earlier head seq {durable} (the log was rolled back)")
        elif previous is not None and entry.epoch < previous.epoch:
            problem = (f"checkpoint log {path}: entry {entry.n} names leader epoch "
                       f"{entry.epoch} after epoch {previous.epoch} (entries forged or spliced)")
        if problem is not None:
            break
        if entry.kind != INTENT:
            durable = entry.seq
        entries.append(entry)
    return LogState(tuple(entries), torn=bool(rest.strip()), problem=problem,
                    skipped=tuple(skipped), size=len(raw) - len(rest))


def read_log(path: str | os.PathLike[str], key: bytes | None = None) -> LogState | None:
    """The checkpoint file at ``path``, or None when it does not exist. A file of the
    previous format that does not parse is read again (twice, a millisecond apart): a
    reader could race its in-place overwrite; a torn record on disk stays torn."""
    for attempt in range(3):
        files = read_segments(Path(path))  # the sealed segments (checkpoint_files.py), then it
        if files is None:
            return None
        sealed, live = files
        try:
            state = parse_log(sealed + live, path, key)
        except CheckpointError:
            if attempt == 2:
                raise
            time.sleep(0.001)
            continue
        return replace(state, size=max(0, state.size - len(sealed)))  # of the live file
    raise AssertionError("unreachable")


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint | None:
    """The newest head a checkpoint file names (its last entry), None if there is none."""
    state = read_log(path)
    if state is None:
        return None
    if state.legacy is not None:
        return state.legacy
    return None if state.last is None else state.last.head


def write_checkpoint(path: str | os.PathLike[str], seq: int, hash_: str, key: bytes | None) -> Checkpoint:
    """Start a new log at ``path`` (replacing the file atomically) whose one entry records
    ``(seq, hash)`` as the head."""
    entry = make_entry(key, 1, DONE, seq, hash_, "")
    replace_file(Path(path), entry.line())
    return entry.head


# --- the writer's side ---------------------------------------------------------------------


class CheckpointLog:
    """A checkpoint location plus its key. The writer ``resume``s it after reading it, then
    appends; file I/O of the async methods runs in a thread, off the event loop."""

    __slots__ = (
        "_fd", "_file_id", "_fresh", "_lock", "_next_n", "_prev", "_size", "_sync_again",
        "_sync_executor", "_sync_future", "key", "last_entry", "path", "rotate_bytes", "term",
    )

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self._fd: int | None = None  # the file appended to, kept open
        self._file_id = (0, 0)
        self._size = 0  # what the file holds as far as this writer knows
        self._lock = threading.Lock()
        self._next_n = 1
        self._prev = ""
        self._fresh = True  # the next append starts the file anew (none, empty or old format)
        self.last_entry: Entry | None = None
        self._sync_executor: ThreadPoolExecutor | None = None
        self._sync_future: Future[None] | None = None
        self._sync_again = False
        self.rotate_bytes = rotate_bytes_from_env()
        """Seal the live file past this size (0: never; checkpoint_files.py)."""
        self.term: Term | None = None
        """Set on taking the lead under ``rfq serve --ha`` (verify.check_before_writing):
        every entry then names the engine and its current epoch."""

    @property
    def authenticated(self) -> bool:
        return self.key is not None

    async def read(self) -> LogState | None:
        return await asyncio.to_thread(read_log, self.path, self.key)

    def mac_ok(self, cp: Checkpoint) -> bool:
        """The previous format's MAC: True when no key is configured (nothing to check)."""
        if self.key is None:
            return True
        return hmac.compare_digest(cp.mac, compute_mac(self.key, cp.seq, cp.hash))

    def resume(self, state: LogState | None) -> None:
        """Continue after ``state`` (what ``read`` returned at open): a log goes on from its
        last entry; a missing, empty or previous-format file is started anew."""
        with self._lock:
            self._close_fd()
            last = None if state is None else state.last
            if state is not None and last is not None:
                self._next_n, self._prev, self._fresh = last.n + 1, last.link, False
                self._continue(state)
            else:
                legacy = None if state is None else state.legacy
                self._next_n, self._fresh = 1, True
                self._prev = "" if legacy is None else (legacy.mac or legacy.hash)
            self.last_entry = last

    def _continue(self, state: LogState) -> None:
        """Open the log for appending after ``state``; a torn final line is removed, or
        ended with a newline where the file may only grow (``chattr +a``)."""
        self._open_fd(create=False)
        if self._fd is None:  # sealed by hand (renamed), or gone: the next append starts it
            self._fresh = True
            return
        size = os.fstat(self._fd).st_size
        if size > state.size:
            log.warning("audit checkpoint log %s: a torn final line (%d bytes, a write cut by "
                        "a crash) is set aside", self.path, size - state.size)
            try:
                os.truncate(self.path, state.size)
            except OSError:
                write_all(self._fd, b"\n")
        self._size = os.fstat(self._fd).st_size

    def intent_sync(self, seq: int, hash_: str, *, durable: bool = False) -> None:
        """Announce a batch ending at ``(seq, hash)`` before its commit (once: a retried
        batch is announced already)."""
        last = self.last_entry
        if last is None or (last.kind, last.seq, last.hash) != (INTENT, seq, hash_):
            self.append_sync(INTENT, seq, hash_, durable=durable)

    def done_sync(self, seq: int, hash_: str, *, durable: bool = False) -> Entry:
        """Record ``(seq, hash)`` as committed; returns the entry that says so."""
        last = self.last_entry
        if last is not None and last.kind == DONE and (last.seq, last.hash) == (seq, hash_):
            return last
        return self.append_sync(DONE, seq, hash_, durable=durable)

    async def intent(self, seq: int, hash_: str) -> None:
        await asyncio.to_thread(self.intent_sync, seq, hash_, durable=True)

    async def done(self, seq: int, hash_: str) -> Entry:
        return await asyncio.to_thread(self.done_sync, seq, hash_)

    def append_sync(self, kind: str, seq: int, hash_: str, *, durable: bool = False,
                    by: str = "") -> Entry:
        """Append one entry: visible to readers on return, durable too if ``durable``."""
        with self._lock:
            engine, epoch = self.writer_term()
            entry = make_entry(self.key, self._next_n, kind, seq, hash_, self._prev, by,
                               engine, epoch)
            data = entry.line()
            if self._fresh:
                replace_file(self.path, data)  # durable; continues an old-format file, if any
                self._fresh = False
                self._open_fd()
                self._size = len(data)
            else:
                fd = self._append_fd()
                write_all(fd, data)
                self._size += len(data)
                if durable:
                    os.fdatasync(fd)
            self._next_n, self._prev, self.last_entry = entry.n + 1, entry.link, entry
            if self.rotate_bytes and self._size >= self.rotate_bytes and kind != INTENT:
                return self._rotate(entry)
            return entry

    def _rotate(self, entry: Entry) -> Entry:
        """Seal the live file after ``entry`` (a durable head) and start the next one with
        a ``done`` entry for the same head; on failure (an append-only file) say so, once,
        and go on appending here. Under the lock."""
        fd = self._fd
        try:
            if fd is None:
                raise OSError("the live file is not open")
            os.fsync(fd)
            sealed = seal(self.path, entry.n)
        except OSError as exc:
            log.error("audit checkpoint log %s not rotated (%s): it keeps growing here", self.path, exc)
            self.rotate_bytes = 0
            return entry
        self._close_fd()
        engine, epoch = self.writer_term()
        head = make_entry(self.key, entry.n + 1, DONE, entry.seq, entry.hash, entry.link, "",
                          engine, epoch)
        replace_file(self.path, head.line())
        self._open_fd()
        self._size = len(head.line())
        self._next_n, self._prev, self.last_entry = head.n + 1, head.link, head
        log.info("audit checkpoint log %s: entries up to %d sealed in %s", self.path, entry.n,
                 sealed.name)
        return head

    def writer_term(self) -> tuple[str, int]:
        """(engine, epoch) for the next entry: ("", 0) for a single writer. The epoch is
        the term's current one (a lock taken again after its session died is epoch + 1);
        never lower than the last entry's (a deposed writer keeps its last)."""
        term = self.term
        if term is None:
            return "", 0
        epoch = int(getattr(term.leader, "epoch", 0) or 0)
        last = self.last_entry
        return term.name, max(epoch, last.epoch if last is not None else 0)

    def _append_fd(self) -> int:
        """The open file, if the path still names it as this writer left it; else what the
        path names now (said at error level: the gap in the counter shows in verify)."""
        fd = self._fd
        try:
            st = os.stat(self.path)
            ours = (st.st_dev, st.st_ino) == self._file_id and st.st_size == self._size
        except FileNotFoundError:
            ours, st = False, None
        if fd is not None and ours:
            return fd
        log.error("audit checkpoint log %s changed behind the writer's back (%s); appending "
                  "entry %d to what the path names now", self.path,
                  "missing" if st is None else f"{st.st_size} bytes, expected {self._size}",
                  self._next_n)
        self._close_fd()
        self._open_fd(create=True)
        if self._fd is None:
            raise OSError(f"cannot open checkpoint log {self.path}")
        self._size = os.fstat(self._fd).st_size
        return self._fd

    def _open_fd(self, *, create: bool = False) -> None:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError:
            if create:
                raise
            return  # written durably; the next append finds the file again
        st = os.fstat(fd)
        self._fd, self._file_id = fd, (st.st_dev, st.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def sync(self) -> None:
        """fdatasync what was appended (nothing to do if no file is open). Runs on a dup of
        the descriptor, outside the lock, so the next append need not wait."""
        with self._lock:
            if self._fd is None:
                return
            fd = os.dup(self._fd)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def request_sync(self, on_error: Callable[[OSError], None]) -> None:
        """``sync()`` soon, on this log's own thread, without involving any event loop.
        Coalesced: while one runs, any number of requests make exactly one more. A failure
        goes to ``on_error`` (on that thread)."""
        with self._lock:
            running = self._sync_future
            if running is not None and not running.done():
                self._sync_again = True
                return
            if self._sync_executor is None:
                self._sync_executor = ThreadPoolExecutor(1, thread_name_prefix="audit-checkpoint-sync")
            self._sync_again = False
            self._sync_future = self._sync_executor.submit(self._sync_until_quiet, on_error)

    def _sync_until_quiet(self, on_error: Callable[[OSError], None]) -> None:
        while True:
            try:
                self.sync()
            except OSError as exc:
                on_error(exc)
            with self._lock:
                if not self._sync_again:
                    return
                self._sync_again = False

    async def synced(self) -> None:
        """Until the background sync running now (if any) has finished."""
        running = self._sync_future
        if running is not None:
            await asyncio.wrap_future(running)

    def close(self) -> None:
        """Release the file (a later append reopens it) and the sync thread. Idempotent."""
        executor, self._sync_executor = self._sync_executor, None
        if executor is not None:
            executor.shutdown(wait=True)  # a pending background sync finishes first
        with self._lock:
            self._close_fd()
