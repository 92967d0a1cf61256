"""End to end through the real ``rfq`` processes: a REST desk (tests/rest/fake_desk.py,
written from docs/dealers-rest.md) executes the award, loses the reply and answers every
lookup 503. ``rfq request`` must not fall back to the next desk: it exits 5 with the RFQ
``unresolved``; ``rfq resolve`` then records a person's decision, and the store's fills
equal the executions the desks made."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.cli.clikit import _env, config_text, rfq_body, sql, write, write_rfq
from tests.rest.fake_desk import TOKEN, FakeDesk


async def _rfq(cwd: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rfq_engine.cli.main", *args, cwd=cwd, env={**_env(), "DESK_R_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _config(db: Path, base_url: str, state_dir: Path) -> str:
    text = config_text(str(db), engine_extra=(
        "reconcile_timeout_ms = 600\nreconcile_backoff_ms = 50\nreconcile_slow_interval_ms = 200\n"
        "lookup_timeout_ms = 500\n"))
    text = text.replace("confirm_timeout_ms = 1000", "confirm_timeout_ms = 400")
    text = text.replace("min_quotes = 2", "min_quotes = 1")
    text = text.replace('desk-a = { credit_limit = "20000000" }',
                        'desk-a = { credit_limit = "20000000" }\n'
                        'desk-r = { credit_limit = "20000000" }')
    return text + f"""
[[dealers]]
id = "desk-r"
kind = "rest"
[dealers.rest]
base_url = "{base_url}"
auth = {{ scheme = "bearer", token_env = "DESK_R_TOKEN" }}
state_dir = "{state_dir}"
reconcile_interval_ms = 50
reconcile_grace_ms = 300
[dealers.rest.instruments]
future = "{{underlying}}-{{expiry_day}}{{expiry:%b%y}}"
"""


async def test_lost_reply_and_dead_lookups_end_unresolved_then_a_person_resolves(
        tmp_path: Path) -> None:
    desk = FakeDesk(bid="40500")  # desk-r quotes far above the simulated desks: it wins
    await desk.start()
    try:
        desk.lose_order_reply = True
        desk.fail_gets_for(600)
        db = tmp_path / "rfq.db"
        config = write(tmp_path / "rfq.toml", _config(db, desk.base_url, tmp_path / "rest"))
        rfq_file = write_rfq(tmp_path / "rfq.json", rfq_body(dealers=["desk-r", "desk-a"]))

        code, out, err = await _rfq(tmp_path, "request", "--config", str(config),
                                    "--rfq", str(rfq_file), "--json")
        assert code == 5, (out, err)
        assert "Do not re-send it" in err
        record = json.loads(out)
        assert record["state"] == "unresolved"
        [award] = record["awards"]
        assert award["dealer_id"] == "desk-r" and award["outcome"] == "unresolved"
        assert desk.executed_count == 1
        assert sql(db, "SELECT dealer_id, status FROM awards") == [("desk-r", "unresolved")]
        assert sql(db, "SELECT COUNT(*) FROM fills") == [(0,)]

        eid = award["execution_id"]
        refused = await _rfq(tmp_path, "resolve", record["rfq_id"], eid, "--executed",
                             "--dealer-trade-id", "R-1", "--evidence", "desk blotter",
                             "--config", str(config), "--by", "alice")  # the requester
        assert refused[0] == 1 and "someone other than" in refused[2]

        code, out, err = await _rfq(tmp_path, "resolve", record["rfq_id"], eid, "--executed",
                                    "--dealer-trade-id", "R-1", "--evidence",
                                    "desk-r blotter line 7, phoned 14:05", "--config", str(config),
                                    "--by", "carol", "--json")
        assert code == 0, (out, err)
        done = json.loads(out)
        assert done["state"] == "filled"
        [award] = done["awards"]
        assert award["resolution"]["resolved_by"] == "carol"
        assert any("resolved by carol" in step for step in award["path"])
        fills = sql(db, "SELECT dealer_id, quantity, dealer_trade_id FROM fills")
        assert [(d, t) for d, _, t in fills] == [("desk-r", "R-1")]
        assert len(fills) == desk.executed_count  # exactly one execution, recorded once
        assert sql(db, "SELECT COUNT(*) FROM awards") == [(1,)]  # desk-a never awarded

        code, out, _ = await _rfq(tmp_path, "audit", "verify", "--store",
                                  f"sqlite+aiosqlite:///{db}")
        assert code == 0, out
    finally:
        await desk.stop()
