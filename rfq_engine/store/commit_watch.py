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
  one line per commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from rfq_engine.store.batch import WriterStats

__all__ = ["SLOW_COMMIT_S", "CommitWatch"]

log = logging.getLogger("rfq_engine.store.writer")

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
