"""``rfq serve`` on a disk that stalls: the backlog stays bounded (``[engine] max_live_rfqs``).

Every POST waits until its ``rfq.submitted`` is durable (write-ahead). When the disk stops
(here every fsync of the store's files takes 6 s, ``slowfsync.c``), those POSTs wait;
before this bound every new request joined them, and a 10-minute soak's server grew by
470 MiB through a stall of 83 s (docs/performance.md). Now, with ``max_live_rfqs = 3``:

- three POSTs wait for the disk; a fourth is answered at once, 503 ``busy`` with
  ``Retry-After: 1``, the disk still stalled, and leaves nothing in the record;
- when the disk comes back the three get their 201s, and once they have ended a new RFQ
  is accepted again;
- the record verifies and holds exactly the RFQs that were accepted;
- the stall is in the log with the threads' stacks (the writer's thread in the commit).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests import serve_kit
from tests.api.conftest import auth, rfq_body
from tests.api.test_serve import write_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")]

LIMIT = 3
TERMINAL = {"filled", "partially_filled", "not_filled", "cancelled", "expired", "rejected", "failed"}
STALL_MS = 6000  # past commit_watch.STACKS_AFTER_S: the stall's stacks are logged


async def queue_depth(http: aiohttp.ClientSession) -> float:
    async with http.get("/metrics", headers=auth("erin")) as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("rfq_audit_queue_depth "))
    return float(line.split()[1])


async def cli(*args: str) -> tuple[int, str]:
    """``rfq *args``: its exit code and its stdout (stderr only when it failed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rfq_engine.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    code = await proc.wait()
    return code, out.decode() if code == 0 else out.decode() + err.decode()


async def ended(http: aiohttp.ClientSession, rfq_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"/api/v1/rfqs/{rfq_id}", headers=auth("alice")) as resp:
            state = (await resp.json())["state"]
        if state in TERMINAL:
            return
        assert time.monotonic() < deadline, f"{rfq_id} still {state}"
        await asyncio.sleep(0.05)


async def test_a_stalled_disk_bounds_the_waiting_posts_and_refuses_the_rest_at_once(
        tmp_path: Path, shim: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"\n[engine]\nmax_live_rfqs = {LIMIT}\n")
    control = tmp_path / "fsync-delay-ms"
    control.write_text("0", encoding="ascii")
    env = {**os.environ, "LD_PRELOAD": str(shim), "SLOW_FSYNC_MATCH": "serve.db",
           "SLOW_FSYNC_CONTROL": str(control)}
    with open(tmp_path / "serve.err", "wb") as err:  # noqa: ASYNC230 - the child writes it
        proc = await serve_kit.start_serve(config, stderr=err, env=env)
    try:
        base = await serve_kit.listening_on(proc)
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=30)) as http:
            control.write_text(str(STALL_MS), encoding="ascii")  # the disk stalls

            async def post(n: int) -> tuple[int, dict[str, str], dict[str, str]]:
                body = rfq_body(window_ms=200, client_rfq_id=f"stall-{n}")
                async with http.post("/api/v1/rfqs", json=body, headers=auth("alice")) as r:
                    return r.status, dict(r.headers), await r.json()

            waiting = [asyncio.ensure_future(post(n)) for n in range(LIMIT)]
            deadline = time.monotonic() + 10
            while await queue_depth(http) < LIMIT:  # the three submissions are at the disk
                assert time.monotonic() < deadline, "the POSTs never reached the store"
                assert not any(w.done() for w in waiting), [w.result() for w in waiting if w.done()]

            started = time.monotonic()
            status, headers, refused = await post(LIMIT)
            took = time.monotonic() - started
            assert status == 503 and refused["error"] == "busy", refused
            assert f"max_live_rfqs = {LIMIT}" in refused["reason"], refused
            assert headers["Retry-After"] == "1"
            assert took < STALL_MS / 1000 / 2, took  # answered, not queued behind the disk
            assert not any(w.done() for w in waiting)

            control.write_text("0", encoding="ascii")  # the disk is back
            accepted = await asyncio.gather(*waiting)
            assert [a[0] for a in accepted] == [201] * LIMIT, accepted
            for _, _, body in accepted:  # they are live until their 200 ms windows end
                await ended(http, body["rfq_id"])
            status, _, later = await post(LIMIT + 1)
            assert status == 201, later
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    err = (tmp_path / "serve.err").read_text()
    assert code == 0, err[-3000:]
    # Where the stall was spent is in the log: the writer's thread, in the events' commit.
    assert "audit store stalled: a commit has run for 5 s" in err, err[-3000:]
    assert "in commit_events" in err and "sqlite_commit.py" in err, err[-3000:]

    code, out = await cli("audit", "verify", "--config", str(config))
    assert code == 0, out
    code, out = await cli("audit", "export", "--config", str(config), "--format", "jsonl",
                          "--type", "rfq.submitted")
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines()]
    clients = sorted(e["payload"]["spec"]["client_rfq_id"] for e in events)
    assert clients == [f"stall-{n}" for n in (0, 1, 2, 4)], clients  # stall-3 was refused
