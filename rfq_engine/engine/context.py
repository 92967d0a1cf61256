"""What a running RFQ needs from the engine, in one place (no back-reference to the engine)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId
from rfq_engine.domain.events import AnyEvent, encode
from rfq_engine.engine.config import EngineConfig
from rfq_engine.engine.risk import RiskBook
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ReferencePriceProvider
from rfq_engine.store.base import AuditStore
from rfq_engine.store.events import AuditEvent

__all__ = ["EngineEvent", "Listener", "Services"]


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """What listeners (CLI live view, WebSocket stream) see: every audited event, as appended
    (``event`` typed, ``payload`` as stored)."""

    rfq_id: str | None
    type: str
    actor: str
    payload: Mapping[str, Any]
    event: AnyEvent | None = None


Listener = Callable[[EngineEvent], None]


@dataclass
class Services:
    store: AuditStore
    adapters: Mapping[DealerId, DealerAdapter]
    mandates: Mapping[str, Mandate]
    reference: ReferencePriceProvider
    config: EngineConfig
    risk: RiskBook
    listeners: list[Listener] = field(default_factory=list)

    def audit(self, rfq_id: str | None, event: AnyEvent, actor: str = "engine"
              ) -> asyncio.Future[AuditEvent]:
        """Append a typed event to the audit log (durable when the future resolves) and tell
        listeners."""
        payload = encode(event)
        future = self.store.append(rfq_id, event.TYPE, actor, payload)
        if self.listeners:
            seen = EngineEvent(rfq_id, event.TYPE, actor, payload, event)
            for listener in tuple(self.listeners):
                try:
                    listener(seen)
                except Exception:  # a broken listener must never break an RFQ
                    self.listeners.remove(listener)
        return future
