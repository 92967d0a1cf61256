"""What the fake Binance and the fake Bybit share, written once: an order book that an IOC
order takes from (best level first, never past its limit), the scripted order outcomes their
tests use (``order_mode``), and the options fee both venues publish in the same form ("a rate
of the index, capped at a share of the option's price"). Each fake keeps its own wire shapes
(field names, envelopes, error codes and statuses); only what is the same at both lives here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from aiohttp import web

__all__ = ["Book", "Scripted", "after_match", "before_match", "option_fee"]


@dataclass
class Book:
    """One instrument's levels ``[price, amount]``: bids best (highest) first, asks best first."""

    bids: list[list[Decimal]] = field(default_factory=list)
    asks: list[list[Decimal]] = field(default_factory=list)

    @classmethod
    def of(cls, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
        return cls([[Decimal(p), Decimal(a)] for p, a in bids], [[Decimal(p), Decimal(a)] for p, a in asks])

    def take(self, buy: bool, quantity: Decimal, limit: Decimal) -> list[tuple[Decimal, Decimal]]:
        """An IOC order: ``(price, amount)`` taken from the asks (``buy``) or the bids, best first,
        up to ``quantity`` and never past ``limit``; what it takes leaves the book."""
        levels = self.asks if buy else self.bids
        taken: list[tuple[Decimal, Decimal]] = []
        left = quantity
        for level in levels:
            price, available = level
            if left <= 0 or (price > limit if buy else price < limit):
                break
            amount = min(available, left)
            taken.append((price, amount))
            level[1] = available - amount
            left -= amount
        levels[:] = [lv for lv in levels if lv[1] > 0]
        return taken

    def rows(self, side: str, depth: int) -> list[list[str]]:
        """``side`` (``bids`` or ``asks``) as the venues' depth answers carry it: strings."""
        return [[str(p), str(a)] for p, a in (self.bids if side == "bids" else self.asks)[:depth]]


def option_fee(rate: Decimal, cap: Decimal, index: Decimal, price: Decimal, amount: Decimal) -> Decimal:
    """``min(rate * index, cap * price) * amount``: Bybit's and Binance's options fee."""
    return min(rate * index, cap * price) * amount


class Scripted(Protocol):
    order_mode: str
    """``normal`` | ``slow`` (booked and filled, answered after ``slow_s``) | ``lost`` (never
    booked, answered after ``slow_s``) | ``insufficient`` | ``rate_limited`` (the next order is
    refused and books nothing; the one after is normal)."""
    slow_s: float


async def before_match(fake: Scripted, *, rate_limited: web.Response, insufficient: web.Response,
                       lost: web.Response) -> web.Response | None:
    """The venue's answer when ``order_mode`` says the order is not matched, else None."""
    if fake.order_mode == "rate_limited":
        fake.order_mode = "normal"
        return rate_limited
    if fake.order_mode == "insufficient":
        return insufficient
    if fake.order_mode == "lost":
        await asyncio.sleep(fake.slow_s)
        return lost
    return None


async def after_match(fake: Scripted) -> None:
    """``slow``: the order is booked and filled; its answer comes ``slow_s`` later."""
    if fake.order_mode == "slow":
        await asyncio.sleep(fake.slow_s)
