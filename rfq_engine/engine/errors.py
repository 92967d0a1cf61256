"""Errors the engine raises to its callers (API, CLI, programs).

    RfqError (domain)
    └── EngineError
        ├── UnknownRfq        no RFQ with that id
        ├── UnknownExecution  the RFQ has no award with that execution id
        ├── NotPermitted      the actor may not do this (e.g. approve one's own RFQ)
        ├── InvalidState      the RFQ is not in a state that allows this (e.g. approve when open)
        ├── InvalidRequest    a request the engine cannot run (unknown dealer or mandate); names the field
        └── EngineHalted      new RFQs are refused (engine stopping or halted)
"""

from __future__ import annotations

from rfq_engine.domain import RfqError, ValidationError

__all__ = [
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


class UnknownRfq(EngineError, KeyError):
    def __init__(self, rfq_id: str) -> None:
        super().__init__(f"unknown rfq {rfq_id}")
        self.rfq_id = rfq_id

    def __str__(self) -> str:
        return f"unknown rfq {self.rfq_id}"


class UnknownExecution(EngineError, KeyError):
    def __init__(self, rfq_id: str, execution_id: str) -> None:
        super().__init__(f"rfq {rfq_id} has no award {execution_id}")
        self.rfq_id = rfq_id
        self.execution_id = execution_id

    def __str__(self) -> str:
        return f"rfq {self.rfq_id} has no award {self.execution_id}"


class NotPermitted(EngineError):
    pass


class InvalidState(EngineError):
    pass


class InvalidRequest(EngineError, ValidationError):
    def __init__(self, field: str, reason: str) -> None:
        ValidationError.__init__(self, field, reason)


class EngineHalted(EngineError):
    pass
