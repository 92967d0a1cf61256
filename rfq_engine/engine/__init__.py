"""The asyncio RFQ engine: lifecycle per RFQ, routing of dealer messages, recovery."""

from rfq_engine.engine.config import EngineConfig
from rfq_engine.engine.context import EngineEvent, Listener
from rfq_engine.engine.engine import RfqEngine
from rfq_engine.engine.errors import (
    EngineBusy,
    EngineError,
    EngineHalted,
    InvalidRequest,
    InvalidState,
    NotPermitted,
    UnknownRfq,
)

__all__ = [
    "EngineBusy",
    "EngineConfig",
    "EngineError",
    "EngineEvent",
    "EngineHalted",
    "InvalidRequest",
    "InvalidState",
    "Listener",
    "NotPermitted",
    "RfqEngine",
    "UnknownRfq",
]
