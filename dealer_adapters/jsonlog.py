"""An fsynced JSON-lines file: the durable intent/outcome logs of the dealer adapters
(the simulated desks' ledger, the REST and ccxt order journals).

``lines()`` returns the complete lines; a torn last line (no newline: a crash cut the
write short, so whatever it recorded never happened outside) is cut from the file so
later appends stay parseable. ``append()`` writes one line and fsyncs it (and the
directory when it created the file), so it returns only once the line is durable.
Both block: call them through ``asyncio.to_thread`` on a hot path.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["JsonLog", "dumps_line"]


def dumps_line(record: dict[str, Any]) -> str:
    """One compact, key-sorted JSON line (without the newline)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class JsonLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def lines(self) -> Iterator[tuple[int, str]]:
        """``(line number, text)`` of every complete, non-blank line; nothing if no file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return iter(())
        complete, newline, torn = data.rpartition(b"\n")
        if torn:
            with self._lock, self.path.open("r+b") as handle:
                handle.truncate(len(complete) + len(newline))
                handle.flush()
                os.fsync(handle.fileno())
        text = complete.decode("utf-8").split("\n") if complete else []
        return ((n, line) for n, line in enumerate(text, start=1) if line.strip())

    def append(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
