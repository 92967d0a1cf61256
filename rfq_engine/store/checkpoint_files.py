"""The checkpoint log's files: atomic replacement, appends, and rotation into sealed segments.

The log grows by about 400 bytes per committed batch. When the live file passes
``RFQ_AUDIT_CHECKPOINT_ROTATE_BYTES`` (default 64 MiB; 0: never), the writer seals it right
after a ``done`` (or ``lead``/``adopt``) entry: the file is fsynced and renamed to
``<path>.<n>``, ``n`` its last entry's counter in twelve digits, and a new live file starts
at ``<path>`` with a ``done`` entry for the same head, entry ``n + 1`` linking to entry
``n``. So the sealed segments and the live file are one chain: a reader
(``checkpoint.read_log``) reads them oldest first, and removing, editing or reordering a
segment breaks the counter or the links as it would inside one file. Keep every segment
beside the live file (archive copies elsewhere if you like; ``verify`` needs them all, as
it needs entry 1). A file with the append-only attribute cannot be renamed: rotation then
fails, is logged at error level and is not tried again by that writer (rotate such a log
by hand, with no engine running: ``mv`` it to its segment name, then start the engine,
which continues the chain in a new live file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_ROTATE_BYTES", "ROTATE_ENV", "fsync_dir", "read_segments", "replace_file",
    "rotate_bytes_from_env", "seal", "sealed_segments", "write_all",
]

ROTATE_ENV: Final = "RFQ_AUDIT_CHECKPOINT_ROTATE_BYTES"
DEFAULT_ROTATE_BYTES: Final = 64 * 1024 * 1024
_SEGMENT: Final = re.compile(r"\.(\d{12})$")


def rotate_bytes_from_env() -> int:
    """The live file's size that makes the writer seal it (0: never)."""
    raw = os.environ.get(ROTATE_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_ROTATE_BYTES
    except ValueError as exc:
        raise ValueError(f"{ROTATE_ENV} must be a whole number of bytes, not {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{ROTATE_ENV} must be >= 0")
    return value


def sealed_segments(path: Path) -> list[Path]:
    """The sealed segments of the log at ``path``, oldest first."""
    found = [p for p in path.parent.glob(f"{path.name}.*")
             if _SEGMENT.search(p.name[len(path.name):])]
    return sorted(found, key=lambda p: p.name)


def read_segments(path: Path) -> tuple[bytes, bytes] | None:
    """(every sealed segment's bytes, oldest first, concatenated; the live file's bytes),
    consistent with one another (read again if a rotation happened meanwhile); None when
    there is neither a live file nor a segment."""
    for _ in range(5):
        before = sealed_segments(path)
        sealed = b"".join(p.read_bytes() for p in before)
        try:
            live = path.read_bytes()
        except FileNotFoundError:
            live = None
        if sealed_segments(path) == before:
            if live is None and not before:
                return None
            return sealed, live or b""
    raise OSError(f"checkpoint log {path} kept rotating while it was read")


def seal(path: Path, last_n: int) -> Path:
    """Rename the live file to its segment name (durably); returns the segment's path."""
    target = path.with_name(f"{path.name}.{last_n:012d}")
    if target.exists():
        raise FileExistsError(f"checkpoint segment {target} exists already")
    os.rename(path, target)
    fsync_dir(path.parent)
    return target


def replace_file(target: Path, data: bytes) -> None:
    """Atomically: a reader sees the old file or the new one, whole."""
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short checkpoint write ({written} of {len(data)} bytes)")


def fsync_dir(directory: Path) -> None:
    """Make a new name durable; best effort where directories cannot be opened."""
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
