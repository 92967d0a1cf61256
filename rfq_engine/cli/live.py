"""A live terminal view of RFQs: quotes as they arrive, the window's countdown, awards, fills.

It listens to the engine's event stream (every audited event). On a terminal the
countdown rewrites one status line; elsewhere it prints a line per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TextIO

from rfq_engine.domain import decimal_str
from rfq_engine.domain.events import (
    AwardDecided,
    ExecutionConfirmed,
    ExecutionRejected,
    FillRecorded,
    QuoteDeclined,
    QuoteReceived,
    QuoteRejected,
    QuotesRanked,
    RfqSent,
    RfqStateChanged,
)
from rfq_engine.domain.states import RfqState
from rfq_engine.engine import EngineEvent
from rfq_engine.readmodels.events import listened

__all__ = ["LiveView", "money"]

_SHOWN_ENDS = (RfqState.REJECTED, RfqState.PENDING_APPROVAL, RfqState.EXPIRED,
               RfqState.CANCELLED, RfqState.FAILED)


def money(value: str | Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{Decimal(value):,.2f}"


@dataclass
class _Watch:
    started: float
    deadline: float | None = None
    dealers: int = 0
    answered: set[str] = field(default_factory=set)
    open: bool = True


class LiveView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self._watch: dict[str, _Watch] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._status_shown = False

    def watch(self, rfq_id: str) -> None:
        self._watch[rfq_id] = _Watch(time.monotonic())
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._clear_status()

    def _clear_status(self) -> None:
        if self.tty and self._status_shown:
            self.out.write("\r\x1b[2K")
            self._status_shown = False

    def _print(self, text: str) -> None:
        self._clear_status()
        self.out.write(text + "\n")
        self.out.flush()

    async def _tick(self) -> None:
        period = 0.1 if self.tty else 1.0
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for rfq_id, w in self._watch.items():
                if not w.open or w.deadline is None:
                    continue
                left = max(w.deadline - now, 0.0)
                line = (f"  window closes in {left:4.1f} s  ·  {len(w.answered)}/{w.dealers} "
                        f"dealers answered  ({rfq_id[-8:]})")
                if self.tty:
                    self.out.write("\r\x1b[2K" + line)
                    self.out.flush()
                    self._status_shown = True
                else:
                    self._print(line)

    def __call__(self, event: EngineEvent) -> None:
        w = self._watch.get(event.rfq_id or "")
        if w is None:
            return
        t = f"+{time.monotonic() - w.started:6.3f}s"
        match listened(event):
            case RfqSent() as e:
                failed = e.failed or {}
                w.dealers = len(e.sent) + len(failed)
                w.deadline = w.started + e.window_ms / 1000
                w.answered.update(failed)
                self._print(f"  {t}  RFQ sent to {len(e.sent)} dealers, window "
                            f"{e.window_ms / 1000:.1f} s"
                            + (f"; not reached: {', '.join(failed)}" if failed else ""))
            case QuoteReceived() as e:
                w.answered.add(e.dealer_id)
                sides = "  ".join(f"{k} {money(v):>12}" for k, v in (("bid", e.bid), ("ask", e.ask))
                                  if v is not None)
                self._print(f"  {t}  quote     {e.dealer_id:<16} {sides}  x {decimal_str(e.quantity)}")
            case QuoteDeclined() as e:
                w.answered.add(e.dealer_id)
                self._print(f"  {t}  declined  {e.dealer_id:<16} ({e.reason})")
            case QuoteRejected() as e:
                self._print(f"  {t}  rejected  {e.dealer_id or '?':<16} {e.reason}")
            case RfqStateChanged(from_state=RfqState.OPEN, to=RfqState.AWARDING) as e:
                w.open = False
                self._print(f"  {t}  window closed: {e.reason}")
            case RfqStateChanged(to=to) as e if to in _SHOWN_ENDS:
                self._print(f"  {t}  {to.upper()}: {e.reason}")
            case QuotesRanked() as e:
                self._print(f"  ranked quotes ({e.side}):")
                for r in e.ranking:
                    self._print(f"      #{r['rank']}  {r['dealer_id']:<16} {money(r['price']):>12}  "
                                f"x {r['quantity']}")
                for r in e.rejected:
                    self._print(f"      --  {r['dealer_id']:<16} {money(r.get('price')):>12}  "
                                f"rejected: {r['reason']}")
            case AwardDecided() as e:
                self._print(f"  {t}  AWARD     {e.dealer_id:<16} {e.side} {money(e.price)} "
                            f"x {decimal_str(e.quantity)}  (rank {e.rank}, "
                            f"cover {money(e.cover_price)}); awaiting last look")
            case ExecutionRejected() as e:
                self._print(f"  {t}  last look {e.dealer_id:<16} {e.reason}")
            case ExecutionConfirmed() as e:
                self._print(f"  {t}  confirmed {e.dealer_id:<16} trade {e.dealer_trade_id}")
            case FillRecorded() as e:
                self._print(f"  {t}  FILL      {e.dealer_id:<16} {decimal_str(e.quantity)} @ "
                            f"{money(e.price)}  (notional {money(e.notional)})")
