"""How the readers of the audit log get typed events (``domain.events``).

The read models (decision record, scorecards, hedging records) and the listeners (metrics,
the live view, the CLI) match on event classes, never on payload keys. A stored payload
that does not decode (``EventDecodeError``) is skipped with a logged warning: a reader
never fails on one bad row. A type this code does not know decodes to ``UnknownEvent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import structlog

from rfq_engine.domain.events import AnyEvent, EventDecodeError, UnknownEvent, decode
from rfq_engine.store.events import AuditEvent

__all__ = ["Listened", "listened", "typed", "typed_events"]

log = structlog.get_logger("rfq_engine.readmodels.events")


def typed(type_: str, payload: Mapping[str, Any], *, seq: int | None = None,
          rfq_id: str | None = None) -> AnyEvent | UnknownEvent | None:
    """The typed event of a stored ``(type, payload)``; None (logged) when it does not decode."""
    try:
        return decode(type_, payload)
    except EventDecodeError as exc:
        log.warning("audit.event_not_decoded", type=type_, seq=seq, rfq_id=rfq_id,
                    reason=exc.reason)
        return None


def typed_events(events: Iterable[AuditEvent]
                 ) -> Iterator[tuple[AuditEvent, AnyEvent | UnknownEvent]]:
    """Each stored event with its typed event, skipping (logged) those that do not decode."""
    for event in events:
        decoded = typed(event.type, event.payload, seq=event.seq, rfq_id=event.rfq_id)
        if decoded is not None:
            yield event, decoded


class Listened(Protocol):
    """What a listener is given (``engine.EngineEvent``): the typed event as written, and
    the stored type and payload."""

    @property
    def rfq_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def event(self) -> AnyEvent | None: ...


def listened(seen: Listened) -> AnyEvent | UnknownEvent | None:
    """The typed event a listener was given (decoded from the payload when it came without)."""
    if seen.event is not None:
        return seen.event
    return typed(seen.type, seen.payload, rfq_id=seen.rfq_id)
