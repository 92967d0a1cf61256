"""Engine defaults, from the ``[engine]`` section of the config file."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rfq_engine.configtypes import STRICT

__all__ = ["EngineConfig"]


class EngineConfig(BaseModel):
    model_config = STRICT

    default_window_ms: int = Field(5000, ge=50, le=600_000)
    """Response window when an RFQ does not name one."""
    confirm_timeout_ms: int = Field(2000, ge=50, le=120_000)
    """Last look: how long a winner has to confirm (the award's ``confirm_by``)."""
    min_quote_validity_ms: int = Field(100, ge=0, le=60_000)
    """A quote must stay valid at least this long past the award, or it is not awarded."""
    max_award_rounds: int = Field(8, ge=1, le=100)
    """Fallback rounds (award, reject, next best) before the RFQ ends with what it has."""
    send_timeout_ms: int = Field(1000, ge=10, le=60_000)
    """A send the transport has not taken within this is treated as failed for that dealer."""
    lookup_timeout_ms: int = Field(5000, ge=10, le=120_000)
    """Recovery: how long to wait for a dealer to say what became of an execution."""
