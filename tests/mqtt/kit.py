"""A private Mosquitto per test, the engine on ``MqttDealers``, reference bots and fake dealers.

``World`` owns everything a test starts and closes it again in the fixture's teardown:
the broker process (generated config, so the ACL and the password file are enforced),
engines, in-process ``DealerBot``s, ``rfq dealer`` processes and raw aiomqtt clients
that play a misbehaving dealer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from dealer_adapters.mqtt.adapter import MqttDealers
from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig
from dealer_adapters.mqtt.envelope import Topics, build_envelope, encode_envelope
from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_tools.bot import BotEvent, DealerBot
from dealer_tools.brokerconf import BrokerFiles, find_tool, write_broker_files
from rfq_engine.domain import DealerId, Inbound
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, EngineEvent, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import AuditStore, EventFilter
from rfq_engine.store.memory import InMemoryAuditStore
from tests.engine.conftest import mandate_config, snapshot

MOSQUITTO = os.environ.get("RFQ_MOSQUITTO") or find_tool("mosquitto") or "/usr/sbin/mosquitto"
PREFIX = "rfq/v1"
ENGINE_PASSWORD_ENV = "RFQ_TEST_ENGINE_MQTT_PASSWORD"
READY_TIMEOUT_S = 20.0
"""Generous: other test suites share this 2-core machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Desk:
    id: str
    secret: str
    password: str

    @property
    def secret_env(self) -> str:
        return f"RFQ_TEST_SECRET_{self.id.replace('-', '_').upper()}"

    @property
    def password_env(self) -> str:
        return f"RFQ_TEST_MQTT_PASSWORD_{self.id.replace('-', '_').upper()}"


class Broker:
    """One mosquitto process on a fixed port; ``kill()`` and ``start()`` again keep its data."""

    def __init__(self, files: BrokerFiles, port: int) -> None:
        self.files = files
        self.port = port
        self.log_path = files.directory / "mosquitto.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start mosquitto and poll its port (bounded backoff) until it accepts connections."""
        assert self.process is None or self.process.returncode is not None
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                MOSQUITTO, "-c", str(self.files.config), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        pause = 0.005
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited ({self.process.returncode}): {self.log()}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
                    continue
                writer.close()
                return

    async def terminate(self) -> None:
        """SIGTERM: Mosquitto saves its in-memory store and exits."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), READY_TIMEOUT_S)

    async def saved(self, marker: bytes) -> None:
        """Ask Mosquitto for a snapshot of its store now (SIGUSR1; the generated config saves
        every 60 s and at shutdown) and poll (bounded backoff) until the persistence file
        holds ``marker`` (Mosquitto stores payloads as they are, so a msg_id is a fine marker)."""
        path = self.files.persistence_dir / "mosquitto.db"
        pause = 0.002
        async with asyncio.timeout(READY_TIMEOUT_S):
            while not (path.exists() and marker in path.read_bytes()):
                if self.process is not None and self.process.returncode is None:
                    self.process.send_signal(signal.SIGUSR1)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)

    async def kill(self) -> None:
        """SIGKILL: no chance to save anything on the way out."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), READY_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@dataclass
class EngineHandle:
    engine: RfqEngine
    adapter: MqttDealers
    store: AuditStore
    events: list[EngineEvent] = field(default_factory=list)

    async def audit(self, rfq_id: str | None = None, types: list[str] | None = None) -> list[Any]:
        await self.store.flush()
        return list(await self.store.events(EventFilter(rfq_id=rfq_id, types=types)))

    async def rejections(self) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in await self.audit(types=["message.rejected"])]

    def wait_for(self, predicate: Callable[[EngineEvent], bool]) -> asyncio.Future[EngineEvent]:
        """A future resolved by the first engine event (from now on) matching ``predicate``."""
        future: asyncio.Future[EngineEvent] = asyncio.get_running_loop().create_future()

        def listen(event: EngineEvent) -> None:
            if not future.done() and predicate(event):
                future.set_result(event)

        self.engine.add_listener(listen)
        future.add_done_callback(lambda _: self.engine.remove_listener(listen))
        return future


class World:
    def __init__(self, directory: Path, desk_ids: tuple[str, ...]) -> None:
        self.directory = directory
        self.port = free_port()
        self.engine_password = secrets.token_hex(12)
        self.desks = {d: Desk(d, secrets.token_hex(16), secrets.token_hex(12)) for d in desk_ids}
        self.market: MarketSnapshot = snapshot()
        self.engines: list[EngineHandle] = []
        self.bots: list[DealerBot] = []
        self.adapters: list[MqttDealers] = []
        self.processes: list[asyncio.subprocess.Process] = []
        self._stack = contextlib.AsyncExitStack()
        files = write_broker_files(
            directory / "broker", broker=self.broker_config(), engine_password=self.engine_password,
            dealer_passwords={d.id: d.password for d in self.desks.values()}, bind="127.0.0.1",
            run_as="root" if os.geteuid() == 0 else None, source="tests/mqtt")
        self.broker = Broker(files, self.port)

    # ------------------------------------------------------------------ configuration

    def broker_config(self, **overrides: Any) -> MqttBrokerConfig:
        base: dict[str, Any] = {"port": self.port, "prefix": PREFIX, "password_env": ENGINE_PASSWORD_ENV,
                                "connect_timeout_s": 5.0, "reconnect_initial_ms": 50, "reconnect_max_ms": 400}
        base.update(overrides)
        return MqttBrokerConfig.model_validate(base)

    def environ(self) -> dict[str, str]:
        env = {ENGINE_PASSWORD_ENV: self.engine_password}
        for desk in self.desks.values():
            env[desk.secret_env] = desk.secret
            env[desk.password_env] = desk.password
        return env

    def topics(self) -> Topics:
        return Topics(PREFIX)

    # ------------------------------------------------------------------ parties

    async def engine(self, *, dealers: tuple[str, ...] | None = None, confirm_timeout_ms: int = 1000,
                     min_quotes: int = 1, store: AuditStore | None = None) -> EngineHandle:
        ids = dealers or tuple(self.desks)
        if store is None:
            store = InMemoryAuditStore()
            await store.open()
        adapter = MqttDealers(
            self.broker_config(),
            {DealerId(d): MqttDealerConfig(secret_env=self.desks[d].secret_env) for d in ids},
            environ=self.environ(),
        )
        limits = {d: {"credit_limit": "1000000000"} for d in ids}
        engine = RfqEngine(
            store=store, adapters=[adapter],
            mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits, min_quotes=min_quotes))},
            reference=ModelReferenceProvider(self.market, max_age=timedelta(minutes=5)),
            config=EngineConfig(confirm_timeout_ms=confirm_timeout_ms))
        handle = EngineHandle(engine, adapter, store)
        engine.add_listener(handle.events.append)
        await engine.start()
        self.engines.append(handle)
        return handle

    async def adapter(self, sink: Callable[[Inbound], None], *, dealers: tuple[str, ...] | None = None,
                      **broker: Any) -> MqttDealers:
        """A bare engine-side ``MqttDealers`` (no engine) handing every inbound message to ``sink``;
        one at a time per world (its client id is the engine's)."""
        ids = dealers or tuple(self.desks)
        adapter = MqttDealers(
            self.broker_config(**broker),
            {DealerId(d): MqttDealerConfig(secret_env=self.desks[d].secret_env) for d in ids},
            environ=self.environ(),
        )
        self.adapters.append(adapter)
        await adapter.start(sink)
        return adapter

    async def bot(self, desk_id: str, *, answer_queries: bool = True, **quoting: Any) -> DealerBot:
        desk = self.desks[desk_id]
        settings: dict[str, Any] = {"latency_ms": 20, "latency_jitter_ms": 0, "confirm_latency_ms": 5,
                                    "seed": len(self.bots) + 1}
        settings.update(quoting)
        market = self.market
        bot = DealerBot(DealerId(desk_id), secret=desk.secret.encode(),
                        broker=self.broker_config(password_env=None),
                        password=desk.password, quoting=SimulatedDealerConfig.model_validate(settings),
                        market=lambda: market, answer_queries=answer_queries)
        self.bots.append(bot)
        assert await bot.start(), "the bot did not connect"
        return bot

    async def raw(self, desk_id: str, *, password: str | None = None) -> aiomqtt.Client:
        """A plain MQTT client logged in as ``desk_id``: a dealer that misbehaves on purpose."""
        desk = self.desks[desk_id]
        client = aiomqtt.Client("127.0.0.1", self.port, username=desk_id,
                                password=desk.password if password is None else password,
                                identifier=desk_id, clean_session=True,
                                socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
        await self._stack.enter_async_context(client)
        return client

    def envelope(self, desk_id: str, msg_type: str, body: dict[str, Any], *, dealer_id: str | None = None,
                 secret: str | None = None, msg_id: str | None = None) -> bytes:
        """A signed envelope as ``desk_id`` would send it (every part can be falsified)."""
        key = (secret if secret is not None else self.desks[desk_id].secret).encode()
        return encode_envelope(build_envelope(msg_type, body, dealer_id=dealer_id or desk_id, secret=key,
                                              msg_id=msg_id))

    async def dealer_process(self, desk_id: str, **quoting: Any) -> asyncio.subprocess.Process:
        """``rfq dealer --config ...`` as a child process (stderr: its JSON log lines)."""
        desk = self.desks[desk_id]
        settings = {"latency_ms": 20, "latency_jitter_ms": 0, "confirm_latency_ms": 5, "seed": 7, **quoting}
        lines = [f'[dealer]\nid = "{desk_id}"\nsecret_env = "{desk.secret_env}"\n',
                 f'[mqtt]\nport = {self.port}\nprefix = "{PREFIX}"\npassword_env = "{desk.password_env}"\n'
                 'reconnect_initial_ms = 50\nreconnect_max_ms = 400\n',
                 "[quoting]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items()),
                 '[market]\nspot = { BTC = "40000" }\nvol = { BTC = "0.5" }\nrate = "0.05"\n',
                 '[logging]\nlevel = "INFO"\njson = true\n']
        path = self.directory / f"{desk_id}.toml"
        path.write_text("\n".join(lines), encoding="utf-8")
        env = {**os.environ, **self.environ(), "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rfq_engine.cli.main", "dealer", "--config", str(path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env, cwd=self.directory)
        self.processes.append(process)
        return process

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        for handle in self.engines:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.engine.stop(), 15)
        for adapter in self.adapters:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(adapter.close(), 10)
        for bot in self.bots:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.close(), 10)
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 10)
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        with contextlib.suppress(Exception):
            await self.broker.kill()
        for handle in self.engines:
            with contextlib.suppress(Exception):
                await handle.store.close()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


async def read_until(process: asyncio.subprocess.Process, needle: str,
                     timeout: float = READY_TIMEOUT_S) -> str:
    """Read the child's stderr line by line until one contains ``needle``; returns that line."""
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await process.stderr.readline()
            if not raw:
                tail = "".join(seen[-30:])
                raise AssertionError(f"the process ended before {needle!r}; it wrote:\n{tail}")
            line = raw.decode(errors="replace")
            seen.append(line)
            if needle in line:
                return line


def bot_events(bot: DealerBot) -> asyncio.Queue[BotEvent]:
    """Everything ``bot`` does from now on, as a queue."""
    queue: asyncio.Queue[BotEvent] = asyncio.Queue()
    bot.listeners.append(queue.put_nowait)
    return queue


async def next_event(queue: asyncio.Queue[BotEvent], kind: str, msg_type: str = "",
                     timeout: float = READY_TIMEOUT_S) -> BotEvent:
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            if event.kind == kind and (not msg_type or event.msg_type == msg_type):
                return event
