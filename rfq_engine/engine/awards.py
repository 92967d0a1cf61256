"""Awards in flight: what was awarded, by when it must be confirmed, and how it ended.

``check_confirm`` is the pure rule for accepting a dealer's confirm: the right dealer, the
right quote, the awarded price exactly, and a quantity no larger than awarded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rfq_engine.domain import (
    Award,
    ExecutionConfirm,
    decimal_str,
    format_ts,
)

__all__ = ["AwardOutcome", "PendingAward", "award_payload", "check_confirm"]


@dataclass(frozen=True, slots=True)
class AwardOutcome:
    confirmed: bool
    quantity: Decimal
    price: Decimal
    reason: str
    dealer_trade_id: str = ""
    timeout: bool = False


@dataclass(eq=False)
class PendingAward:
    award: Award
    notional: Decimal
    rank: int
    deadline_mono: float
    outcome: asyncio.Future[AwardOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    timer: asyncio.TimerHandle | None = None
    unknown: bool = False
    """``execution.unknown`` was audited: the outcome is being reconciled."""
    unresolved: bool = False
    """``execution.unresolved`` was audited: reconciliation gave up; a person may resolve."""
    resolving: bool = False
    """A person's resolution is being made durable; nothing else may settle it meanwhile."""
    attempts: int = 0
    last_error: str | None = None
    send_error: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def resolve(self, outcome: AwardOutcome) -> bool:
        """Settle once; later answers (a duplicate confirm, a late reject) are refused."""
        if self.outcome.done():
            return False
        if self.timer is not None:
            self.timer.cancel()
        self.outcome.set_result(outcome)
        self.changed.set()
        return True

    async def decided(self) -> None:
        """Until the outcome is known or the award is escalated to unresolved."""
        while not (self.outcome.done() or self.unresolved):
            self.changed.clear()
            await self.changed.wait()


def award_payload(award: Award, *, rank: int, reason: str, cover: Decimal | None) -> dict[str, Any]:
    return {
        "execution_id": award.execution_id,
        "dealer_id": award.dealer_id,
        "quote_id": award.quote_id,
        "side": award.side.value,
        "price": decimal_str(award.price),
        "quantity": decimal_str(award.quantity),
        "confirm_by": format_ts(award.confirm_by),
        "rank": rank,
        "reason": reason,
        "cover_price": None if cover is None else decimal_str(cover),
    }


def check_confirm(award: Award, confirm: ExecutionConfirm) -> str | None:
    """Why a confirm cannot be accepted for ``award``, or None."""
    if confirm.dealer_id != award.dealer_id:
        return f"confirm from {confirm.dealer_id} for an award to {award.dealer_id}"
    if confirm.rfq_id != award.rfq_id:
        return f"confirm names rfq {confirm.rfq_id}, the award is for {award.rfq_id}"
    if confirm.quote_id != award.quote_id:
        return f"confirm names quote {confirm.quote_id}, the award was for {award.quote_id}"
    if confirm.price != award.price:
        return (
            f"confirm at price {decimal_str(confirm.price)} but the award was at "
            f"{decimal_str(award.price)}"
        )
    if not 0 < confirm.quantity <= award.quantity:
        return (
            f"confirm for quantity {decimal_str(confirm.quantity)}; awarded "
            f"{decimal_str(award.quantity)}"
        )
    return None
