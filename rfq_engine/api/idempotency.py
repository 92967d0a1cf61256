"""``Idempotency-Key`` decided once per (user, key), also under concurrent requests.

The first request under a key *claims* it, synchronously (no ``await`` between looking
the key up and taking it), and alone decides what the key names: an RFQ stored earlier
under it, or the one it creates. Every concurrent request under the same key waits for
that decision and then compares its own body with the RFQ the key names: the same is a
replay (``200``, ``Idempotent-Replayed: true``), a different one ``409``. So exactly one
request answers ``201``, and none answers with another request's RFQ. When the deciding
request fails (a ``422``, the kill switch), nothing is named and a waiter decides again.

Decided keys are remembered for ``ttl_s`` seconds, at most ``max_keys`` of them, the
oldest forgotten first; a key in flight is never forgotten. A forgotten key still replays:
the store keeps each RFQ's ``client_rfq_id`` and answers the lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Claim", "IdempotencyMap", "Named"]

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Named:
    """What a key names: the RFQ and the spec it was created with."""

    rfq_id: str
    spec: dict[str, Any]


@dataclass(slots=True)
class Claim:
    """A key being decided. ``owner``: this request decides it."""

    key: Key
    owner: bool
    decided: asyncio.Future[Named | None] = field(repr=False)

    async def wait(self) -> Named | None:
        """What the owner decided, or None when it failed (the key names nothing)."""
        await asyncio.wait({self.decided})  # a waiter's cancellation never cancels the owner
        return None if self.decided.cancelled() else self.decided.result()


class IdempotencyMap:
    def __init__(self, *, ttl_s: float, max_keys: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.clock = clock
        self._in_flight: dict[Key, Claim] = {}
        self._decided: OrderedDict[Key, tuple[float, Named]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._decided)

    def claim(self, user: str, key: str) -> Claim | Named:
        """What ``key`` already names, the claim of the request deciding it now, or a new
        claim this request owns. Synchronous: two requests can never both own a key."""
        k = (user, key)
        self._prune()
        decided = self._decided.get(k)
        if decided is not None:
            return decided[1]
        pending = self._in_flight.get(k)
        if pending is not None:
            return Claim(k, False, pending.decided)
        claim = Claim(k, True, asyncio.get_running_loop().create_future())
        self._in_flight[k] = claim
        return claim

    def decide(self, claim: Claim, named: Named) -> None:
        assert claim.owner
        self._in_flight.pop(claim.key, None)
        self._decided[claim.key] = (self.clock(), named)
        self._decided.move_to_end(claim.key)
        if not claim.decided.done():
            claim.decided.set_result(named)
        self._prune()

    def abandon(self, claim: Claim) -> None:
        """The owner failed: the key names nothing; the waiters decide again."""
        assert claim.owner
        self._in_flight.pop(claim.key, None)
        if not claim.decided.done():
            claim.decided.set_result(None)

    def _prune(self) -> None:
        horizon = self.clock() - self.ttl_s
        decided = self._decided
        while decided and (len(decided) > self.max_keys or next(iter(decided.values()))[0] < horizon):
            decided.popitem(last=False)
