"""The simulated desk's messages as the wire carries them (the bodies of docs/dealer-protocol.md).

The desk builds every answer as a protocol body, and the adapter parses it with the shared
``parse_body`` (``dealer_adapters.common.parse_inbound``) exactly as a remote desk's message
would be, so a shape a real desk could not send cannot slip through. The reference dealer
bot (``dealer_tools``) sends the same quote bodies over MQTT.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dealer_adapters.common import confirm_body, reject_body, status_body
from dealer_adapters.common import quote_body as _quote_body
from rfq_engine.domain import QuoteId

if TYPE_CHECKING:
    from dealer_adapters.simulated.ledger import ExecutionRecord
    from dealer_adapters.simulated.model import QuotePlan

__all__ = ["desk_status_body", "execution_body", "quote_body"]


def quote_body(rfq_id: str, quote_id: QuoteId, plan: QuotePlan, valid_until: datetime) -> dict[str, Any]:
    """The wire ``quote`` body for a plan (only the sides it quotes), as PROTOCOL.md has it."""
    return _quote_body(rfq_id, quote_id, plan.quantity, valid_until, bid=plan.bid, ask=plan.ask)


def execution_body(record: ExecutionRecord) -> tuple[str, dict[str, Any]]:
    """The desk's answer to the award ``record`` booked: its message type and body."""
    if record.confirmed:
        return "execution.confirm", confirm_body(record.execution_id, record.rfq_id, record.quote_id,
                                                 record.price, record.quantity, record.dealer_trade_id)
    return "execution.reject", reject_body(record.execution_id, record.rfq_id, record.reason)


def desk_status_body(online: bool, instruments: Iterable[str]) -> dict[str, Any]:
    """The desk's retained ``status`` (an offline one stands for its MQTT will message)."""
    return status_body(online, instruments)
