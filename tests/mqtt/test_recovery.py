"""An engine process killed after sending an award recovers the confirm sent while it was down."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from rfq_engine.domain import utc_now
from rfq_engine.store import EventFilter, open_store
from tests.mqtt.conftest import MakeWorld
from tests.mqtt.kit import PREFIX, World, bot_events, next_event

pytestmark = pytest.mark.slow

DESKS = ("desk-a", "desk-b", "desk-c")


def engine_config(world: World, db: Path) -> str:
    dealers = "".join(f'\n[[dealers]]\nid = "{d}"\nkind = "mqtt"\n[dealers.mqtt]\n'
                      f'secret_env = "{world.desks[d].secret_env}"\n' for d in DESKS)
    limits = "".join(f'{d} = {{ credit_limit = "100000000" }}\n' for d in DESKS)
    return f"""
[engine]
confirm_timeout_ms = 10000

[store]
url = "sqlite+aiosqlite:///{db}"

[logging]
level = "WARNING"
json = true

[market]
spot = {{ BTC = "40000" }}
vol = {{ BTC = "0.5" }}
rate = "0.05"

[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future"]
max_tenor_days = 190
min_quotes = 2
[mandates.treasury.dealers]
{limits}
[mqtt]
port = {world.port}
prefix = "{PREFIX}"
password_env = "{next(iter(k for k in world.environ() if "ENGINE" in k))}"
reconnect_initial_ms = 50
reconnect_max_ms = 500
{dealers}"""


async def rfq_process(world: World, *args: str, failpoints: str = "") -> asyncio.subprocess.Process:
    env = {**os.environ, **world.environ(), "PYTHONUNBUFFERED": "1"}
    env.pop("RFQ_FAILPOINTS", None)
    if failpoints:
        env["RFQ_FAILPOINTS"] = failpoints
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rfq_engine.cli.main", *args, cwd=world.directory, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_a_confirm_published_while_the_engine_was_down_becomes_the_fill(make_world: MakeWorld) -> None:
    world = await make_world()
    winner = bot_events(await world.bot("desk-a", spread_bps="10", confirm_latency_ms=300))
    await world.bot("desk-b", spread_bps="20")
    await world.bot("desk-c", spread_bps="30")
    db = world.directory / "engine.db"
    config = world.directory / "rfq.toml"
    config.write_text(engine_config(world, db))
    expiry = (utc_now().date() + timedelta(days=35)).isoformat()
    (world.directory / "rfq.json").write_text(json.dumps({
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD", "expiry": expiry},
                  "side": "sell"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC", "dealers": list(DESKS),
        "window_ms": 5000, "requester": "alice", "mandate": "treasury"}))

    # the engine sends the award to desk-a and is SIGKILLed as soon as the broker has it
    request = await rfq_process(world, "request", "--config", str(config), "--rfq", "rfq.json",
                                failpoints="award.sent")
    _, err = await asyncio.wait_for(request.communicate(), 60)
    assert request.returncode == -9, err.decode()
    # desk-a answers 0.3 s later, into the dead engine's persistent session at the broker
    confirm = await next_event(winner, "published", "execution.confirm")

    recover = await rfq_process(world, "recover", "--config", str(config))
    out, err = await asyncio.wait_for(recover.communicate(), 60)
    assert recover.returncode == 0, err.decode()
    assert "filled" in out.decode(), out.decode()

    store = open_store(f"sqlite+aiosqlite:///{db}", readonly=True)
    await store.open()
    try:
        (row,) = await store.rfqs()
        assert row.state == "filled"
        fills = await store.fills(row.rfq_id)
        assert [f.dealer_id for f in fills] == ["desk-a"]
        events = await store.events(EventFilter(rfq_id=row.rfq_id))
        confirmed = [e.payload for e in events if e.type == "execution.confirmed"]
        assert [c["source"] for c in confirmed] == ["reconciled"]
        assert fills[0].dealer_trade_id.startswith("desk-a-")
        # the redelivered message itself reached the engine before recovery had the RFQ back
        rejected = [e.payload for e in await store.events(EventFilter(types=["message.rejected"]))]
        assert [r["msg_id"] for r in rejected if r["reason"] == "unknown rfq_id"] == [confirm.msg_id]
        assert (await store.verify()).ok
    finally:
        await store.close()
