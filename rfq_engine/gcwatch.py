"""Stalls of the whole process, told apart: a long garbage collection, a blocked loop.

A collection runs on whichever thread allocates, mostly the event loop's, and nothing
else in the process moves meanwhile: a full (generation 2) collection of a heap of
millions of objects takes seconds. ``rfq serve`` installs ``GcWatch`` beside its GC policy
(``cli/cmd_serve.py``); a collection over ``threshold_s`` is logged with its generation,
its duration and what it found, so a stall of the whole server can be told from a slow
disk or a slow store (docs/performance.md, "Fourth pass"). ``LoopWatch`` writes every
thread's stack to stderr while the event loop is blocked for ``LOOP_STALL_S``.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import time
from typing import Any, Final

__all__ = ["LOOP_STALL_S", "SLOW_COLLECTION_S", "GcWatch", "LoopWatch"]

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


LOOP_STALL_S: Final = 5.0


class LoopWatch:
    """Every thread's stack on stderr, taken *while* the event loop is blocked.

    A timer on the loop re-arms ``faulthandler.dump_traceback_later`` every second; if the
    loop does not get back to it within ``stall_s``, faulthandler's own C thread writes
    every thread's stack, the loop's blocking call included (a stack taken by the loop
    itself, after the stall, shows only that it is free again). ``close`` disarms it."""

    def __init__(self, stall_s: float = LOOP_STALL_S, every_s: float = 1.0) -> None:
        import asyncio

        self.stall_s, self.every_s = stall_s, every_s
        self._loop = asyncio.get_running_loop()
        self._handle: Any = None
        self._rearm()

    def _rearm(self) -> None:
        try:
            faulthandler.dump_traceback_later(self.stall_s, exit=False)
        except (OSError, ValueError, RuntimeError):  # no usable stderr: no watch
            return
        self._handle = self._loop.call_later(self.every_s, self._rearm)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        faulthandler.cancel_dump_traceback_later()
