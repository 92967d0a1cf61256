"""``rfq serve`` as a real process on PostgreSQL while its database goes away and comes back
(issue 15, defect 2: the RFQ used to stay ``open``, the dealers never told, and SIGTERM
exited 0 leaving it so)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from rfq_engine.store import EventFilter, SqlAuditStore
from tests import serve_kit
from tests.api.conftest import auth, rfq_body
from tests.api.test_serve import write_config
from tests.faults.pgkit import PgDatabase

pytestmark = pytest.mark.slow
NON_TERMINAL = {"created", "pending_approval", "open", "awarding", "confirming", "unresolved"}


def serve_config(tmp_path: Path, url: str) -> Path:
    """The config of tests/api/test_serve.py, on PostgreSQL, with a checkpoint log."""
    path = write_config(tmp_path)
    store = (f'url = "{url}"\ncheckpoint_path = "{tmp_path}/audit.head"\n'
             "outage_limit_s = 60")
    text, found = re.subn(r'url = "sqlite[^"]*"', store, path.read_text(), count=1)
    assert found == 1
    path.write_text(text)
    return path


async def start_serve(config: Path) -> tuple[asyncio.subprocess.Process, str, asyncio.Future[bytes]]:
    proc = await serve_kit.start_serve(config)
    assert proc.stderr is not None
    stderr = asyncio.ensure_future(proc.stderr.read())  # drained all along: a full pipe blocks
    return proc, await serve_kit.listening_on(proc, 20), stderr


async def wait_for(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(0.05)


async def test_database_gone_during_the_window_then_back_then_sigterm(
        tmp_path: Path, pg_db: PgDatabase) -> None:
    config = serve_config(tmp_path, pg_db.url)
    proc, base, stderr = await start_serve(config)
    try:
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
            body = rfq_body(window_ms=2500, close_policy="deadline", dealers=["d1", "d2", "d3"])
            async with http.post("/api/v1/rfqs", json=body, headers=auth("alice")) as resp:
                assert resp.status == 201, await resp.text()
                rfq_id = (await resp.json())["rfq_id"]

            async def state() -> str:
                async with http.get(f"/api/v1/rfqs/{rfq_id}", headers=auth("alice")) as r:
                    return str((await r.json())["state"]) if r.status == 200 else "?"

            async def is_open() -> bool:
                return await state() == "open"

            await wait_for(is_open)
            await pg_db.refuse_connections()  # the database restarts: down for ~4 s

            async def not_ready() -> bool:
                async with http.get("/readyz") as r:
                    return r.status == 503

            await wait_for(not_ready)
            await asyncio.sleep(3.5)  # the window ends meanwhile: its events cannot commit
            async with http.get("/api/v1/readiness", headers=auth("erin")) as r:
                assert (await r.json())["checks"]["audit_writer"]["state"] == "down"
            async with http.get("/metrics", headers=auth("erin")) as r:
                assert "rfq_audit_store_up 0.0" in await r.text()
            await pg_db.allow_connections()

            async def ended() -> bool:
                return await state() not in NON_TERMINAL | {"?"}

            await wait_for(ended, timeout=30)
            async with http.post("/api/v1/rfqs", json=rfq_body(), headers=auth("alice")) as resp:
                assert resp.status == 503  # the kill switch engaged by itself
            async with http.get("/api/v1/admin/halt", headers=auth("alice")) as resp:
                halt = await resp.json()  # what the web UI's banner shows
                assert halt["halted"] and "audit store unavailable" in halt["reason"]
            async with http.get("/metrics", headers=auth("erin")) as r:
                assert "rfq_audit_store_up 1.0" in await r.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        logged = (await stderr).decode()
        assert '"level": "error"' in logged and "audit store unavailable" in logged
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    store = SqlAuditStore(pg_db.url, checkpoint_path=tmp_path / "audit.head", readonly=True)
    await store.open()
    try:
        assert not [r for r in await store.rfqs() if r.state in NON_TERMINAL]
        row = await store.get_rfq(rfq_id)
        assert row is not None and row.state == "cancelled", row
        assert "audit store unavailable" in row.reason
        types = [e.type for e in await store.events(EventFilter(rfq_id=rfq_id))]
        assert "rfq.outcome_sent" in types and "window.closed" in types, types
        told = await store.events(EventFilter(rfq_id=rfq_id, types=["rfq.outcome_sent"]))
        assert sorted(told[0].payload["notified"]) == ["d1", "d2", "d3"]
        halts = await store.events(EventFilter(types=["engine.kill_switch"]))
        assert halts and "audit store unavailable" in halts[0].payload["reason"]
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_database_gone_past_the_limit_exits_1_and_the_restart_recovers(
        tmp_path: Path, pg_db: PgDatabase) -> None:
    """Down for longer than ``outage_limit_s`` while the window's events wait: the writer
    stops, ``rfq serve`` exits 1 by itself (a supervisor restarts it); the next ``rfq
    serve``, once the database is back, ends the RFQ it finds open and tells the dealers."""
    config = serve_config(tmp_path, pg_db.url)
    config.write_text(config.read_text().replace("outage_limit_s = 60", "outage_limit_s = 1"))
    proc, base, _ = await start_serve(config)
    try:
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
            body = rfq_body(window_ms=1500, close_policy="deadline", dealers=["d1", "d2", "d3"])
            async with http.post("/api/v1/rfqs", json=body, headers=auth("alice")) as resp:
                assert resp.status == 201, await resp.text()
                rfq_id = (await resp.json())["rfq_id"]
            await asyncio.sleep(0.5)
            await pg_db.refuse_connections()
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await pg_db.allow_connections()
    again, base, _ = await start_serve(config)
    try:
        again.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(again.wait(), 30) == 0
    finally:
        if again.returncode is None:
            again.kill()
            await again.wait()
    store = SqlAuditStore(pg_db.url, checkpoint_path=tmp_path / "audit.head", readonly=True)
    await store.open()
    try:
        row = await store.get_rfq(rfq_id)
        assert row is not None and row.state not in NON_TERMINAL, row
        told = await store.events(EventFilter(rfq_id=rfq_id, types=["rfq.outcome_sent"]))
        assert told and sorted(told[-1].payload["notified"]) == ["d1", "d2", "d3"]
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_sigterm_while_the_database_is_gone_exits_1_within_its_grace(
        tmp_path: Path, pg_db: PgDatabase) -> None:
    """SIGTERM with events waiting for a store that is down: the RFQs are stopped as usual,
    the store's close retries for its grace, says what it could not write, and the process
    exits 1; what the store holds verifies, and the next start finishes the RFQ."""
    config = serve_config(tmp_path, pg_db.url)
    proc, base, stderr = await start_serve(config)
    try:
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
            body = rfq_body(window_ms=1000, close_policy="deadline", dealers=["d1", "d2", "d3"])
            async with http.post("/api/v1/rfqs", json=body, headers=auth("alice")) as resp:
                assert resp.status == 201, await resp.text()
                rfq_id = (await resp.json())["rfq_id"]
        await asyncio.sleep(0.3)
        await pg_db.refuse_connections()
        await asyncio.sleep(1.5)  # the window ends: its events wait for the store
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 1
        assert time.monotonic() - started < 40
        assert "events were not written" in (await stderr).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await pg_db.allow_connections()
    again, _, _ = await start_serve(config)
    again.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(again.wait(), 30) == 0
    store = SqlAuditStore(pg_db.url, checkpoint_path=tmp_path / "audit.head", readonly=True)
    await store.open()
    try:
        row = await store.get_rfq(rfq_id)
        assert row is not None and row.state not in NON_TERMINAL, row
        assert (await store.verify()).ok
    finally:
        await store.close()
