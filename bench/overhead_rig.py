"""The rig of ``engine_overhead.py``: instant dealers, the timed store, the wiring of one
engine and its store, and the disk's floor. Imported by that script (this directory is on
its ``sys.path``); see its docstring for what each part measures and why."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from dealer_adapters.protocol import ExecutionLookup, ExecutionState, InboundSink
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    Quote,
    QuoteId,
    RfqClosed,
    RfqNew,
    RfqSpec,
    new_id,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate, MandateConfig
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store.base import (
    AuditStore,
    AwardRow,
    EventFilter,
    FillQuery,
    FillRow,
    QuoteRow,
    RfqQuery,
    RfqRow,
    VerifyReport,
)
from rfq_engine.store.events import AuditEvent

ROOT = Path(__file__).resolve().parent.parent
TARGET_A_P99_MS = 2.0
TARGET_B_RFQS = 300.0
TARGET_APPEND = 20_000.0
TARGET_VERIFY = 200_000.0
_ALL = EventFilter()


# --------------------------------------------------------------------------- the dealers


class InstantDealers:
    """Every dealer answers on the next loop iteration: a quote per RFQ, a confirm per award."""

    def __init__(self, ids: Sequence[str], reference_value: Decimal, tick: Decimal) -> None:
        self._ids = tuple(DealerId(d) for d in ids)
        # dealer i quotes i+1 ticks either side of the reference: distinct prices, a clear winner
        self._prices = {
            d: (reference_value - tick * (i + 1), reference_value + tick * (i + 1))
            for i, d in enumerate(self._ids)
        }
        self._sink: InboundSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivered: dict[str, int] = {}
        self.last_quote_at: dict[str, float] = {}
        """rfq_id -> perf_counter() just before the RFQ's last quote went into the sink."""
        self.hold_last = False
        """Keep each RFQ's last quote until ``release`` (the bench lets the store go idle first)."""
        self.held: dict[str, Quote] = {}
        self.held_event = asyncio.Event()

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return self._ids

    async def start(self, sink: InboundSink) -> None:
        self._sink = sink
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._sink = None

    def is_online(self, dealer_id: DealerId) -> bool:
        return True

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._quote, dealer_id, message)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._confirm, award)

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        self._delivered.pop(message.rfq_id, None)

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        return ExecutionLookup(ExecutionState.UNKNOWN)

    def _quote(self, dealer_id: DealerId, message: RfqNew) -> None:
        if self._sink is None:
            return
        now = utc_now()
        bid, ask = self._prices[dealer_id]
        quote = Quote(message.rfq_id, dealer_id, QuoteId(new_id()), bid, ask, message.quantity,
                      now + timedelta(seconds=10), now, new_id())
        n = self._delivered.get(message.rfq_id, 0) + 1
        self._delivered[message.rfq_id] = n
        if n == len(self._ids):
            if self.hold_last:
                self.held[message.rfq_id] = quote
                self.held_event.set()
                return
            self.last_quote_at[message.rfq_id] = time.perf_counter()
        self._sink(quote)

    def release(self, rfq_id: str) -> None:
        """Deliver the held last quote of ``rfq_id`` now."""
        quote = self.held.pop(rfq_id)
        assert self._sink is not None
        self.last_quote_at[rfq_id] = time.perf_counter()
        self._sink(quote)

    def _confirm(self, award: Award) -> None:
        if self._sink is None:
            return
        self._sink(ExecutionConfirm(award.execution_id, award.rfq_id, award.quote_id, award.dealer_id,
                                    award.price, award.quantity, f"T-{award.execution_id[:12]}",
                                    utc_now(), new_id()))


# --------------------------------------------------------------------------- the timed store


class TimedStore(AuditStore):
    """An ``AuditStore`` that delegates to ``inner`` and times ``award.decided`` events."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner = inner
        self.appended = 0
        self.award_appended: dict[str, float] = {}
        self.award_durable: dict[str, float] = {}
        self.sent_durable: dict[str, asyncio.Event] = {}
        """rfq_id -> set once its ``rfq.sent`` is durable (the RFQ is then collecting quotes)."""

    def _durable(self, rfq_id: str, future: asyncio.Future[AuditEvent]) -> None:
        self.award_durable[rfq_id] = time.perf_counter()

    def append(
        self, rfq_id: str | None, type_: str, actor: str, payload: Mapping[str, Any]
    ) -> asyncio.Future[AuditEvent]:
        self.appended += 1
        if type_ == "award.decided" and rfq_id is not None:
            self.award_appended[rfq_id] = time.perf_counter()
            future = self.inner.append(rfq_id, type_, actor, payload)
            future.add_done_callback(lambda f: self._durable(rfq_id, f))
            return future
        if type_ == "rfq.sent" and rfq_id is not None:
            future = self.inner.append(rfq_id, type_, actor, payload)
            future.add_done_callback(lambda f: self.sent_durable.setdefault(rfq_id, asyncio.Event()).set())
            return future
        return self.inner.append(rfq_id, type_, actor, payload)

    # --- plain delegation
    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def flush(self) -> None:
        await self.inner.flush()

    @property
    def queue_depth(self) -> int:
        return self.inner.queue_depth

    async def events(self, flt: EventFilter = _ALL) -> list[AuditEvent]:
        return await self.inner.events(flt)

    def stream(self, flt: EventFilter = _ALL, batch: int = 5000) -> AsyncIterator[AuditEvent]:
        return self.inner.stream(flt, batch)

    async def verify(self) -> VerifyReport:
        return await self.inner.verify()

    async def find_rfq(self, requester: str, client_rfq_id: str) -> str | None:
        return await self.inner.find_rfq(requester, client_rfq_id)

    async def get_rfq(self, rfq_id: str) -> RfqRow | None:
        return await self.inner.get_rfq(rfq_id)

    async def select_rfqs(self, query: RfqQuery) -> list[RfqRow]:
        return await self.inner.select_rfqs(query)

    async def quotes(self, rfq_id: str) -> list[QuoteRow]:
        return await self.inner.quotes(rfq_id)

    async def awards(self, rfq_id: str) -> list[AwardRow]:
        return await self.inner.awards(rfq_id)

    async def select_fills(self, query: FillQuery) -> list[FillRow]:
        return await self.inner.select_fills(query)

    async def sum_notional(self, query: FillQuery) -> Decimal:
        return await self.inner.sum_notional(query)


# --------------------------------------------------------------------------- wiring


@dataclass(frozen=True)
class StoreKind:
    name: str  # memory | sqlite
    synchronous: str = "FULL"

    @property
    def label(self) -> str:
        return "memory" if self.name == "memory" else f"sqlite {self.synchronous}"


def make_store(kind: StoreKind, directory: Path) -> AuditStore:
    if kind.name == "memory":
        from rfq_engine.store.memory import InMemoryAuditStore

        return InMemoryAuditStore()
    from rfq_engine.store import open_store

    db = directory / f"bench-{kind.synchronous.lower()}-{new_id()[:8]}.db"
    store: AuditStore = open_store(f"sqlite+aiosqlite:///{db}", checkpoint_path=f"{db}.head",
                                   sqlite_synchronous=kind.synchronous)
    return store


def market() -> MarketSnapshot:
    return MarketSnapshot(spot={"BTC": Decimal(40000)}, vol={"BTC": Decimal("0.55")},
                          rate=Decimal("0.05"), basis={"BTC": Decimal("0.06")},
                          hashprice=Decimal(55), as_of=utc_now())


def dealer_ids(n: int) -> list[str]:
    return [f"dealer-{i:02d}" for i in range(n)]


def rfq_spec(dealers: Sequence[str]) -> RfqSpec:
    expiry = (utc_now().date() + timedelta(days=35)).isoformat()
    return RfqSpec.from_dict({
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": expiry}, "side": "sell"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC", "dealers": list(dealers),
        "requester": "bench", "mandate": "treasury", "window_ms": 30_000,
    })


@dataclass
class Rig:
    engine: RfqEngine
    store: TimedStore
    dealers: InstantDealers
    spec: RfqSpec

    async def close(self) -> None:
        try:
            await self.engine.stop()
        finally:
            await self.store.close()


async def build(kind: StoreKind, directory: Path, n_dealers: int) -> Rig:
    ids = dealer_ids(n_dealers)
    reference = ModelReferenceProvider(market(), max_age=None, source="bench")
    spec = rfq_spec(ids)
    value = (await reference.package_reference(spec)).value
    dealers = InstantDealers(ids, value, Decimal("0.5"))
    mandate = MandateConfig.model_validate({
        "underlyings": ["BTC"], "instruments": ["future"], "max_tenor_days": 400,
        "dealers": {d: {"credit_limit": "1000000000000000"} for d in ids},
        "min_quotes": 2, "price_tolerance_bps": "300", "max_notional_per_rfq": "10000000",
    })
    store = TimedStore(make_store(kind, directory))
    await store.open()
    engine = RfqEngine(store=store, adapters=[dealers], mandates={"treasury": Mandate("treasury", mandate)},
                       reference=reference, config=EngineConfig(confirm_timeout_ms=5000))
    await engine.start(recover=False)
    return Rig(engine, store, dealers, spec)


# --------------------------------------------------------------------------- the disk's floor


@dataclass
class Floor:
    what: str
    p50_ms: float
    p99_ms: float


def _timed(n: int, step: Callable[[int], None]) -> tuple[float, float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        step(i)
        samples.append((time.perf_counter() - start) * 1000)
    return pct(samples, 50), pct(samples, 99)


def disk_floor(directory: Path, n: int = 500) -> list[Floor]:
    """What durability costs on this disk before any of our code runs: an fsync, a bare
    SQLite WAL commit (stdlib sqlite3, one row), an atomic file replace (what the
    checkpoint does: write, fsync, rename, fsync the directory)."""
    floors: list[Floor] = []
    path = directory / "fsync.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"x" * 4096

        def fsync(_: int) -> None:
            os.write(fd, block)
            os.fsync(fd)

        floors.append(Floor("fsync of a 4 KiB append", *_timed(n, fsync)))
    finally:
        os.close(fd)
    for sync in ("FULL", "NORMAL"):
        conn = sqlite3.connect(directory / f"floor-{sync}.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload TEXT)")

            def commit(i: int, conn: sqlite3.Connection = conn) -> None:
                conn.execute("BEGIN")
                conn.execute("INSERT INTO t VALUES (?, ?)", (i, "p" * 200))
                conn.execute("COMMIT")

            floors.append(Floor(f"sqlite3 WAL commit, synchronous={sync}", *_timed(n, commit)))
        finally:
            conn.close()
    target = directory / "head"
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        def replace(i: int) -> None:
            tmp = directory / "head.tmp"
            with open(tmp, "wb") as f:
                f.write(f"{i} {'0' * 64}\n".encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            os.fsync(dir_fd)

        floors.append(Floor("atomic file replace (write, fsync, rename, fsync dir)", *_timed(n, replace)))
    finally:
        os.close(dir_fd)
    return floors


def print_floor(floors: Sequence[Floor]) -> None:
    print("disk floor (no engine, no store code), milliseconds")
    for f in floors:
        print(f"    {f.what:<56} p50 {f.p50_ms:6.3f}   p99 {f.p99_ms:6.3f}")
    print(flush=True)

def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]
