"""Named crash points for recovery tests: ``RFQ_FAILPOINTS=award.durable,fill.durable``.

When the environment names a point, reaching it kills the process with SIGKILL (a real
``kill -9``: no cleanup, no flush, no finally blocks), exactly where the lifecycle is.
Unset (always, in production) the check is one frozenset lookup. Points:

    rfq.submitted      the submission is durable, nothing sent yet
    rfq.sent           the RFQ went to every dealer, window open
    award.durable      the award decision is durable, not yet sent
    award.sent         the award was handed to the dealer, no confirm yet
    fill.durable       a fill is durable, the RFQ not yet terminal
    outcome.durable    the terminal state is durable, dealers not yet told
    award.tables_pending  (SQLite store) the batch holding the award is committed, its
                       query tables not yet (the writer's two transactions)
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "active", "hit"]

POINTS = frozenset({"rfq.submitted", "rfq.sent", "award.durable", "award.sent", "fill.durable",
                    "outcome.durable", "award.tables_pending"})
_ACTIVE = frozenset(p for p in os.environ.get("RFQ_FAILPOINTS", "").split(",") if p)
_unknown = _ACTIVE - POINTS
if _unknown:
    raise RuntimeError(f"RFQ_FAILPOINTS names unknown points: {', '.join(sorted(_unknown))}")


def active(point: str) -> bool:
    """Whether ``point`` is armed (to skip the work of finding out whether it is reached)."""
    return point in _ACTIVE


def hit(point: str) -> None:
    if point in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
