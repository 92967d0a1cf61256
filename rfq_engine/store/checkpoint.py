"""The chain-head checkpoint: the one thing that catches deletion of the newest events.

Why it exists. The hash chain proves that every stored row is consistent with the row
before it. Deleting the *newest* rows leaves a shorter chain that is still perfectly
consistent, and someone able to edit the database can also recompute every hash after an
edit ("rewrite the chain"). Neither can be seen from inside the database. So after each
committed batch the writer records the chain head (``seq`` and ``hash`` of the newest
event) in a small JSON file *outside* the database::

    {"seq": 1234, "hash": "<64 hex>", "mac": "<hmac-sha256 hex or empty>"}

and ``verify`` compares the database against it:

- database's newest seq < checkpoint seq  -> "events after seq N were deleted",
  ``first_bad_seq`` = N + 1;
- hash stored at the checkpoint's seq != checkpoint hash -> the chain was rewritten
  (at or before that seq; the checkpoint cannot tell where, so that seq is reported);
- database ahead of the checkpoint -> fine (a writer is between commit and checkpoint, or
  crashed there), reported as a note.

The file is written atomically (temp file, fsync, ``os.replace``, fsync of the directory)
after the commit and before the appenders' futures resolve, so every acknowledged event
is covered. A writer opening an empty chain writes ``seq 0`` at once, so from then on a
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
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KEY_ENV",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFile",
    "compute_mac",
    "key_from_env",
    "read_checkpoint",
    "write_checkpoint",
]

KEY_ENV = "RFQ_AUDIT_CHECKPOINT_KEY"


class CheckpointError(Exception):
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


def write_checkpoint(path: str | os.PathLike[str], seq: int, hash_: str, key: bytes | None) -> Checkpoint:
    """Atomically replace the checkpoint: a reader sees the old file or the new one, whole."""
    target = Path(path)
    mac = compute_mac(key, seq, hash_) if key else ""
    data = json.dumps({"seq": seq, "hash": hash_, "mac": mac}).encode()
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return Checkpoint(seq, hash_, mac)


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
    """The checkpoint, or None when the file does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        seq, hash_, mac = data["seq"], data["hash"], data.get("mac", "")
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is not valid JSON of seq/hash/mac") from exc
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise CheckpointError(f"checkpoint {path}: seq must be a non-negative integer")
    if not isinstance(hash_, str) or not isinstance(mac, str):
        raise CheckpointError(f"checkpoint {path}: hash and mac must be strings")
    return Checkpoint(seq, hash_, mac)


class CheckpointFile:
    """A checkpoint location plus its key; file I/O runs in a thread, off the event loop."""

    __slots__ = ("key", "path")

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.path = Path(path)
        self.key = key

    @property
    def authenticated(self) -> bool:
        return self.key is not None

    async def write(self, seq: int, hash_: str) -> Checkpoint:
        return await asyncio.to_thread(write_checkpoint, self.path, seq, hash_, self.key)

    async def read(self) -> Checkpoint | None:
        return await asyncio.to_thread(read_checkpoint, self.path)

    def mac_ok(self, cp: Checkpoint) -> bool:
        """True when no key is configured (nothing to check) or the MAC verifies."""
        if self.key is None:
            return True
        return hmac.compare_digest(cp.mac, compute_mac(self.key, cp.seq, cp.hash))
