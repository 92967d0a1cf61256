"""The risk watch's pass over a growing book: every trade read and netted again (as until the
kept book, ``rfq_engine/hedging/ledger.py``) against the kept book, beside the floor.

    .venv/bin/python bench/risk_book.py                       # 10,000 and 40,000 fills, SQLite FULL
    .venv/bin/python bench/risk_book.py --fills 60000 --new 3000

A SQLite store (FULL) is filled with ``--fills`` single-leg future fills over five dealers, each
with its RFQ's submission. Then, per size:

- **floor**: reading the ``--new`` events written since the last pass (``EventFilter(after_seq)``),
  nothing parsed or netted: what any pass must at least do.
- **every trade**: ``load_trades`` + ``risk_report(trades=...)``, the pass before the kept book:
  it grows with the book.
- **kept book**: ``TradeLedger.refresh`` + ``risk_report(book=...)`` after ``--new`` more fills:
  it grows with the new fills and the positions only.

The script checks first that both passes give the same report. Times are the median of
``--repeat`` passes; the new fills are written once per size and the kept-book pass is timed on
copies of the ledger state before them.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rfq_engine.domain.events import FillRecorded, RfqSubmitted, encode
from rfq_engine.domain.instruments import Future, instrument_to_dict
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.hedging.ledger import TradeLedger
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.risk import RiskConfig, risk_report
from rfq_engine.store import EventFilter, SqlAuditStore

TODAY = date(2026, 12, 10)
FUTURE = instrument_to_dict(Future("BTC", "USD", date(2027, 3, 26)))
SNAPSHOT = MarketSnapshot(spot={"BTC": Decimal(40000)}, vol={"BTC": Decimal("0.5")}, rate=Decimal("0.05"),
                          basis={"BTC": Decimal("0.06")}, hashprice=Decimal(55),
                          as_of=datetime(2026, 12, 10, tzinfo=UTC))
KW: dict[str, Any] = {"cfg": RiskConfig(), "snapshot": SNAPSHOT, "today": TODAY, "agreements": {},
                      "credit_lines": {}}


async def write(store: SqlAuditStore, start: int, count: int) -> None:
    for i in range(start, start + count):
        side = "buy" if i % 3 else "sell"
        rfq_id = f"rfq-{i:08d}"
        spec = {"legs": [{"instrument": FUTURE, "side": side}], "direction": side, "quantity": "1",
                "quantity_unit": "BTC", "dealers": ["d"], "requester": "alice", "mandate": "treasury"}
        store.append(rfq_id, RfqSubmitted.TYPE, "alice", encode(RfqSubmitted(spec=spec)))
        price = Decimal(40000 + i % 500)
        store.append(rfq_id, FillRecorded.TYPE, "engine", encode(FillRecorded(
            fill_id=f"fill-{i:08d}", execution_id=f"x-{i}", dealer_id=f"desk-{i % 5}", mandate="treasury",
            price=price, quantity=Decimal("1.5"), notional=price * Decimal("1.5"))))
    await store.flush()


async def timed(run: Any, repeat: int, setup: Any = None) -> float:
    times = []
    for _ in range(repeat):
        state = None if setup is None else setup()
        t0 = time.perf_counter()
        await run(state)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def detached(ledger: TradeLedger) -> TradeLedger:
    """A copy of the ledger's state, without its store."""
    store, ledger._store = ledger._store, None  # type: ignore[assignment]
    try:
        return copy.deepcopy(ledger)
    finally:
        ledger._store = store


async def measure(store: SqlAuditStore, ledger: TradeLedger, size: int, new: int, repeat: int
                  ) -> list[float]:
    """The three timings at ``size`` fills, ``new`` of them written since ``ledger``'s last pass."""
    await ledger.refresh()
    before = detached(ledger)
    after_seq = ledger.after_seq
    await write(store, size - new, new)

    async def floor(_: None) -> None:
        await store.events(EventFilter(types=[FillRecorded.TYPE, RfqSubmitted.TYPE], after_seq=after_seq))

    async def every(_: None) -> None:
        trades = await load_trades(store)
        await asyncio.to_thread(lambda: risk_report(trades=trades, **KW))

    def fresh() -> TradeLedger:
        mine = copy.deepcopy(before)
        mine._store = store
        return mine

    async def kept(mine: TradeLedger) -> None:
        await mine.refresh()
        await asyncio.to_thread(lambda: risk_report(book=mine.book, **KW))

    await ledger.refresh()
    trades = await load_trades(store)
    assert risk_report(trades=trades, **KW) == risk_report(book=ledger.book, **KW)
    assert ledger.book.fills == len(trades) == size
    return [await timed(floor, repeat), await timed(every, repeat), await timed(kept, repeat, fresh)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fills", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--new", type=int, default=1000, help="fills written between two passes")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rfq-risk-book-"))
    async with SqlAuditStore(f"sqlite+aiosqlite:///{directory / 'rfq.db'}", checkpoint_path=None) as store:
        print(f"store SQLite FULL in {directory}; {args.new} new fills a pass, median of {args.repeat}")
        print(f"{'fills':>8} {'floor: read new':>16} {'every trade':>12} {'kept book':>10}")
        written = 0
        ledger = TradeLedger(store)
        for size in sorted(args.fills):
            await write(store, written, size - args.new - written)
            floor, every, kept = await measure(store, ledger, size, args.new, args.repeat)
            written = size
            print(f"{size:>8} {floor * 1000:>13.1f} ms {every:>10.2f} s {kept * 1000:>7.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
