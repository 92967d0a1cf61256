"""Errors the engine raises to its callers (API, CLI, programs).

    RfqError (domain)
    └── EngineError, each also under the category (``domain.errors``) that gives its answer
        ├── UnknownRfq        NotFound      no RFQ with that id
        ├── UnknownExecution  NotFound      the RFQ has no award with that execution id
        ├── NotPermitted      Forbidden     the actor may not do this (e.g. approve one's own RFQ)
        ├── InvalidState      Conflict      the RFQ is not in a state that allows this, or a
        │                                   concurrent decision came first
        ├── InvalidRequest    InputError    a request the engine cannot run (unknown dealer or
        │                                   mandate); names the field
        └── EngineHalted      Unavailable   new RFQs are refused (engine stopping or halted)
"""

from __future__ import annotations

from rfq_engine.domain import RfqError, ValidationError
from rfq_engine.domain.errors import Conflict, Forbidden, NotFound, Unavailable

__all__ = [
    "EngineBusy",
    "EngineError",
    "EngineHalted",
    "InvalidRequest",
    "InvalidState",
    "NotPermitted",
    "UnknownExecution",
    "UnknownRfq",
]


class EngineError(RfqError):
    pass


class UnknownRfq(EngineError, NotFound, KeyError):
    def __init__(self, rfq_id: str) -> None:
        super().__init__(f"unknown rfq {rfq_id}")
        self.rfq_id = rfq_id

    def __str__(self) -> str:
        return f"unknown rfq {self.rfq_id}"


class UnknownExecution(EngineError, NotFound, KeyError):
    def __init__(self, rfq_id: str, execution_id: str) -> None:
        super().__init__(f"rfq {rfq_id} has no award {execution_id}")
        self.rfq_id = rfq_id
        self.execution_id = execution_id

    def __str__(self) -> str:
        return f"rfq {self.rfq_id} has no award {self.execution_id}"


class NotPermitted(EngineError, Forbidden):
    pass


class InvalidState(EngineError, Conflict):
    pass


class InvalidRequest(EngineError, ValidationError):
    def __init__(self, field: str, reason: str) -> None:
        ValidationError.__init__(self, field, reason)


class EngineHalted(EngineError, Unavailable):
    pass


class EngineBusy(EngineError, Unavailable):
    """Too many RFQs are live at once (``[engine] max_live_rfqs``): a new one is refused
    until some end. The API answers 503 ``busy`` with ``Retry-After``."""

    retry_after_s = 1
