"""Audit store throughput: sustained durable appends/s and verified events/s.

    .venv/bin/python bench/audit_throughput.py                       # SQLite, 100k events
    .venv/bin/python bench/audit_throughput.py -n 20000 --synchronous NORMAL
    .venv/bin/python bench/audit_throughput.py --rfq-tasks 1000          # engine-like writers
    .venv/bin/python bench/audit_throughput.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/rfq_bench

Events follow a realistic RFQ lifecycle (submitted, mandate check, sent, four quotes,
ranking, award, confirm, fill, state changes; ~290 bytes of payload on average), so the
projection tables are maintained as in production; 400 RFQs are in flight at once, so
their events interleave. By default one producer streams them with up to ``--window``
appends in flight (the store's own capacity); ``--rfq-tasks N`` instead runs N RFQ tasks
that write as the engine does, awaiting decisions (write-ahead) and not observations. The
clock stops when every event is durable (future resolved after commit and checkpoint).
Then the chain is verified through a separate read-only store, as ``rfq audit verify``
does. The PostgreSQL database must exist and be empty (the script never drops anything).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibrate import python_speed_ms  # bench/calibrate.py: this directory is on sys.path

from rfq_engine.store import AuditEvent, EventFilter, SqlAuditStore

Event = tuple[str | None, str, str, dict[str, Any]]
# Decisions the engine awaits before acting (write-ahead); the rest it appends and moves on.
WRITE_AHEAD = frozenset({
    "rfq.submitted", "mandate.checked", "rfq.state_changed", "award.decided",
    "execution.confirmed", "fill.recorded",
})
DEALERS = ("dealer-alpha", "dealer-bravo", "dealer-charlie", "dealer-delta")


ORDERED_IDS = True  # --ids: time-ordered (version 7, as rfq_engine.domain.new_id) or random


def uid(kind: str, n: int, *parts: object) -> str:
    """A deterministic UUID-shaped id for RFQ number ``n``: as ``new_id`` makes them
    (version 7: the first 48 bits a millisecond clock, here RFQ ``n`` opened at 100 RFQs/s,
    the rest random-looking), or wholly random-looking (version 4's shape) with --ids random."""
    text = str(uuid.uuid5(uuid.NAMESPACE_OID, ":".join(map(str, (kind, n, *parts)))))
    if not ORDERED_IDS:
        return text
    ms = f"{1_790_000_000_000 + n * 10:012x}"
    return f"{ms[:8]}-{ms[8:]}-7{text[15:]}"


def rfq_lifecycle(n: int) -> list[Event]:
    """The 14 events one RFQ writes, from submission to fill, with the engine's payloads."""
    rfq, exe, fill = uid("rfq", n), uid("exe", n), uid("fill", n)
    qty = Decimal(25 + n % 50)
    ts = f"2026-11-21T10:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1_000_000:06d}Z"
    spec = {
        "legs": [
            {"instrument": {"kind": "future", "underlying": "BTC", "expiry": "2026-12-25"},
             "side": "buy", "ratio": "1"},
            {"instrument": {"kind": "spot", "underlying": "BTC", "quote": "USD"},
             "side": "sell", "ratio": "1"},
        ],
        "direction": "buy", "quantity": str(qty), "quantity_unit": "BTC",
        "dealers": list(DEALERS), "requester": "treasury-desk", "mandate": "hedge-2026",
        "window_ms": 5000, "allow_partial": False, "client_rfq_id": f"treasury-{n:08d}",
        "private_side": None, "limit_price": None, "settlement": "cash", "hedge": None,
        "tags": ["basis"],
    }
    reference = {"source": "deribit", "price": "412.1", "as_of": ts, "stale": False}
    verdicts = [{"rule": r, "passed": True, "reason": "within limit"}
                for r in ("notional_limit", "dealer_allowed")]
    events: list[Event] = [
        (rfq, "rfq.submitted", "treasury-desk",
         {"spec": spec, "notional": str(qty * 97000), "reference": reference}),
        (rfq, "mandate.checked", "engine", {"stage": "pre_trade", "passed": True, "verdicts": verdicts}),
        (rfq, "rfq.state_changed", "engine", {"from": "created", "to": "open",
                                               "reason": "pre-trade mandate checks passed"}),
        (rfq, "rfq.sent", "engine",
         {"deadline": ts, "window_ms": 5000, "sent": list(DEALERS), "failed": {}}),
    ]
    ranking = []
    for i, dealer in enumerate(DEALERS):
        price, quote_id = str(Decimal("412.5") + i), uid("quote", n, i)
        events.append((rfq, "quote.received", dealer, {
            "dealer_id": dealer, "quote_id": quote_id, "bid": None, "ask": price,
            "quantity": str(qty), "valid_until": ts, "received_at": ts, "msg_id": uid("msg", n, i),
        }))
        ranking.append({"rank": i + 1, "dealer_id": dealer, "quote_id": quote_id, "price": price,
                        "quantity": str(qty), "received_at": ts,
                        "verdicts": [{"rule": "quote_valid", "passed": True, "reason": ""}]})
    events += [
        (rfq, "quotes.ranked", "engine", {"side": "ask", "reference": reference, "min_quotes": verdicts[0],
                                          "ranking": ranking, "rejected": []}),
        (rfq, "award.decided", "engine", {
            "execution_id": exe, "dealer_id": DEALERS[0], "quote_id": uid("quote", n, 0),
            "side": "ask", "price": "412.5", "quantity": str(qty), "confirm_by": ts, "rank": 1,
            "reason": "best price", "cover_price": "413.5"}),
        (rfq, "award.sent", "engine", {"execution_id": exe, "dealer_id": DEALERS[0], "error": None}),
        (rfq, "execution.confirmed", DEALERS[0], {
            "execution_id": exe, "dealer_id": DEALERS[0], "price": "412.5", "quantity": str(qty),
            "dealer_trade_id": f"T{n:010d}", "msg_id": uid("msg", n, "c"), "source": "dealer"}),
        (rfq, "fill.recorded", "engine", {
            "fill_id": fill, "execution_id": exe, "dealer_id": DEALERS[0], "mandate": "hedge-2026",
            "price": "412.5", "quantity": str(qty), "notional": str(qty * Decimal("412.5")),
            "dealer_trade_id": f"T{n:010d}", "last_date": "2026-12-25"}),
        (rfq, "rfq.state_changed", "engine", {"from": "confirming", "to": "filled",
                                               "reason": "fully filled by dealer-alpha"}),
    ]
    return events


def lifecycles(total: int) -> list[list[Event]]:
    """RFQ lifecycles adding up to ``total`` events (the last one cut short)."""
    rfqs: list[list[Event]] = []
    produced = 0
    while produced < total:
        events = rfq_lifecycle(len(rfqs))[: total - produced]
        rfqs.append(events)
        produced += len(events)
    return rfqs


def interleaved(rfqs: list[list[Event]], width: int = 400) -> list[Event]:
    """The events of ``width`` RFQs at a time, interleaved as concurrent RFQs write them."""
    events: list[Event] = []
    for start in range(0, len(rfqs), width):
        group = rfqs[start : start + width]
        for step in range(max(len(g) for g in group)):
            events += [g[step] for g in group if step < len(g)]
    return events


async def append_stream(store: SqlAuditStore, events: list[Event], window: int) -> float:
    """Seconds until every event is durable, appended with at most ``window`` in flight:
    the store's own capacity, with next to no producer overhead."""
    inflight: collections.deque[asyncio.Future[AuditEvent]] = collections.deque()
    started = time.perf_counter()
    for rfq_id, type_, actor, payload in events:
        inflight.append(store.append(rfq_id, type_, actor, payload))
        if len(inflight) >= window:
            await inflight.popleft()
    await store.flush()
    return time.perf_counter() - started


async def append_rfq_tasks(store: SqlAuditStore, rfqs: list[list[Event]], tasks: int) -> float:
    """Seconds until every event is durable, written by ``tasks`` RFQ tasks at once, each
    running RFQs like the engine: decisions awaited before the RFQ moves on (write-ahead),
    observations appended and not waited for. Includes the tasks' own asyncio overhead."""
    todo = iter(rfqs)

    async def rfq_task() -> None:
        for lifecycle in todo:
            for rfq_id, type_, actor, payload in lifecycle:
                written = store.append(rfq_id, type_, actor, payload)
                if type_ in WRITE_AHEAD:
                    await written

    started = time.perf_counter()
    await asyncio.gather(*(rfq_task() for _ in range(tasks)))
    await store.flush()
    return time.perf_counter() - started


def io_bytes() -> tuple[int, int]:
    """This process's bytes read from and written to the storage layer (/proc/self/io):
    page-cache misses and what commits and checkpoints write, WAL and database alike."""
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return 0, 0
    return int(fields["read_bytes"]), int(fields["write_bytes"])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def latency_phase(store: SqlAuditStore, count: int = 200) -> list[float]:
    """An idle store, one write-ahead append at a time: the latency a decision waits."""
    latencies = []
    for i in range(count):
        t0 = time.perf_counter()
        await store.append(None, "bench.ping", "bench", {"i": i})
        latencies.append(time.perf_counter() - t0)
    return sorted(latencies)


async def run(args: argparse.Namespace, tmp: str) -> None:
    rfqs = lifecycles(args.n)
    events = interleaved(rfqs)
    sizes = [len(json.dumps(e[3], separators=(",", ":"))) for e in events]
    # The pre-built workload (~1.5M objects) is the benchmark's, not the engine's: keep it out
    # of the cyclic GC's full collections, which would otherwise bill their cost to the store.
    gc.collect()
    gc.freeze()
    if args.gc_tuned:  # as `rfq serve` does after start-up
        gc.set_threshold(50_000, 20, 100)
    url = args.url or f"sqlite+aiosqlite:///{tmp}/audit.db"
    head = f"{tmp}/audit.head"
    store = SqlAuditStore(url, checkpoint_path=head, sqlite_synchronous=args.synchronous,
                          batch_max=args.batch_max)
    await store.open()
    try:
        if await store.events(EventFilter(limit=1)):
            sys.exit(f"{url} already holds events: give the benchmark an empty database")
        load = os.getloadavg()[0]
        print(f"store      {url.split('@')[-1]}")
        sync = f"synchronous={args.synchronous} " if url.startswith("sqlite") else ""
        producer = (f"{args.rfq_tasks} RFQ tasks, write-ahead" if args.rfq_tasks
                    else f"one stream, {args.window} appends in flight")
        print(f"settings   {sync}batch_max={args.batch_max}; {producer}; "
              f"{os.cpu_count()} CPUs, load average {load:.2f} before the run, "
              f"python speed {python_speed_ms():.0f} ms (bench/calibrate.py)")
        print(f"events     {len(sizes):,} from {len(rfqs):,} RFQs, payload mean "
              f"{statistics.mean(sizes):.0f} B (median {statistics.median(sizes):.0f} B)")
        cpu_before, io_before = cpu_seconds(), io_bytes()
        if args.rfq_tasks:
            appended = await append_rfq_tasks(store, rfqs, args.rfq_tasks)
        else:
            appended = await append_stream(store, events, args.window)
        cpu = cpu_seconds() - cpu_before
        read, written = (after - before for after, before in zip(io_bytes(), io_before, strict=True))
        stats = dataclasses.replace(store.stats)
        committer = getattr(store, "_committer", None)
        wal = None if committer is None else dataclasses.replace(committer.wal.stats)
        latencies = await latency_phase(store)
    finally:
        await store.close()
    print(f"append     {len(sizes) / appended:,.0f} events/s sustained, every one durable "
          f"({appended:.2f} s; {stats.batches:,} commits, mean batch "
          f"{stats.events / max(stats.batches, 1):,.0f}, largest {stats.largest_batch:,})")
    if wal is not None:
        print(f"wal        {wal.background} checkpoints beside the writer, {wal.inline} by the "
              f"writer itself, {wal.failed} failed; {wal.last_wal_frames:,} frames at the last")
    print(f"cpu        {cpu:.2f} s of this process's CPU for the appends, "
          f"{cpu / len(sizes) * 1e6:.0f} us/event (all threads; a database server not included)")
    print(f"io         {written / len(sizes):,.0f} B written and {read / len(sizes):,.0f} B read "
          f"from the disk per event ({written / 1e6:,.0f} MB, {read / 1e6:,.0f} MB; ids {args.ids})")
    print(f"latency    one awaited append on an idle store: median "
          f"{statistics.median(latencies) * 1000:.2f} ms, p99 "
          f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms")
    async with SqlAuditStore(url, checkpoint_path=head, readonly=True) as reader:
        report = await reader.verify()
    status = "chain ok" if report.ok else f"FAILED: {report.problem}"
    print(f"verify     {report.events / report.seconds:,.0f} events/s "
          f"({report.events:,} events in {report.seconds:.2f} s, {status}, read-only store)")


def disk_usage(tmp: str, events: int) -> None:
    files = [p for p in Path(tmp).glob("audit.db*") if p.suffix not in (".head", ".lock")]
    if files:
        size = sum(p.stat().st_size for p in files)
        print(f"disk       {size / 1e6:,.1f} MB, {size / events:,.0f} B/event (rows, indexes, WAL)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--gc-tuned", action="store_true",
                        help="gc.set_threshold(50000, 20, 100), as `rfq serve` does")
    parser.add_argument("-n", type=int, default=100_000, help="events to append (default 100000)")
    parser.add_argument("--url", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous (default FULL)")
    parser.add_argument("--batch-max", type=int, default=1000, help="events per commit at most")
    parser.add_argument("--window", type=int, default=10_000,
                        help="stream producer: appends in flight at most (default 10000)")
    parser.add_argument("--rfq-tasks", type=int, default=0, metavar="N",
                        help="instead of one stream, N concurrent RFQ tasks awaiting their decisions")
    parser.add_argument("--ids", choices=("ordered", "random"), default="ordered",
                        help="id shape: time-ordered as the engine makes them (default) or random")
    args = parser.parse_args()
    global ORDERED_IDS
    ORDERED_IDS = args.ids == "ordered"
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        asyncio.run(run(args, tmp))
        disk_usage(tmp, args.n)


if __name__ == "__main__":
    main()
