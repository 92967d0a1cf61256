"""Typed identifiers. They are strings on the wire; the types keep them apart in code."""

from __future__ import annotations

import os
import threading
import time
from typing import NewType

__all__ = ["DealerId", "ExecutionId", "FillId", "QuoteId", "RfqId", "new_id"]

RfqId = NewType("RfqId", str)
DealerId = NewType("DealerId", str)
QuoteId = NewType("QuoteId", str)
ExecutionId = NewType("ExecutionId", str)
FillId = NewType("FillId", str)


_POOL = 256  # random parts drawn from the OS at once, per thread
_local = threading.local()


def _random16() -> str:
    """16 hex digits (64 bits) from ``os.urandom``, drawn 256 at a time per thread. One
    ``getrandom`` per id released and re-took the GIL each time: under load, with the audit
    writer's thread running Python, that wait made ``new_id`` 3.9% of ``rfq serve``'s event
    loop (py-spy). A forked child starts with an empty pool, never its parent's."""
    try:
        return _local.pool.pop()  # type: ignore[no-any-return]
    except (AttributeError, IndexError):
        h = os.urandom(8 * _POOL).hex()
        _local.pool = [h[i:i + 16] for i in range(0, len(h), 16)]
        return _local.pool.pop()  # type: ignore[no-any-return]


os.register_at_fork(after_in_child=lambda: _local.__dict__.clear())


def new_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID in its canonical text form: the protocol's
    msg_id / rfq_id format.

    The first 48 bits are the Unix time in milliseconds, the next 12 (after the version) the
    fraction of that millisecond (RFC 9562 section 6.2, method 3: about 244 ns), and the
    last 62 are random (``os.urandom``). Why not version 4: these ids are the keys of the
    audit store's indexes (rfqs, quotes, awards, and the events by RFQ). Random keys put
    every insert on a random page of each B-tree, so each commit dirtied a page per event
    per index and a database larger than the page cache stalled on reads; ids that grow
    with time append at the right-hand edge. ``bench/audit_throughput.py --ids random``
    against the default: 6,109 -> 2,360 bytes written to the disk per event at 300,000
    events (docs/performance.md, "Fourth pass").

    Order is locality only: nothing may rely on it (the wall clock can step back; ids of one
    244 ns tick are in random order). Ordering is by the log's ``seq`` and timestamps. The
    random part is the last 16 hex digits: cut a short id from the end, not the start,
    whose digits are shared by every id of the same minute."""
    ms, fraction = divmod(time.time_ns(), 1_000_000)
    h = f"{ms & 0xFFFF_FFFF_FFFF:012x}{fraction * 4096 // 1_000_000:03x}{_random16()}"
    return f"{h[:8]}-{h[8:12]}-7{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-{h[19:31]}"
