"""What a treasurer sees of a hedge program (pure): its terms, its next scheduled runs, what
its latest scheduled time plans, its recorded decisions and its coverage.

``GET /api/v1/hedge/programs`` and the web UI's **Programs** page serve this dict; the
inputs are read by the caller (``records.program_decisions``, ``records.load_trades``).
Decimals are strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rfq_engine.domain.events import ProgramDecided
from rfq_engine.domain.values import decimal_str, format_ts
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.positions import TradeRecord
from rfq_engine.hedging.program import ForecastConfig, ProgramConfig
from rfq_engine.hedging.report import coverage
from rfq_engine.hedging.slots import due, next_runs

__all__ = ["decision_view", "program_overview"]


def decision_view(event: ProgramDecided) -> dict[str, Any]:
    """One ``program.decided`` event as the API shows it (newest first in the lists)."""
    return {
        "period": event.period,
        "trigger": event.trigger,
        "action": event.action,
        "scheduled_for": None if event.scheduled_for is None else format_ts(event.scheduled_for),
        "target": None if event.target is None else decimal_str(event.target),
        "held": None if event.held is None else decimal_str(event.held),
        "hedge_ratio": None if event.hedge_ratio is None else decimal_str(event.hedge_ratio),
        "rfqs": list(event.rfqs or []),
        "proposed": [p.get("client_rfq_id") for p in event.proposed or [] if isinstance(p, dict)],
        "approved_by": event.approved_by,
        "reasons": list(event.reasons),
        "error": event.error,
    }


def program_overview(name: str, program: ProgramConfig, *, decisions: Sequence[ProgramDecided],
                     decided_at: Sequence[datetime], trades: Sequence[TradeRecord],
                     forecast_defaults: ForecastConfig | None, now: datetime, runs: int = 3,
                     limit: int | None = None) -> dict[str, Any]:
    """The program's view at ``now``: ``decisions`` (oldest first, each recorded at the
    matching ``decided_at``) are shown newest first, at most ``limit``."""
    slot_due = due(program, now)
    today = now.date()
    this_month = Period.of(program.cron.local(now).date())
    try:
        covered: list[dict[str, Any]] | None = coverage(
            name, program, trades, forecast_defaults, [this_month, this_month.plus(1)], today)
        problem = None
    except ValueError as exc:  # an incomplete forecast is reported, not a 500
        covered, problem = None, str(exc)
    shown = [{**decision_view(d), "recorded_at": format_ts(at)}
             for d, at in zip(decisions, decided_at, strict=True)][::-1]
    return {
        "name": name,
        "strategy": program.strategy.value,
        "underlying": program.code,
        "mandate": program.mandate,
        "dealers": list(program.dealers),
        "hedge_ratio": decimal_str(program.hedge_ratio),
        "ladder": [decimal_str(r) for r in program.rungs],
        "basis_risk": program.basis_risk,
        "tenor_months": program.tenor_months,
        "schedule": program.schedule,
        "timezone": program.timezone,
        "approval": program.approval,
        "enabled": program.enabled,
        "next_runs": [format_ts(t) for t in next_runs(program, now, runs)] if program.enabled else [],
        "due": None if slot_due is None else {
            "scheduled_for": format_ts(slot_due.slot), "period": str(slot_due.period),
            "trigger": slot_due.trigger, "note": slot_due.note},
        "decisions": shown if limit is None else shown[:limit],
        "decision_count": len(shown),
        "coverage": covered,
        "coverage_error": problem,
    }
