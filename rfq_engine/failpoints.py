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
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "hit"]

POINTS = frozenset({"rfq.submitted", "rfq.sent", "award.durable", "award.sent", "fill.durable",
                    "outcome.durable"})
_ACTIVE = frozenset(p for p in os.environ.get("RFQ_FAILPOINTS", "").split(",") if p)
_unknown = _ACTIVE - POINTS
if _unknown:
    raise RuntimeError(f"RFQ_FAILPOINTS names unknown points: {', '.join(sorted(_unknown))}")


def hit(point: str) -> None:
    if point in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
