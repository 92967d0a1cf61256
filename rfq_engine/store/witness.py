"""Chain heads published to a witness: a file outside the operator's reach.

The checkpoint log catches a database changed behind the writer's back, but whoever can
write both the database and the checkpoint log (root on the engine's host) can roll both
back to an earlier state together: a consistent prefix, genuine MACs and all. Only a copy
of a later head kept where that person cannot reach shows it. The writer therefore
appends its newest *done* checkpoint entry to ``[store] witness_path`` at most once per
``interval_s`` (and once more on close), in the background, as a JSON line (the entry
and ``at``, the time it was published). Point the path at storage another party controls:
a directory exported read-write-append by a compliance host, a mail or log shipper's
spool, a write-once bucket's mount. ``rfq audit verify --witness FILE`` (or a configured
``witness_path``) then checks the database and the checkpoint log against every entry the
witness holds (``verify.py``). A publication that fails is logged at error level and
retried with the next head; it never holds up a commit.

Under ``rfq serve --ha`` both engines publish to the same witness (a file both can append
to, on storage neither operator controls), their entries naming the engine and its epoch;
an engine taking the lead publishes its ``lead`` entry (the head it adopted) at once,
before it trades (``publish``). ``verify`` accepts heads of every epoch and still catches a
database rolled back below any of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from rfq_engine.domain import format_ts, utc_now
from rfq_engine.store.checkpoint import CheckpointError, Entry, parse_entry

__all__ = ["Witness", "publish", "read_witness"]

log = logging.getLogger(__name__)


def read_witness(path: str | os.PathLike[str]) -> list[Entry]:
    """The entries a witness file holds, in file order. A final line without its newline
    (a publication torn by a crash) is skipped; any other bad line is a CheckpointError;
    a missing file raises FileNotFoundError."""
    raw = Path(path).read_bytes()  # FileNotFoundError: nothing was published yet
    *lines, _torn = raw.split(b"\n")
    entries: list[Entry] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append(parse_entry(line))
        except CheckpointError as exc:
            raise CheckpointError(f"witness {path}, line {number}: {exc}") from exc
    return entries


def publish(path: str | os.PathLike[str], entry: Entry) -> None:
    """Append ``entry`` (and the time) to the witness at ``path`` as one line, durably."""
    record = {**entry.to_dict(), "at": format_ts(utc_now())}
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to the witness {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


class Witness:
    """Publishes the writer's newest done entry to ``path``, rate-limited, off the loop."""

    def __init__(self, path: str | os.PathLike[str], *, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.published = 0
        self.errors = 0
        self._latest: Entry | None = None
        self._sent: Entry | None = None
        self._last_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def offer(self, entry: Entry) -> None:
        """The newest durable head (on the event loop); published within ``interval_s``."""
        self._latest = entry
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_at + self.interval_s - loop.time())
        self._timer = loop.call_later(delay, self._publish_now)

    def _publish_now(self) -> None:
        self._timer = None
        entry = self._latest
        if entry is None or entry is self._sent:
            return
        if self._task is not None and not self._task.done():
            self._schedule()  # one publication at a time; this head goes next
            return
        self._last_at = asyncio.get_running_loop().time()
        self._task = asyncio.get_running_loop().create_task(self._publish(entry))

    async def _publish(self, entry: Entry) -> None:
        try:
            await asyncio.to_thread(publish, self.path, entry)
        except OSError as exc:
            self.errors += 1
            log.error("audit witness %s not written (head seq %d): %s", self.path, entry.seq, exc)
            return
        self._sent = entry
        self.published += 1
        if self._latest is not entry:
            self._schedule()  # a newer head arrived meanwhile

    async def close(self) -> None:
        """Publish the newest head now if it has not been yet, and stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.shield(self._task)
        latest = self._latest
        if latest is not None and latest is not self._sent:
            await self._publish(latest)
