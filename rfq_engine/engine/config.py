"""Engine defaults, from the ``[engine]`` section of the config file."""

from __future__ import annotations

from datetime import timedelta

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
    """How long one question to a dealer about an execution (``query_execution``) may take."""
    reconcile_timeout_ms: int = Field(60_000, ge=0, le=86_400_000)
    """Unknown outcome: how long past ``confirm_by`` the engine keeps asking the dealer
    (with backoff) before the award is ``unresolved`` and waits for the dealer or a person.
    The default leaves room for the REST contract's proof of absence (a 404 counts only
    past ``expires_at`` + the desk's ``clock_skew_ms``, 30 s by default)."""
    reconcile_backoff_ms: int = Field(250, ge=10, le=60_000)
    """First pause between two questions about an unknown outcome; doubles each time."""
    reconcile_backoff_max_ms: int = Field(5000, ge=10, le=600_000)
    """Longest pause between two questions before ``reconcile_by``."""
    max_live_rfqs: int = Field(1000, ge=1, le=1_000_000)
    """RFQs live at once at most: accepted and not yet ended, with those whose submission is
    being made durable. One more is refused (503 ``busy``, ``Retry-After: 1``) until some
    end. It bounds the memory that a stalled audit store or slow dealers would otherwise
    fill with accepted work (docs/performance.md, "Fourth pass")."""
    reconcile_slow_interval_ms: int = Field(30_000, ge=100, le=3_600_000)
    """Once unresolved: how often the dealer is still asked, until it or a person answers."""

    @property
    def reconcile_timeout(self) -> timedelta:
        return timedelta(milliseconds=self.reconcile_timeout_ms)
