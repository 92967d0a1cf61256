"""A warning when one garbage collection holds the process for long.

A collection runs on whichever thread allocates, mostly the event loop's, and nothing
else in the process moves meanwhile: a full (generation 2) collection of a heap of
millions of objects takes seconds. ``rfq serve`` installs ``GcWatch`` beside its GC policy
(``cli/cmd_serve.py``); a collection over ``threshold_s`` is logged with its generation,
its duration and what it found, so a stall of the whole server can be told from a slow
disk or a slow store (docs/performance.md, "Fourth pass").
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, Final

__all__ = ["SLOW_COLLECTION_S", "GcWatch"]

log = logging.getLogger(__name__)

SLOW_COLLECTION_S: Final = 0.25


class GcWatch:
    """Times every collection (``gc.callbacks``); ``close`` removes the hook."""

    def __init__(self, threshold_s: float = SLOW_COLLECTION_S) -> None:
        self.threshold_s = threshold_s
        self.slow = 0
        self.longest_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest_s = max(self.longest_s, took)
        if took > self.threshold_s:
            self.slow += 1
            log.warning("garbage collection of generation %s took %.3f s (%s collected, %s "
                        "uncollectable); the whole process waited for it",
                        info.get("generation"), took, info.get("collected"),
                        info.get("uncollectable"))
