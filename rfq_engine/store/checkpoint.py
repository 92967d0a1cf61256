"""The chain-head checkpoint: the one thing that catches deletion of the newest events.

Why it exists. The hash chain proves that every stored row is consistent with the row
before it. Deleting the *newest* rows leaves a shorter chain that is still perfectly
consistent, and someone able to edit the database can also recompute every hash after an
edit ("rewrite the chain"). Neither can be seen from inside the database. So after each
committed batch the writer records the chain head (``seq`` and ``hash`` of the newest
event) in a small JSON file *outside* the database::

    {"seq": 1234, "hash": "<64 hex>", "mac": "<hmac-sha256 hex or empty>", "check": "<sha256 hex>"}

padded with spaces to a fixed ``RECORD_SIZE`` bytes. ``check`` is SHA-256 over
``"seq:hash:mac"`` (no key): it makes a torn or partial overwrite detectable. The file
holds two such slots and in-place writes alternate between them, so a write torn by a
crash or power loss can only damage the slot being written: the reader takes the valid
slot with the highest ``seq`` (at worst the previous head, which reads as "database ahead
of the checkpoint", a note). Only when no slot checks is the file unreadable
(``CheckpointError``). Files of the previous format (one unpadded record) are still read;
they were only ever replaced atomically.

and ``verify`` compares the database against it:

- database's newest seq < checkpoint seq  -> "events after seq N were deleted",
  ``first_bad_seq`` = N + 1;
- hash stored at the checkpoint's seq != checkpoint hash -> the chain was rewritten
  (at or before that seq; the checkpoint cannot tell where, so that seq is reported);
- database ahead of the checkpoint -> fine (a writer is between commit and checkpoint, or
  crashed there), reported as a note.

The file is written after the commit and before the appenders' futures resolve, so every
acknowledged event is covered. The first write of a ``CheckpointFile`` creates the record
atomically (temp file, fsync, ``os.replace``, fsync of the directory) and keeps it open;
later writes overwrite the fixed-size record in place (one ``pwrite``, then ``fdatasync``:
no rename, no directory fsync). If the path no longer names the open file (deleted or
replaced behind the writer's back), the next write goes the atomic way again.

The SQLite writer splits the in-place write in two (``write_sync(..., durable=False)`` then
``sync()``): the ``pwrite`` happens in the commit's own thread hop, before the futures
resolve, so every reader of the file (``verify``, a tamperer) sees the new head at once;
the ``fdatasync`` follows in the background, off the decision's latency. The only thing
this gives up is the checkpoint's durability across a *power loss* in that fraction of a
millisecond: afterwards the checkpoint may name an older head than the (fsynced) database,
which is the state a crash between commit and checkpoint always could leave, and reads as
a note ("events after checkpoint seq N are not covered yet"), never as a false alarm.
Each slot is one 512-byte sector, so a write torn by power loss leaves each slot whole,
old or new. A writer
opening an empty chain writes ``seq 0`` at once, so from then on a
missing file is itself a finding (a verifier running beside a brand-new store must not
mistake "not written yet" for "deleted").

``mac`` is HMAC-SHA256 over ``"seq:hash"`` keyed by the environment variable
``RFQ_AUDIT_CHECKPOINT_KEY``. Without a key the checkpoint still catches accidents and
careless tampering, but whoever can write the database and the file can forge both;
``verify`` says so in its notes. With a key, a believable checkpoint needs the key.

For SQLite the default location is ``<dbfile>.head``; PostgreSQL and the memory store have
no natural place, so the path is passed explicitly (None: no checkpoint, and ``verify``
notes that deletion of the newest events cannot be detected). Keep it on a different
trust boundary than the database when you can (another host, append-only storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rfq_engine.domain.errors import StoreFault

__all__ = [
    "KEY_ENV",
    "RECORD_SIZE",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFile",
    "compute_mac",
    "key_from_env",
    "read_checkpoint",
    "write_checkpoint",
]

KEY_ENV = "RFQ_AUDIT_CHECKPOINT_KEY"
RECORD_SIZE = 512  # bytes of every checkpoint written by this version (JSON + space padding)


class CheckpointError(StoreFault):
    """The checkpoint file exists but cannot be read as a checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    mac: str


def key_from_env() -> bytes | None:
    value = os.environ.get(KEY_ENV)
    return value.encode() if value else None


def compute_mac(key: bytes, seq: int, hash_: str) -> str:
    return hmac.new(key, f"{seq}:{hash_}".encode(), hashlib.sha256).hexdigest()


def _check(seq: int, hash_: str, mac: str) -> str:
    return hashlib.sha256(f"{seq}:{hash_}:{mac}".encode()).hexdigest()


def encode_record(seq: int, hash_: str, key: bytes | None) -> tuple[bytes, Checkpoint]:
    """The fixed-size on-disk record for a checkpoint."""
    mac = compute_mac(key, seq, hash_) if key else ""
    text = json.dumps({"seq": seq, "hash": hash_, "mac": mac, "check": _check(seq, hash_, mac)})
    data = text.encode()
    if len(data) >= RECORD_SIZE:
        raise ValueError(f"checkpoint record too long ({len(data)} bytes)")
    return data + b" " * (RECORD_SIZE - 1 - len(data)) + b"\n", Checkpoint(seq, hash_, mac)


def _replace(target: Path, data: bytes) -> None:
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _write_all(fd: int, data: bytes, offset: int = 0) -> None:
    written = os.pwrite(fd, data, offset)
    if written != len(data):
        raise OSError(f"short checkpoint write ({written} of {len(data)} bytes)")


def write_checkpoint(path: str | os.PathLike[str], seq: int, hash_: str, key: bytes | None) -> Checkpoint:
    """Atomically replace the checkpoint: a reader sees the old file or the new one, whole."""
    data, cp = encode_record(seq, hash_, key)
    _replace(Path(path), data + data)  # both slots
    return cp


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint | None:
    """The checkpoint, or None when the file does not exist.

    A record that does not parse or check is read again (twice, a millisecond apart)
    before it is declared unreadable: a reader racing an in-place overwrite may see part of
    it, a torn record on disk stays torn."""
    for attempt in range(3):
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _parse(raw, path)
        except CheckpointError:
            if attempt == 2:
                raise
            time.sleep(0.001)
    raise AssertionError("unreachable")


def _parse(raw: bytes, path: str | os.PathLike[str]) -> Checkpoint:
    if len(raw) == 2 * RECORD_SIZE:  # two slots: the newest one that checks
        found: list[Checkpoint] = []
        problems: list[str] = []
        for slot in (raw[:RECORD_SIZE], raw[RECORD_SIZE:]):
            try:
                found.append(_parse_record(slot, path))
            except CheckpointError as exc:
                problems.append(str(exc))
        if not found:
            raise CheckpointError(f"checkpoint {path}: no slot is readable ({problems[0]})")
        return max(found, key=lambda c: c.seq)
    return _parse_record(raw, path)


def _parse_record(raw: bytes, path: str | os.PathLike[str]) -> Checkpoint:
    try:
        data = json.loads(raw.decode("utf-8"))
        seq, hash_, mac = data["seq"], data["hash"], data.get("mac", "")
        check = data.get("check")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} is not valid JSON of seq/hash/mac") from exc
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise CheckpointError(f"checkpoint {path}: seq must be a non-negative integer")
    if not isinstance(hash_, str) or not isinstance(mac, str):
        raise CheckpointError(f"checkpoint {path}: hash and mac must be strings")
    if check is not None and (
        not isinstance(check, str) or not hmac.compare_digest(check, _check(seq, hash_, mac))
    ):
        raise CheckpointError(
            f"checkpoint {path}: checksum does not match its contents (torn or corrupted write)"
        )
    return Checkpoint(seq, hash_, mac)


class CheckpointFile:
    """A checkpoint location plus its key; file I/O runs in a thread, off the event loop."""

    __slots__ = (
        "_fd", "_file_id", "_lock", "_slot", "_sync_again", "_sync_executor", "_sync_future",
        "key", "path",
    )

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self._fd: int | None = None  # the record written last, kept open for in-place writes
        self._file_id = (0, 0)  # (st_dev, st_ino) of _fd
        self._slot = 0  # the slot the next in-place write goes to (they alternate)
        self._lock = threading.Lock()
        self._sync_executor: ThreadPoolExecutor | None = None  # request_sync's own thread
        self._sync_future: Future[None] | None = None  # the running or last background sync
        self._sync_again = False

    @property
    def authenticated(self) -> bool:
        return self.key is not None

    async def write(self, seq: int, hash_: str) -> Checkpoint:
        return await asyncio.to_thread(self.write_sync, seq, hash_)

    def write_sync(self, seq: int, hash_: str, *, durable: bool = True) -> Checkpoint:
        """Visible to readers on return, and durable too unless ``durable=False`` (then
        ``sync()`` makes it so). In place (pwrite, fdatasync) while the path still names
        the record this object wrote; otherwise (first write, file deleted or replaced, an
        earlier error) atomically by ``os.replace``, which is always durable."""
        data, cp = encode_record(seq, hash_, self.key)
        with self._lock:
            fd = self._fd
            if fd is not None and not self._still_ours():
                self._close_fd()
                fd = None
            if fd is None:
                _replace(self.path, data + data)  # both slots hold this head
                self._open_fd()
                self._slot = 0
                return cp
            try:
                _write_all(fd, data, self._slot * RECORD_SIZE)
                if durable:
                    os.fdatasync(fd)
                self._slot ^= 1  # a torn next write cannot touch the slot just written
            except OSError:
                self._close_fd()  # the next write starts over with an atomic replace
                raise
            return cp

    def sync(self) -> None:
        """fdatasync the record written last (nothing to do if none is open). Runs on a dup
        of the descriptor, outside the lock, so the next ``write_sync`` need not wait."""
        with self._lock:
            if self._fd is None:
                return
            fd = os.dup(self._fd)
        try:
            os.fdatasync(fd)
        except OSError:
            with self._lock:
                self._close_fd()  # the next write starts over with an atomic replace
            raise
        finally:
            os.close(fd)

    def request_sync(self, on_error: Callable[[OSError], None]) -> None:
        """``sync()`` soon, on this file's own thread, without involving any event loop.
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

    def _still_ours(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._file_id and st.st_size == 2 * RECORD_SIZE

    def _open_fd(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return  # the record is durable; the next write replaces it again
        st = os.fstat(fd)
        self._fd, self._file_id = fd, (st.st_dev, st.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Release the open record (a later write reopens it) and the sync thread. Idempotent."""
        executor, self._sync_executor = self._sync_executor, None
        if executor is not None:
            executor.shutdown(wait=True)  # a pending background sync finishes first
        with self._lock:
            self._close_fd()

    async def read(self) -> Checkpoint | None:
        return await asyncio.to_thread(read_checkpoint, self.path)

    def mac_ok(self, cp: Checkpoint) -> bool:
        """True when no key is configured (nothing to check) or the MAC verifies."""
        if self.key is None:
            return True
        return hmac.compare_digest(cp.mac, compute_mac(self.key, cp.seq, cp.hash))
