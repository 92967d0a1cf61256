"""How long the audit store takes to make a batch durable, and a warning when it is slow.

Every decision waits for its commit (write-ahead): a store whose fsync takes a second
holds every award a second, and quotes age meanwhile. It is not an outage (nothing
fails, so the kill switch stays off), so it must be visible otherwise. The writer times
each batch from the start of its commit to its events being durable (retries included)
and reports it here:

- ``WriterStats.slow_commits`` counts the batches over ``threshold_s``, and
  ``WriterStats.longest_commit_s`` is the longest seen (``/metrics`` shows both);
- the first slow batch logs a warning at once, later ones at most every ``every_s``,
  with how many were slow since the last line: the log says the store is slow without
  one line per commit;
- a batch still not durable after ``STACKS_AFTER_S`` has every thread's stack written to
  stderr (``faulthandler``), once per stalled batch and at most every ``every_s``: where a
  stall is spent (the writer's thread in ``fsync``, in a checkpoint, in the projection, or
  waiting for the GIL) is then in the log, not a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import sys
import time
from collections.abc import Callable
from typing import Final

from rfq_engine.store.batch import WriterStats

__all__ = ["SLOW_COMMIT_S", "CommitWatch"]

log = logging.getLogger("rfq_engine.store.writer")

STACKS_AFTER_S: Final = 5.0
"""A batch not durable after this long: the threads' stacks go to stderr."""

SLOW_COMMIT_S: Final = 0.5
"""A batch slower than this to become durable is slow: about a hundred times what a
SQLite FULL or PostgreSQL commit takes on a healthy local disk."""


class CommitWatch:
    """Counts slow commits and says so in the log, rate-limited."""

    def __init__(self, threshold_s: float = SLOW_COMMIT_S, *, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold_s = threshold_s
        self.every_s = every_s
        self._clock = clock
        self._unreported = 0
        self._last_line = float("-inf")
        self._last_stacks = float("-inf")

    def arm(self) -> asyncio.TimerHandle:
        """A timer that writes every thread's stack if the commit starting now is still
        running ``STACKS_AFTER_S`` from now; cancel it when the commit ends."""
        return asyncio.get_running_loop().call_later(STACKS_AFTER_S, self._stacks)

    def _stacks(self) -> None:
        now = self._clock()
        if now - self._last_stacks < self.every_s:
            return
        self._last_stacks = now
        log.warning("audit store stalled: a commit has run for %.0f s; the threads' stacks "
                    "follow on stderr", STACKS_AFTER_S)
        # no usable stderr (closed, no file descriptor): the warning stands on its own
        with contextlib.suppress(OSError, ValueError, AttributeError):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

    def observe(self, seconds: float, events: int, stats: WriterStats) -> None:
        """One batch of ``events`` took ``seconds`` to become durable."""
        stats.longest_commit_s = max(stats.longest_commit_s, seconds)
        if seconds <= self.threshold_s:
            return
        stats.slow_commits += 1
        self._unreported += 1
        now = self._clock()
        if now - self._last_line < self.every_s:
            return
        log.warning("audit store slow: a commit of %d events took %.3f s (%d commits over "
                    "%.3g s since the last warning, %d in all; the longest %.3f s); every "
                    "decision waits for its commit (runbooks/store-down.md)",
                    events, seconds, self._unreported, self.threshold_s, stats.slow_commits,
                    stats.longest_commit_s)
        self._unreported = 0
        self._last_line = now
