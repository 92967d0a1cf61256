"""A transport-level fake dealer adapter: the test decides every inbound message.

It implements the real ``DealerAdapter`` protocol (no patching): outbound messages are
recorded and announced through an asyncio.Queue so tests await them instead of sleeping.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from dealer_adapters.protocol import (
    DealerUnavailable,
    ExecutionLookup,
    ExecutionState,
    InboundSink,
    LookupPolicy,
)
from rfq_engine.domain import (
    Award,
    DealerId,
    Decline,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Inbound,
    Quote,
    QuoteId,
    RfqClosed,
    RfqId,
    RfqNew,
    new_id,
    utc_now,
)


@dataclass
class Sent:
    dealer: DealerId
    message: RfqNew | Award | RfqClosed


@dataclass
class ScriptedDealers:
    ids: tuple[str, ...]
    sink: InboundSink | None = None
    outbox: asyncio.Queue[Sent] = field(default_factory=asyncio.Queue)
    log: list[Sent] = field(default_factory=list)
    offline: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    lookups: dict[str, ExecutionLookup] = field(default_factory=dict)
    """Answers to ``query_execution``; an id not listed answers ``not_found`` (``absent``)."""
    absent: ExecutionLookup = field(
        default_factory=lambda: ExecutionLookup(ExecutionState.NOT_FOUND, reason="no such execution"))
    policy: LookupPolicy = field(
        default_factory=lambda: LookupPolicy("execution_id", True, True, "scripted"))
    queries: list[str] = field(default_factory=list)
    asked: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    """Each ``query_execution`` as it happens, for tests that await the n-th question."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """A send to a ``hang`` dealer waits for this (never set: it never returns)."""
    cancelled_sends: int = 0

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(DealerId(d) for d in self.ids)

    async def start(self, sink: InboundSink) -> None:
        self.sink = sink

    async def close(self) -> None:
        self.sink = None

    def is_online(self, dealer_id: DealerId) -> bool:
        return dealer_id not in self.offline

    async def _send(self, dealer: DealerId, message: RfqNew | Award | RfqClosed) -> None:
        if dealer in self.offline:
            raise DealerUnavailable(dealer, "offline")
        if dealer in self.hang:
            try:  # a transport that does not return until released
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled_sends += 1
                raise
        sent = Sent(dealer, message)
        self.log.append(sent)
        self.outbox.put_nowait(sent)

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        await self._send(dealer_id, message)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        await self._send(dealer_id, award)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        await self._send(dealer_id, message)

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        self.queries.append(execution_id)
        self.asked.put_nowait(execution_id)
        return self.lookups.get(execution_id, self.absent)

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        return self.policy

    # ---- helpers for tests

    async def next(self, kind: type, dealer: str | None = None, timeout: float = 5) -> Sent:
        """The next outbound message of ``kind`` (optionally to ``dealer``); others are skipped."""
        async def find() -> Sent:
            while True:
                sent = await self.outbox.get()
                if isinstance(sent.message, kind) and (dealer is None or sent.dealer == dealer):
                    return sent
        return await asyncio.wait_for(find(), timeout)

    def sent(self, kind: type, dealer: str | None = None) -> list[Sent]:
        return [s for s in self.log if isinstance(s.message, kind)
                and (dealer is None or s.dealer == dealer)]

    def push(self, message: Inbound) -> None:
        assert self.sink is not None
        self.sink(message)

    def quote(self, rfq_id: str, dealer: str, *, bid: str | None = None, ask: str | None = None,
              quantity: str = "10", valid_ms: int = 5000, quote_id: str | None = None,
              msg_id: str | None = None, received_at: datetime | None = None) -> Quote:
        now = received_at or utc_now()
        q = Quote(RfqId(rfq_id), DealerId(dealer), QuoteId(quote_id or new_id()),
                  None if bid is None else Decimal(bid), None if ask is None else Decimal(ask),
                  Decimal(quantity), now + timedelta(milliseconds=valid_ms), now,
                  msg_id or new_id())
        self.push(q)
        return q

    def decline(self, rfq_id: str, dealer: str, reason: str = "no appetite") -> None:
        self.push(Decline(RfqId(rfq_id), DealerId(dealer), reason, utc_now(), new_id()))

    def confirm(self, award: Award, *, price: Decimal | None = None,
                quantity: Decimal | None = None, dealer: str | None = None,
                msg_id: str | None = None) -> None:
        self.push(ExecutionConfirm(
            award.execution_id, award.rfq_id, award.quote_id, DealerId(dealer or award.dealer_id),
            award.price if price is None else price,
            award.quantity if quantity is None else quantity,
            f"T-{award.execution_id[-12:]}", utc_now(), msg_id or new_id()))

    def reject(self, award: Award, reason: str = "last look: price moved") -> None:
        self.push(ExecutionReject(award.execution_id, award.rfq_id, award.dealer_id, reason,
                                  utc_now(), new_id()))
