"""The typed exception tree of the domain.

    RfqError
    ├── ValidationError      bad input: names the field and why
    └── IllegalTransition    a state change the transition table does not allow
"""

from __future__ import annotations

__all__ = ["IllegalTransition", "RfqError", "ValidationError"]


class RfqError(Exception):
    """Base of every error this project raises on purpose."""


class ValidationError(RfqError, ValueError):
    """Input that does not satisfy the model; ``field`` is a dotted path like ``legs[1].strike``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def nested(self, prefix: str) -> ValidationError:
        """The same error with its field path prefixed (``legs[0]`` + ``strike``)."""
        return ValidationError(f"{prefix}.{self.field}" if self.field else prefix, self.reason)


class IllegalTransition(RfqError):
    """An RFQ asked to move between two states the transition table does not connect."""

    def __init__(self, rfq_id: str, current: str, target: str) -> None:
        super().__init__(f"rfq {rfq_id}: illegal transition {current} -> {target}")
        self.rfq_id = rfq_id
        self.current = current
        self.target = target
