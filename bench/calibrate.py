"""How fast this machine runs Python right now: a fixed pure-Python loop, in milliseconds.

The benchmarks print it before and after their runs. On a shared virtual machine the same
code has been measured taking 60% more CPU per event from one hour to the next; this
figure lets a reader tell a slower machine from slower code (lower is faster; 270-340 ms
on the 2-core machine of docs/performance.md).
"""

from __future__ import annotations

import time

__all__ = ["python_speed_ms"]


def python_speed_ms(rounds: int = 3) -> float:
    """The best of ``rounds`` runs of a 3,000,000-iteration integer loop, in ms."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return best * 1000
