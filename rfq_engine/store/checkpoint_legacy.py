"""Checkpoint files of the previous formats, read as one checkpoint (checkpoint.py).

One record, or two alternating fixed-size slots, each ``{"seq", "hash", "mac", "check"}``:
``mac`` is HMAC-SHA256 of ``seq:hash`` with ``RFQ_AUDIT_CHECKPOINT_KEY`` ("" without),
``check`` SHA-256 of ``seq:hash:mac``. The first writer to open a store whose checkpoint is
one of these continues it as a log whose entry 1 links to its MAC. Also home of the two
types both formats share: ``Checkpoint`` (a head) and ``CheckpointError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Final

from rfq_engine.domain.errors import StoreFault

__all__ = ["LEGACY_RECORD", "Checkpoint", "CheckpointError", "compute_mac", "read_legacy"]

LEGACY_RECORD: Final = 512  # one slot of the previous two-slot format


class CheckpointError(StoreFault):
    """The checkpoint file exists but cannot be read as a checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A chain head named by the checkpoint: ``seq``, ``hash`` and its MAC ("" without key)."""

    seq: int
    hash: str
    mac: str


def compute_mac(key: bytes, seq: int, hash_: str) -> str:
    """The MAC of the previous one-record formats: HMAC-SHA256 of ``seq:hash``."""
    return hmac.new(key, f"{seq}:{hash_}".encode(), hashlib.sha256).hexdigest()


def _record(raw: bytes, path: str | os.PathLike[str]) -> Checkpoint:
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
    expected = hashlib.sha256(f"{seq}:{hash_}:{mac}".encode()).hexdigest()
    if check is not None and (not isinstance(check, str) or not hmac.compare_digest(check, expected)):
        raise CheckpointError(
            f"checkpoint {path}: checksum does not match its contents (torn or corrupted write)")
    return Checkpoint(seq, hash_, mac)


def read_legacy(raw: bytes, path: str | os.PathLike[str]) -> Checkpoint:
    """The one checkpoint a file of the previous formats holds (the newer slot of two)."""
    if len(raw) != 2 * LEGACY_RECORD:
        return _record(raw, path)
    found: list[Checkpoint] = []
    problems: list[str] = []
    for slot in (raw[:LEGACY_RECORD], raw[LEGACY_RECORD:]):
        try:
            found.append(_record(slot, path))
        except CheckpointError as exc:
            problems.append(str(exc))
    if not found:
        raise CheckpointError(f"checkpoint {path}: no slot is readable ({problems[0]})")
    return max(found, key=lambda c: c.seq)
