"""Typed identifiers. They are strings on the wire; the types keep them apart in code."""

from __future__ import annotations

import os
from typing import NewType

__all__ = ["DealerId", "ExecutionId", "FillId", "QuoteId", "RfqId", "new_id"]

RfqId = NewType("RfqId", str)
DealerId = NewType("DealerId", str)
QuoteId = NewType("QuoteId", str)
ExecutionId = NewType("ExecutionId", str)
FillId = NewType("FillId", str)


def new_id() -> str:
    """A random (version 4, RFC 4122) UUID in its canonical text form: the protocol's
    msg_id / rfq_id format. The same 122 random bits as ``str(uuid.uuid4())`` from the
    same source (``os.urandom``), written directly: ``uuid.UUID``'s constructor and
    ``__str__`` were 2.5% of the event loop's time under load (2.3 -> 0.95 µs an id)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
