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
from typing import Any, TextIO

from rfq_engine.engine import EngineEvent

__all__ = ["LiveView", "money"]


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
                        f"dealers answered  ({rfq_id[:8]})")
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
        p: Any = event.payload
        t = f"+{time.monotonic() - w.started:6.3f}s"
        kind = event.type
        if kind == "rfq.sent":
            w.dealers = len(p["sent"]) + len(p["failed"])
            w.deadline = w.started + p["window_ms"] / 1000
            w.answered.update(p["failed"])
            self._print(f"  {t}  RFQ sent to {len(p['sent'])} dealers, window "
                        f"{p['window_ms'] / 1000:.1f} s"
                        + (f"; not reached: {', '.join(p['failed'])}" if p["failed"] else ""))
        elif kind == "quote.received":
            w.answered.add(p["dealer_id"])
            sides = "  ".join(f"{k} {money(p[k]):>12}" for k in ("bid", "ask") if p.get(k))
            self._print(f"  {t}  quote     {p['dealer_id']:<16} {sides}  x {p['quantity']}")
        elif kind == "quote.declined":
            w.answered.add(p["dealer_id"])
            self._print(f"  {t}  declined  {p['dealer_id']:<16} ({p['reason']})")
        elif kind == "quote.rejected":
            self._print(f"  {t}  rejected  {p.get('dealer_id', '?'):<16} {p['reason']}")
        elif kind == "rfq.state_changed":
            if p["to"] == "awarding" and p["from"] == "open":
                w.open = False
                self._print(f"  {t}  window closed: {p['reason']}")
            elif p["to"] in ("rejected", "pending_approval", "expired", "cancelled", "failed"):
                self._print(f"  {t}  {p['to'].upper()}: {p['reason']}")
        elif kind == "quotes.ranked":
            self._print(f"  ranked quotes ({p['side']}):")
            for r in p["ranking"]:
                self._print(f"      #{r['rank']}  {r['dealer_id']:<16} {money(r['price']):>12}  "
                            f"x {r['quantity']}")
            for r in p["rejected"]:
                self._print(f"      --  {r['dealer_id']:<16} {money(r.get('price')):>12}  "
                            f"rejected: {r['reason']}")
        elif kind == "award.decided":
            self._print(f"  {t}  AWARD     {p['dealer_id']:<16} {p['side']} {money(p['price'])} "
                        f"x {p['quantity']}  (rank {p['rank']}, cover {money(p['cover_price'])}); "
                        "awaiting last look")
        elif kind == "execution.rejected":
            self._print(f"  {t}  last look {p['dealer_id']:<16} {p['reason']}")
        elif kind == "execution.confirmed":
            self._print(f"  {t}  confirmed {p['dealer_id']:<16} trade {p['dealer_trade_id']}")
        elif kind == "fill.recorded":
            self._print(f"  {t}  FILL      {p['dealer_id']:<16} {p['quantity']} @ {money(p['price'])}"
                        f"  (notional {money(p['notional'])})")
