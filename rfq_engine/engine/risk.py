"""Notional used per mandate (day, month) and open exposure per dealer.

The base comes from the store (filled notional), loaded once per key; on top, the engine
keeps reservations in memory: an RFQ reserves its notional when it passes pre-trade and
gives back what it did not fill when it ends; an award reserves dealer exposure until it
is confirmed (then it becomes filled exposure) or rejected. Everything runs on the event
loop's thread, so a check and its reservation happen without an ``await`` between them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import partial

from rfq_engine.store.base import AuditStore

__all__ = ["RiskBook", "day_start", "month_start"]

ZERO = Decimal(0)


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    d = now.astimezone(UTC).date()
    return datetime(d.year, d.month, 1, tzinfo=UTC)


class RiskBook:
    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._day_base: dict[tuple[str, date], Decimal] = {}
        self._month_base: dict[tuple[str, date], Decimal] = {}
        self._dealer_base: dict[tuple[str, date], Decimal] = {}
        # rfq_id -> (mandate, day key, month key, reserved notional)
        self._rfq_reserved: dict[str, tuple[str, date, date, Decimal]] = {}
        self._day_extra: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        self._month_extra: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        # Per dealer: awards in flight (any day), and fills settled in memory per UTC day. The
        # fills are keyed by day like the store-loaded base, so a new day's base (which
        # already contains yesterday's fills) is never added to yesterday's in-memory fills.
        self._dealer_inflight: dict[str, Decimal] = defaultdict(Decimal)
        self._dealer_filled: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        self._award_reserved: dict[str, tuple[str, Decimal]] = {}
        self._loading: dict[tuple[str, str, date], asyncio.Future[Decimal]] = {}

    async def load(self, mandate: str, dealers: tuple[str, ...], now: datetime) -> None:
        """Fetch the store's filled notional for the keys ``now`` needs (once per key)."""
        dkey = (mandate, day_start(now).date())
        mkey = (mandate, month_start(now).date())
        await self._fetch("day", self._day_base, dkey,
                          lambda: self._store.filled_notional(since=day_start(now), mandate=mandate))
        await self._fetch("month", self._month_base, mkey,
                          lambda: self._store.filled_notional(since=month_start(now), mandate=mandate))
        today = now.astimezone(UTC).date()
        for dealer in dealers:
            await self._fetch("dealer", self._dealer_base, (dealer, today),
                              partial(self._store.filled_notional, dealer_id=dealer, open_on=today))

    async def _fetch(self, kind: str, cache: dict[tuple[str, date], Decimal], key: tuple[str, date],
                     query: Callable[[], Awaitable[Decimal]]) -> None:
        """Fill ``cache[key]`` once. Callers that arrive while the query runs share it: a burst
        of RFQs at start-up asks the store once per key, not once per RFQ, and a late
        duplicate answer can never replace a base that fills made since were added on top
        of (in the ``*_extra`` sums), which would count those fills twice."""
        if key in cache:
            return
        tag = (kind, *key)
        pending = self._loading.get(tag)
        if pending is None:
            pending = asyncio.ensure_future(query())
            self._loading[tag] = pending

            def settled(done: asyncio.Future[Decimal]) -> None:
                self._loading.pop(tag, None)
                if not done.cancelled() and done.exception() is None:
                    cache.setdefault(key, done.result())

            pending.add_done_callback(settled)
        await asyncio.shield(pending)

    def used(self, mandate: str, now: datetime) -> tuple[Decimal, Decimal]:
        """Notional filled or reserved under ``mandate`` today and this month (UTC)."""
        dkey = (mandate, day_start(now).date())
        mkey = (mandate, month_start(now).date())
        return (
            self._day_base.get(dkey, ZERO) + self._day_extra[dkey],
            self._month_base.get(mkey, ZERO) + self._month_extra[mkey],
        )

    def reserve_rfq(self, rfq_id: str, mandate: str, now: datetime, notional: Decimal) -> None:
        dkey = day_start(now).date()
        mkey = month_start(now).date()
        self._rfq_reserved[rfq_id] = (mandate, dkey, mkey, notional)
        self._day_extra[(mandate, dkey)] += notional
        self._month_extra[(mandate, mkey)] += notional

    def settle_rfq(self, rfq_id: str, filled_notional: Decimal) -> None:
        """The RFQ ended: its reservation becomes what it actually filled."""
        entry = self._rfq_reserved.pop(rfq_id, None)
        if entry is None:
            return
        mandate, dkey, mkey, reserved = entry
        self._day_extra[(mandate, dkey)] += filled_notional - reserved
        self._month_extra[(mandate, mkey)] += filled_notional - reserved

    def exposure(self, dealer: str, today: date) -> Decimal:
        return (self._dealer_base.get((dealer, today), ZERO)
                + self._dealer_filled[(dealer, today)] + self._dealer_inflight[dealer])

    def reserve_award(self, execution_id: str, dealer: str, notional: Decimal) -> None:
        self._award_reserved[execution_id] = (dealer, notional)
        self._dealer_inflight[dealer] += notional

    def settle_award(self, execution_id: str, filled_notional: Decimal,
                     today: date | None = None) -> None:
        """The award ended: its reservation goes, what it filled counts on ``today`` (UTC)."""
        entry = self._award_reserved.pop(execution_id, None)
        if entry is None:
            return
        dealer, reserved = entry
        self._dealer_inflight[dealer] -= reserved
        if filled_notional:
            day = today or datetime.now(UTC).date()
            self._dealer_filled[(dealer, day)] += filled_notional
