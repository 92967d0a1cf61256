"""The sequence numbers of one FIX session, in a small file fsynced on every change.

``<state_dir>/<dealer>.session.json`` holds ``{"v": 1, "session": ..., "next_out": N,
"next_in": M}``: the MsgSeqNum our next message gets, and the one we expect next from the
desk. A change is written to a temporary file, fsynced, renamed over the old one, and the
directory fsynced, so after a crash the file is the old numbers or the new ones, never a
torn mix. ``next_out`` is stored before the message that uses it leaves (a crash after
the store and before the send leaves a gap the desk asks for and we gap-fill); ``next_in``
after the message it counts was handled.

A file for another session (other CompIDs) is an error: a desk's session is never
resumed with another desk's numbers.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

__all__ = ["SeqNumbers", "SeqStore"]


class SeqNumbers:
    __slots__ = ("next_in", "next_out")

    def __init__(self, next_out: int = 1, next_in: int = 1) -> None:
        self.next_out = next_out
        self.next_in = next_in

    def __repr__(self) -> str:
        return f"SeqNumbers(next_out={self.next_out}, next_in={self.next_in})"


class SeqStore:
    """The file of one session; ``load`` once, then ``save`` (blocking: write + fsync)."""

    def __init__(self, path: Path, session: str) -> None:
        self.path = path
        self.session = session
        self._lock = threading.Lock()
        self._stored = SeqNumbers(0, 0)

    def load(self) -> SeqNumbers:
        """The stored numbers (1 and 1 when there is no file yet)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SeqNumbers()
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable FIX session file: {exc}") from exc
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError(f"{self.path}: not a version 1 FIX session file")
        if data.get("session") != self.session:
            raise ValueError(f"{self.path}: holds session {data.get('session')!r}, not {self.session!r}")
        next_out, next_in = data.get("next_out"), data.get("next_in")
        if not (isinstance(next_out, int) and isinstance(next_in, int) and next_out >= 1 and next_in >= 1):
            raise ValueError(f"{self.path}: bad sequence numbers {next_out!r}, {next_in!r}")
        self._stored = SeqNumbers(next_out, next_in)
        return SeqNumbers(next_out, next_in)

    def save(self, numbers: SeqNumbers, *, reset: bool = False) -> None:
        """Make ``numbers`` durable; returns once they are on disk. Blocks.

        Numbers only grow: saves from several threads (an outbound message, an inbound one)
        store the highest of each seen, so a late write never takes a number back. ``reset``
        (a logon with ResetSeqNumFlag) stores ``numbers`` as they are.
        """
        with self._lock:
            if reset:
                self._stored = SeqNumbers(numbers.next_out, numbers.next_in)
            else:
                self._stored = SeqNumbers(max(self._stored.next_out, numbers.next_out),
                                          max(self._stored.next_in, numbers.next_in))
            self._write(self._stored)

    def _write(self, numbers: SeqNumbers) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"v": 1, "session": self.session, "next_out": numbers.next_out,
                           "next_in": numbers.next_in}, sort_keys=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
