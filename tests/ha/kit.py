"""Two ``rfq serve --ha`` processes on a replicated PostgreSQL, with simulated and MQTT desks.

``HaWorld`` owns what a failover test starts: the database pair (pgcluster.py), a private
Mosquitto with an ``rfq dealer`` process for the MQTT desk (tests/mqtt/kit.py), and two
engines, each a real ``rfq serve --ha`` on a port of its own. The simulated desks run in
whichever engine leads, with their JSONL ledgers in the world's directory, so a desk's
book outlives the engine that died (as a real desk's does). Every desk's ledger is its
own record of what it executed; ``Outcome`` compares them with the store's fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from dealer_adapters.simulated import ExecutionRecord
from rfq_engine.store import EventFilter, SqlAuditStore
from tests.api.conftest import TOKENS, USERS
from tests.ha.netns import Netns
from tests.ha.pgcluster import ReplicatedPostgres
from tests.mqtt.kit import PREFIX, World, free_port
from tests.serve_kit import LISTENING, STANDBY, users_toml

__all__ = ["WITNESS", "Engine", "HaWorld", "Outcome", "headers"]

SIM_DESKS = {"desk-a": "15", "desk-b": "25"}
MQTT_DESK = "desk-m"
MQTT_SPREAD = "10"
NON_TERMINAL = {"created", "pending_approval", "open", "awarding", "confirming", "unresolved"}
START_TIMEOUT_S = 60.0
WITNESS = "witness.jsonl"
DB_NODES = int(os.environ.get("RFQ_HA_DB_NODES", "3"))
"""PostgreSQL nodes: a primary and two standbys, so a promoted primary has a synchronous
standby at once; 2 reproduces the pair whose failover waits for a base backup."""
CHECKPOINT_KEY = "ha-test-checkpoint-key"


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def engine_config(root: Path, url: str, mqtt: World | None, name: str) -> Path:
    """Engine ``name``'s config: the shared store and desks (the MQTT one with ``mqtt``),
    its own checkpoint log (as on its own disk) and the witness both engines publish to."""
    users = users_toml(USERS, TOKENS)
    desks = [*SIM_DESKS, *([MQTT_DESK] if mqtt is not None else [])]
    limits = "".join(f'{d} = {{ credit_limit = "100000000" }}\n' for d in desks)
    dealers = "".join(
        f'[[dealers]]\nid = "{d}"\nkind = "simulated"\n[dealers.simulated]\nlatency_ms = 20\n'
        f'latency_jitter_ms = 0\nspread_bps = "{spread}"\nconfirm_latency_ms = 30\n'
        f'seed = {i}\nledger_path = "{root / f"ledger-{d}.jsonl"}"\n'
        for i, (d, spread) in enumerate(SIM_DESKS.items(), start=1))
    transport = ""
    if mqtt is not None:
        dealers += (f'[[dealers]]\nid = "{MQTT_DESK}"\nkind = "mqtt"\n[dealers.mqtt]\n'
                    f'secret_env = "{mqtt.desks[MQTT_DESK].secret_env}"\n')
        engine_password_env = next(k for k in mqtt.environ() if "ENGINE" in k)
        transport = (f'[mqtt]\nport = {mqtt.port}\nprefix = "{PREFIX}"\n'
                     f'password_env = "{engine_password_env}"\nreconnect_initial_ms = 50\n'
                     'reconnect_max_ms = 400\n')
    path = root / f"rfq.{name}.toml"
    path.write_text(f"""
[engine]
default_window_ms = 400
confirm_timeout_ms = 800
send_timeout_ms = 500
min_quote_validity_ms = 50
reconcile_timeout_ms = 30000
reconcile_backoff_ms = 50
reconcile_backoff_max_ms = 200

[store]
url = "{url}"
outage_limit_s = 120
checkpoint_path = "{root / f"{name}.head"}"
witness_path = "{root / WITNESS}"

[logging]
level = "WARNING"
json = true

[api]
port = 0
{users}
[market]
spot = {{ BTC = "40000" }}
vol = {{ BTC = "0.5" }}
rate = "0.05"

[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future"]
max_tenor_days = 190
max_notional_per_rfq = "10000000"
min_quotes = 1
[mandates.treasury.dealers]
{limits}
{transport}{dealers}""", encoding="utf-8")
    return path


def rfq_body(dealers: list[str]) -> dict[str, Any]:
    expiry = (date.today() + timedelta(days=30)).isoformat()
    return {"legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                     "expiry": expiry}, "side": "sell"}],
            "direction": "sell", "quantity": "10", "quantity_unit": "BTC",
            "dealers": dealers, "mandate": "treasury", "window_ms": 400}


class Engine:
    """One ``rfq serve --ha`` process; its stdout lines say when it is standby and leader."""

    def __init__(self, name: str, port: int, config: Path, env: dict[str, str],
                 root: Path, *, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> None:
        self.name, self.port, self.config, self.env, self.root = name, port, config, env, root
        self.host = host
        self.prefix = prefix
        """Run the process under this (``ip netns exec NS``: on a machine of its own)."""
        self.process: asyncio.subprocess.Process | None = None
        self.leading = asyncio.Event()
        self.standing_by = asyncio.Event()
        self.starts = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        assert not self.alive
        self.leading.clear()
        self.standing_by.clear()
        self.starts += 1
        log = (self.root / f"{self.name}.{self.starts}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            *self.prefix, sys.executable, "-m", "rfq_engine.cli.main", "serve", "--config",
            str(self.config), "--ha", "--name", self.name, "--advertise", self.base,
            "--host", self.host, "--port", str(self.port),
            stdout=asyncio.subprocess.PIPE, stderr=log, env=self.env, cwd=self.root)
        log.close()
        self._reader = asyncio.ensure_future(self._read(self.process))
        await asyncio.wait_for(self.standing_by.wait(), START_TIMEOUT_S)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode():
            if line.startswith(STANDBY):
                self.standing_by.set()
            elif line.startswith(LISTENING):
                self.leading.set()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> int | None:
        if not self.alive:
            return None if self.process is None else self.process.returncode
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await self.wait()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace")[-4000:]
                       for p in sorted(self.root.glob(f"{self.name}.*.log")))


@dataclass
class Outcome:
    """What the store holds against what the desks booked, read after the engines stopped."""

    fills: dict[str, Any]
    executed: list[ExecutionRecord]
    booked: Counter[str]
    fill_events: list[str]
    open_rfqs: list[tuple[str, str]]
    rfq_ids: set[str]
    hashes: dict[int, str]
    problems: list[str] = field(default_factory=list)


class HaWorld:
    """With ``netns``, engine-0 runs on a machine of its own (netns.py) and reaches the
    database over its link; without ``mqtt``, the simulated desks only."""

    def __init__(self, root: Path, mqtt: World | None, netns: Netns | None = None) -> None:
        self.root = root
        self.mqtt = mqtt
        self.netns = netns
        listen = ("127.0.0.1",) if netns is None else ("127.0.0.1", netns.host_ip)
        self.pg = ReplicatedPostgres(tuple(free_port() for _ in range(DB_NODES)), listen)
        env = {**os.environ, **(mqtt.environ() if mqtt else {}), "PYTHONUNBUFFERED": "1",
               "RFQ_AUDIT_CHECKPOINT_KEY": CHECKPOINT_KEY}
        env.pop("RFQ_FAILPOINTS", None)
        self.env = env
        self.engines = [self._engine(name) for name in ("engine-0", "engine-1")]
        self.http: aiohttp.ClientSession | None = None
        self.acknowledged: set[str] = set()
        """Every RFQ id the API answered 201 for: durable before that answer."""
        self.seen: dict[int, str] = {}
        """seq -> hash of every event a leader served from its store before a failure."""

    def _engine(self, name: str) -> Engine:
        away = self.netns if name == "engine-0" else None
        url = self.pg.url if away is None else self.pg.url.replace("127.0.0.1", away.host_ip)
        config = engine_config(self.root, url, self.mqtt, name)
        if away is None:
            return Engine(name, free_port(), config, self.env, self.root)
        return Engine(name, free_port(), config, self.env, self.root, host=away.ns_ip,
                      prefix=away.prefix)

    async def start(self) -> None:
        await self.pg.start()
        if self.mqtt is not None:
            await self.mqtt.dealer_process(
                MQTT_DESK, spread_bps=MQTT_SPREAD,
                ledger_path=str(self.root / f"ledger-{MQTT_DESK}.jsonl"))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        first, second = self.engines
        await first.start()
        await asyncio.wait_for(first.leading.wait(), START_TIMEOUT_S)
        await second.start()

    def leader(self) -> Engine:
        leading = [e for e in self.engines if e.alive and e.leading.is_set()]
        assert len(leading) == 1, [(e.name, e.alive, e.leading.is_set()) for e in self.engines]
        return leading[0]

    async def sole_leader(self, timeout: float = 30) -> Engine:
        """The one leading engine. Right after a database failover both may say they lead:
        the one whose lock went with the old primary is deposed and stops, which takes a
        moment; this waits (bounded) for that process to exit."""
        deadline = time.monotonic() + timeout
        while True:
            leading = [e for e in self.engines if e.alive and e.leading.is_set()]
            if len(leading) <= 1:
                return self.leader()
            left = deadline - time.monotonic()
            assert left > 0, ("a deposed leader did not stop",
                              [(e.name, e.alive, e.leading.is_set()) for e in self.engines])
            exits = [asyncio.ensure_future(e.process.wait()) for e in leading if e.process is not None]
            _, pending = await asyncio.wait(exits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()

    def standby(self) -> Engine:
        return next(e for e in self.engines if e is not self.leader())

    async def get(self, engine: Engine, path: str, user: str = "dave") -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.get(engine.base + path, headers=headers(user)) as resp:
            return resp.status, await resp.json()

    async def submit(self, engine: Engine, dealers: list[str]) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.post(engine.base + "/api/v1/rfqs", json=rfq_body(dealers),
                                  headers=headers("alice")) as resp:
            body = await resp.json()
            if resp.status == 201:
                self.acknowledged.add(body["rfq_id"])
            return resp.status, body

    async def snapshot(self, engine: Engine) -> None:
        """Every event the leader serves now: acknowledged, so it must survive any failover."""
        after = max(self.seen, default=0)
        while True:
            status, body = await self.get(engine, f"/api/v1/audit/events?after_seq={after}"
                                          "&limit=10000")
            if status != 200 or not body["events"]:
                return
            for event in body["events"]:
                self.seen[int(event["seq"])] = str(event["hash"])
            after = max(self.seen)

    async def trading_resumes(self, deadline_s: float = 90,
                              engines: list[Engine] | None = None) -> tuple[Engine, float]:
        """Poll both engines (or ``engines``) until one accepts an RFQ (an admin resumes a
        kill switch the outage engaged, as runbooks/failover.md says); returns it and the
        monotonic time."""
        assert self.http is not None
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            for engine in engines or self.engines:
                if not engine.alive:
                    continue
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    status, _ = await self.submit(engine, [*SIM_DESKS])
                    if status == 201:
                        return engine, time.monotonic()
                    if status == 503 and await self._halted(engine):
                        async with self.http.post(engine.base + "/api/v1/admin/resume",
                                                  json={}, headers=headers("erin")) as resp:
                            await resp.read()
            await asyncio.sleep(0.02)
        raise AssertionError("trading did not resume: " + " | ".join(e.logs() for e in self.engines))

    async def _halted(self, engine: Engine) -> bool:
        status, body = await self.get(engine, "/api/v1/admin/halt", "alice")
        return status == 200 and bool(body.get("halted"))

    async def replace_dead(self) -> None:
        """The supervisor's part: an engine that exited is started again (as a standby)."""
        for engine in self.engines:
            if not engine.alive:
                await engine.start()

    async def settle(self, timeout: float = 90) -> None:
        """Until the leader shows no RFQ open (each ends by itself: filled or not)."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.get(await self.sole_leader(), "/api/v1/rfqs?limit=500", "alice")
            if status == 200 and not [r for r in body["rfqs"] if r["state"] in NON_TERMINAL]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"RFQs still open on the leader: {body}")
            await asyncio.sleep(0.1)

    async def outcome(self) -> Outcome:
        store = SqlAuditStore(self.pg.url, checkpoint_path=None, readonly=True)
        await store.open()
        try:
            events = await store.events(EventFilter())
            rfqs = await store.rfqs()
            fills = {f.execution_id: f for f in await store.fills()}
        finally:
            await store.close()
        records: list[ExecutionRecord] = []
        for desk in [*SIM_DESKS, MQTT_DESK]:
            path = self.root / f"ledger-{desk}.jsonl"
            if path.exists():
                records += [ExecutionRecord.from_json(line)
                            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return Outcome(
            fills=fills, executed=[r for r in records if r.confirmed],
            booked=Counter(r.execution_id for r in records),
            fill_events=[str(e.payload["execution_id"]) for e in events
                         if e.type == "fill.recorded"],
            open_rfqs=[(r.rfq_id, r.state) for r in rfqs if r.state in NON_TERMINAL],
            rfq_ids={r.rfq_id for r in rfqs}, hashes={e.seq: e.hash for e in events})

    async def close(self) -> None:
        for engine in sorted(self.engines, key=lambda e: e.leading.is_set()):  # standby first
            with contextlib.suppress(Exception):
                await engine.stop()
            if engine.alive:
                engine.kill()
                with contextlib.suppress(Exception):
                    await engine.wait()
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(self.pg.close)
