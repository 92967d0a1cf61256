"""Typed identifiers. They are strings on the wire; the types keep them apart in code."""

from __future__ import annotations

import uuid
from typing import NewType

__all__ = ["DealerId", "ExecutionId", "FillId", "QuoteId", "RfqId", "new_id"]

RfqId = NewType("RfqId", str)
DealerId = NewType("DealerId", str)
QuoteId = NewType("QuoteId", str)
ExecutionId = NewType("ExecutionId", str)
FillId = NewType("FillId", str)


def new_id() -> str:
    """A random UUID (the protocol's msg_id / rfq_id format)."""
    return str(uuid.uuid4())
