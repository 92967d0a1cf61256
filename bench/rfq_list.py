"""``GET /api/v1/rfqs?limit=50`` at 3,000 RFQs: before and after the query moved into the
store, beside floors measured in the same run.

    .venv/bin/python bench/rfq_list.py                                  # SQLite FULL, 3000 RFQs
    .venv/bin/python bench/rfq_list.py --rfqs 10000 --requests 300
    .venv/bin/python bench/rfq_list.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/rfq_bench

The store is filled with ``--rfqs`` RFQ lifecycles (the 14 events of
``bench/audit_throughput.py``; three requesters, two mandates, one RFQ in ten cancelled
instead of filled), then ``rfq serve``'s wiring (``open_app`` and the web app) serves it on
a localhost port, and one client in this process times requests one at a time:

- **floor**: ``GET /api/v1/me`` (the same HTTP, auth and JSON path, no store read); a bare
  ``SELECT`` of 50 rows in the API's order, and of every row, through the raw driver.
- **before**: the list handler as it was until the filters and the page moved into the
  store (commit 4f7b7bd): every RFQ loaded, filtered and sorted in Python, then cut to
  ``limit``. It is mounted beside the real one for this run only.
- **after**: the handler of today: one ``RfqQuery``, filtered, ordered and limited in SQL.

The variants take turns request by request, so a machine that slows down during the run
slows all of them alike. Before the figures, the script checks that before and after answer
the same RFQs. The PostgreSQL database must exist and be empty (nothing is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer
from audit_throughput import rfq_lifecycle  # bench/: this directory is on sys.path
from calibrate import python_speed_ms

from rfq_engine.api.app import create_web_app
from rfq_engine.api.auth import hash_token, require
from rfq_engine.api.body import query_int
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.serialize import json_response, row
from rfq_engine.config import parse_config
from rfq_engine.store import EventFilter, SqlAuditStore
from rfq_engine.wiring import open_app

REQUESTERS = ("treasury-desk", "mining-ops", "prop-desk")
MANDATES = ("hedge-2026", "treasury")
PAGE_SQL = "SELECT * FROM rfqs ORDER BY created_at DESC, rfq_id DESC LIMIT 50"
ALL_SQL = "SELECT * FROM rfqs"
BEFORE = "/api/v1/bench/rfqs-before"


@require("rfq:read")
async def list_before(request: web.Request) -> web.Response:
    """``GET /api/v1/rfqs`` as commit 4f7b7bd had it (``git show 4f7b7bd:rfq_engine/api/rfqs.py``)."""
    app = request.app[APP_KEY]
    states = request.query.getall("state", []) or None
    limit = query_int(request, "limit", 200, 1, 1000)
    rows = await app.store.rfqs(states=states, limit=None)
    requester = request.query.get("requester")
    mandate = request.query.get("mandate")
    picked = [r for r in rows if (requester is None or r.requester == requester)
              and (mandate is None or r.mandate == mandate)]
    picked.sort(key=lambda r: r.created_at, reverse=True)
    return json_response({"rfqs": [row(r) for r in picked[:limit]]})


def workload(count: int) -> list[tuple[str | None, str, str, dict[str, Any]]]:
    events = []
    for n in range(count):
        lifecycle = rfq_lifecycle(n)
        requester, mandate = REQUESTERS[n % 3], MANDATES[n % 5 % 2]
        rfq_id, _, _, submitted = lifecycle[0]
        submitted["spec"].update(requester=requester, mandate=mandate)
        lifecycle[0] = (rfq_id, "rfq.submitted", requester, submitted)
        if n % 10 == 0:  # cancelled while quotes were coming in
            lifecycle = [*lifecycle[:5], (rfq_id, "rfq.state_changed", "engine", {
                "from": "open", "to": "cancelled", "reason": f"cancelled by {requester}"})]
        events += lifecycle
    return events


async def fill_store(url: str, count: int) -> tuple[int, float]:
    events = workload(count)
    started = time.perf_counter()
    async with SqlAuditStore(url) as store:  # the checkpoint where the app will look for it
        if await store.events(EventFilter(limit=1)):
            sys.exit(f"{url} already holds events: give the benchmark an empty database")
        for i, (rfq_id, type_, actor, payload) in enumerate(events):
            store.append(rfq_id, type_, actor, payload)
            if i % 5000 == 4999:
                await store.flush()
        await store.flush()
        assert len(await store.rfqs()) == count
    return len(events), time.perf_counter() - started


def config(url: str, token: str) -> dict[str, Any]:
    return {
        "store": {"url": url},
        "market": {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.5"}, "rate": "0.05"},
        "mandates": {"treasury": {
            "underlyings": ["BTC"], "instruments": ["future", "spot"], "max_tenor_days": 200,
            "min_quotes": 1, "dealers": {"d1": {"credit_limit": "100000000"}}}},
        "dealers": [{"id": "d1", "kind": "simulated", "simulated": {"seed": 1}}],
        "api": {"users": [{"name": "dave", "roles": ["compliance"],
                           "token_sha256": hash_token(token)}]},
    }


def sql_floor(url: str, db: str | None) -> Callable[[str], Awaitable[int]]:
    """A bare query through the raw driver: the rows it returns."""
    if db is not None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)

        async def sqlite_rows(sql: str) -> int:
            return len(conn.execute(sql).fetchall())

        return sqlite_rows
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pg: list[asyncpg.Connection] = []

    async def pg_rows(sql: str) -> int:
        if not pg:
            pg.append(await asyncpg.connect(dsn))
        return len(await pg[0].fetch(sql))

    return pg_rows


class Timed:
    def __init__(self, label: str, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        self.label, self.what, self.call = label, what, call
        self.seconds: list[float] = []

    async def once(self) -> None:
        started = time.perf_counter()
        await self.call()
        self.seconds.append(time.perf_counter() - started)

    def line(self) -> str:
        ms = sorted(s * 1000 for s in self.seconds)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (f"{self.label:<7}{self.what:<58} p50 {statistics.median(ms):8.2f} ms   "
                f"p99 {p99:8.2f} ms   mean {statistics.mean(ms):8.2f} ms")


async def run(args: argparse.Namespace, tmp: str) -> None:
    db = None if args.url else f"{tmp}/audit.db"
    url = args.url or f"sqlite+aiosqlite:///{db}"
    speed_before = python_speed_ms()
    load = os.getloadavg()[0]
    events, filled_in = await fill_store(url, args.rfqs)
    token = secrets.token_urlsafe(32)
    cfg = parse_config(config(url, token))
    app = await open_app(cfg, recover=False)  # the synthetic RFQs are the store's, not live ones
    web_app = create_web_app(app, cfg.api)
    web_app.router.add_get(BEFORE, list_before)
    server = TestServer(web_app)
    await server.start_server()
    rows = sql_floor(url, db)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(str(server.make_url("")), headers=headers) as http:

            async def get(path: str) -> Any:
                async with http.get(path) as resp:
                    assert resp.status == 200, (path, resp.status, await resp.text())
                    return await resp.json()

            depth = min(20, max(1, args.rfqs // 50))
            deep = "/api/v1/rfqs?limit=50"
            for _ in range(depth - 1):  # the cursor of page 20 (or the last page)
                deep = f"/api/v1/rfqs?limit=50&after={(await get(deep))['next']}"
            filtered = f"requester={REQUESTERS[1]}&state=filled&limit=50"
            for query in ("limit=50", filtered, "state=cancelled&limit=50"):
                before = await get(f"{BEFORE}?{query}")
                after = await get(f"/api/v1/rfqs?{query}")
                assert before["rfqs"] == after["rfqs"] and len(after["rfqs"]) == 50, query
            timed = [
                Timed("floor", "GET /api/v1/me (HTTP, auth, JSON; no store read)",
                      lambda: get("/api/v1/me")),
                Timed("floor", "bare SELECT ... ORDER BY created_at, rfq_id LIMIT 50",
                      lambda: rows(PAGE_SQL)),
                Timed("floor", f"bare SELECT * FROM rfqs ({args.rfqs:,} rows)",
                      lambda: rows(ALL_SQL)),
                Timed("before", "GET /rfqs?limit=50", lambda: get(f"{BEFORE}?limit=50")),
                Timed("after", "GET /rfqs?limit=50", lambda: get("/api/v1/rfqs?limit=50")),
                Timed("before", f"GET /rfqs?{filtered}", lambda: get(f"{BEFORE}?{filtered}")),
                Timed("after", f"GET /rfqs?{filtered}", lambda: get(f"/api/v1/rfqs?{filtered}")),
                Timed("after", f"GET /rfqs?limit=50&after=<next> (page {depth})",
                      lambda: get(deep)),
            ]
            for _ in range(args.warmup):
                for t in timed:
                    await t.call()
            for _ in range(args.requests):
                for t in timed:  # in turns: a slower machine mid-run slows every variant
                    await t.once()
    finally:
        await server.close()
        await app.close()
    kind = "PostgreSQL" if db is None else "SQLite synchronous=FULL"
    print(f"store    {kind}: {args.rfqs:,} RFQs ({events:,} events) written in {filled_in:.1f} s")
    print(f"settings {os.cpu_count()} CPUs, load average {load:.2f} before the run; "
          f"{args.requests} requests per line, one at a time, after {args.warmup} of warm-up; "
          f"python speed {speed_before:.0f} ms before (bench/calibrate.py)")
    print("check    before and after answered the same 50 RFQs for each query above")
    for t in timed:
        print(t.line())
    print(f"python   speed {python_speed_ms():.0f} ms after the run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rfqs", type=int, default=3000, help="RFQs in the store (default 3000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per line")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per line first")
    parser.add_argument("--url", help="database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rfq-list-bench-") as tmp:
        asyncio.run(run(args, tmp))


if __name__ == "__main__":
    main()
