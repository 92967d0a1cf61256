"""A simulated desk that runs for hours keeps a bounded record of what it was sent: the
newest ``RECEIVED_KEPT`` messages, in order (``rfq serve`` with simulated desks under a
soak grew by every RFQ, award and close it ever sent)."""

from __future__ import annotations

from dealer_adapters.simulated.adapter import RECEIVED_KEPT
from rfq_engine.domain import DealerId, RfqClosed
from tests.adapters.sim_helpers import fast, rfq

A = DealerId("desk-a")


async def test_a_desk_keeps_only_the_newest_messages_it_was_sent(make_dealers) -> None:
    sim, _ = await make_dealers({A: fast(silence_rate=1.0)})  # sends nothing back
    sent = []
    for _ in range(RECEIVED_KEPT + 250):
        message = rfq()
        await sim.send_rfq(A, message)
        closed = RfqClosed(rfq_id=message.rfq_id, outcome="not_filled", you_won=False)
        await sim.send_closed(A, closed)
        sent += [message, closed]
    assert sim.received(A) == tuple(sent[-RECEIVED_KEPT:])
