"""What each error means to an HTTP client and to a shell: the one table the API's error
middleware and the CLI read (the tree and each error's meaning: ``rfq_engine.domain.errors``).

An error's row is that of the first class in its MRO the table lists, so a category's row
covers every error under it. ``None`` (an error the table does not list: a bug such as
``IllegalTransition``, or no ``RfqError`` at all) is a 500 for the API and a traceback for
the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from rfq_engine.domain.errors import (
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    SetupError,
    StoreFault,
    Unavailable,
    ValidationError,
    WireError,
)
from rfq_engine.engine.errors import EngineBusy, EngineHalted, UnknownRfq

__all__ = ["ERROR_TABLE", "EXIT_ERROR", "INTERNAL", "Outcome", "outcome_of", "public_reason"]

EXIT_ERROR: Final = 1
"""The CLI's exit code for every error (the other codes are results: README "Exit codes")."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    """The HTTP status."""
    kind: str
    """The API's ``error`` field."""
    exit_code: int
    """The CLI's exit code."""
    reason: str | None = None
    """The API's ``reason`` when it is not the error's own message."""

    @property
    def fault(self) -> bool:
        """A 500: the API logs it and does not show its message; not the caller's to fix."""
        return self.status == 500


INTERNAL: Final = Outcome(500, "internal", EXIT_ERROR, "internal error; see the server log")
_NOT_FOUND = Outcome(404, "not_found", EXIT_ERROR)
_FORBIDDEN = Outcome(403, "forbidden", EXIT_ERROR)
_CONFLICT = Outcome(409, "conflict", EXIT_ERROR)

ERROR_TABLE: Final[Mapping[type, Outcome]] = MappingProxyType({
    InputError: Outcome(422, "validation", EXIT_ERROR),
    NotFound: _NOT_FOUND,
    Forbidden: _FORBIDDEN,
    Conflict: _CONFLICT,
    Unavailable: Outcome(503, "unavailable", EXIT_ERROR),
    SetupError: INTERNAL,
    StoreFault: INTERNAL,
    WireError: INTERNAL,
    # Two engine errors answer in their own words within their category's status.
    UnknownRfq: Outcome(404, "not_found", EXIT_ERROR, "no such RFQ"),
    EngineHalted: Outcome(503, "halted", EXIT_ERROR),
    EngineBusy: Outcome(503, "busy", EXIT_ERROR),
})


def outcome_of(exc: BaseException) -> Outcome | None:
    """The row of ``exc``: that of the most specific class of it the table lists."""
    for cls in type(exc).__mro__:
        found = ERROR_TABLE.get(cls)
        if found is not None:
            return found
    return None


def public_reason(exc: BaseException, outcome: Outcome) -> tuple[str, str | None]:
    """The API's ``reason`` and ``field`` for ``exc``: a ``ValidationError`` names its field."""
    if outcome.reason is not None:
        return outcome.reason, None
    if isinstance(exc, ValidationError):
        return exc.reason, exc.field
    return str(exc), None
