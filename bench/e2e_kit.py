"""Shared parts of the end-to-end benchmarks (``bench/e2e_rest.py``, ``bench/e2e_mqtt.py``).

Both run the real ``rfq serve`` in its own process and drive it over HTTP from the bench's
process: ``Serve`` writes its config and starts it, ``Api`` posts RFQs, ``Stream`` is one
WebSocket reader of ``/api/v1/stream`` that also tells when each RFQ ended, and
``read_rfqs`` reads the audit events back from the SQLite file after the run (read-only),
so that latencies are taken from the engine's own timestamps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import secrets
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rfq_engine.api.auth import hash_token  # noqa: E402
from rfq_engine.cli.mqtt_demo import stop_process  # noqa: E402

TERMINAL = frozenset({"filled", "partially_filled", "not_filled", "cancelled", "expired", "rejected",
                      "failed"})
EXPIRY = (date.today() + timedelta(days=40)).isoformat()
TOKEN = os.environ.setdefault("BENCH_TOKEN", "bench-" + secrets.token_hex(16))
"""The trader's bearer token; in the environment, so the bench's child processes share it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_listening(port: int, process: asyncio.subprocess.Process | None = None,
                         timeout: float = 60.0) -> None:
    pause = 0.005
    async with asyncio.timeout(timeout):
        while True:
            if process is not None and process.returncode is not None:
                raise RuntimeError(f"the process listening on {port} exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            writer.close()
            return


async def stop(process: asyncio.subprocess.Process, grace: float = 20.0) -> None:
    await stop_process(process, grace=grace)


def rfq_body(dealers: list[str], window_ms: int, quantity: str = "1") -> dict[str, Any]:
    return {"legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                     "expiry": EXPIRY}, "side": "sell"}],
            "direction": "sell", "quantity": quantity, "quantity_unit": "BTC", "dealers": dealers,
            "mandate": "bench", "window_ms": window_ms}


def base_config(directory: Path, dealers: list[str], *, port: int, min_quotes: int) -> dict[str, Any]:
    """An ``rfq serve`` config: SQLite FULL in ``directory``, one trader, a mandate wide enough
    for minutes of load. The caller adds ``dealers`` (and ``mqtt``)."""
    big = "100000000000"
    return {
        "engine": {"confirm_timeout_ms": 2000, "send_timeout_ms": 1000},
        "store": {"url": f"sqlite+aiosqlite:///{directory}/rfq.db", "sqlite_synchronous": "FULL"},
        "logging": {"level": "WARNING", "json": True},
        "market": {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.55"}, "rate": "0.05",
                   "basis": {"BTC": "0.06"}},
        "mandates": {"bench": {
            "underlyings": ["BTC"], "instruments": ["future"], "max_tenor_days": 200,
            "max_notional_per_rfq": big, "max_notional_per_day": big, "max_notional_per_month": big,
            "min_quotes": min_quotes, "price_tolerance_bps": "300", "approval_threshold": big,
            "dealers": {d: {"credit_limit": big} for d in dealers}}},
        "api": {"host": "127.0.0.1", "port": port, "stream_queue": 2000,
                "users": [{"name": "trader", "roles": ["trader", "ops"],  # ops: /metrics
                           "token_sha256": hash_token(TOKEN)}]},
    }


def to_toml(data: dict[str, Any]) -> str:
    """Just enough TOML for these configs (tables, arrays of tables, inline values)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    lines: list[str] = []

    def table(name: str, body: dict[str, Any], header: str) -> None:
        scalars = {k: v for k, v in body.items()
                   if not (isinstance(v, dict) and k not in ("spot", "vol", "basis"))
                   and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.append(header)
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if k in scalars:
                continue
            if isinstance(v, dict):
                table(f"{name}.{json.dumps(k)}", v, f"[{name}.{json.dumps(k)}]")
            else:
                for item in v:
                    table(f"{name}.{json.dumps(k)}", item, f"[[{name}.{json.dumps(k)}]]")

    for key, body in data.items():
        if isinstance(body, list):
            for item in body:
                table(key, item, f"[[{key}]]")
        else:
            table(key, body, f"[{key}]")
    return "\n".join(lines) + "\n"


def watch_memory(directory: str, trace: bool, every_s: float = 10.0) -> None:
    """In ``rfq serve``'s process (``BENCH_MEMORY_SERVE=<directory>``): a thread writes
    ``memory.jsonl`` there every ``every_s`` seconds: RSS, the collector's counts and
    collections per generation, and every sixth line what a full ``gc.collect()`` found and
    the RSS after it. With ``trace`` (``BENCH_TRACEMALLOC=1``) tracemalloc runs and a
    snapshot is dumped beside each full collection, for ``Snapshot.compare_to``."""
    import ctypes
    import ctypes.util
    import gc
    import threading
    import tracemalloc

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if trace:
        tracemalloc.start(8)

    def rss() -> float:
        return rss_mib(os.getpid())

    libc = ctypes.CDLL("libc.so.6")
    libsqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    libsqlite.sqlite3_memory_used.restype = ctypes.c_int64

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc.mallinfo2.restype = Mallinfo2

    def big_containers(at_least: int = 2000) -> dict[str, int]:
        """``path.attribute`` -> length, for every container held by an object of the
        engine's own classes (``rfq_engine``, ``dealer_adapters``), reached from the locals
        of the running tasks (``rfq serve`` freezes its start-up objects out of the
        collector's view, so ``gc.get_objects`` would not see them)."""
        ours = ("rfq_engine", "dealer_adapters")
        found: dict[str, int] = {}
        seen: set[int] = set()
        queue: list[tuple[str, Any, int]] = []
        for task in list(asyncio.tasks._all_tasks):
            coro: Any = task.get_coro()
            while coro is not None:
                frame = getattr(coro, "cr_frame", None)
                if frame is not None:
                    queue.extend((f"{frame.f_code.co_name}.{k}", v, 0) for k, v in frame.f_locals.items())
                coro = getattr(coro, "cr_await", None)
        while queue:
            path, obj, depth = queue.pop()
            if id(obj) in seen or depth > 5:
                continue
            seen.add(id(obj))
            if isinstance(obj, aiohttp.web.Application):
                queue.extend((f"{path}[{k.name if hasattr(k, 'name') else k}]", v, depth + 1)
                             for k, v in obj.items())
                continue
            if not type(obj).__module__.startswith(ours):
                continue
            names = dict(getattr(obj, "__dict__", {}))
            names.update({k: getattr(obj, k) for k in getattr(type(obj), "__slots__", ())
                          if isinstance(k, str) and hasattr(obj, k)})
            for name, value in names.items():
                if isinstance(value, dict | list | set | frozenset | tuple | collections.deque):
                    if len(value) >= at_least:
                        key = f"{type(obj).__qualname__}.{name}"
                        found[key] = max(found.get(key, 0), len(value))
                    if isinstance(value, list | tuple | set) and len(value) < 50:
                        queue.extend((f"{path}.{name}[]", v, depth + 1) for v in value)
                    elif isinstance(value, dict) and len(value) < 50:
                        queue.extend((f"{path}.{name}[]", v, depth + 1) for v in value.values())
                else:
                    queue.append((f"{path}.{name}", value, depth + 1))
        return dict(sorted(found.items(), key=lambda kv: -kv[1])[:30])

    def native() -> dict[str, float]:
        """glibc malloc's heap (in use, free, mmap'd) and SQLite's own memory, in MiB."""
        info = libc.mallinfo2()
        return {"malloc_in_use_mib": round(info.uordblks / 2**20, 1),
                "malloc_free_mib": round(info.fordblks / 2**20, 1),
                "malloc_mmap_mib": round(info.hblkhd / 2**20, 1),
                "sqlite_mib": round(libsqlite.sqlite3_memory_used() / 2**20, 1)}

    def run() -> None:
        begun = time.monotonic()
        with open(out / "memory.jsonl", "a", encoding="utf-8") as log:
            for n in itertools.count(1):
                time.sleep(every_s)
                line: dict[str, Any] = {
                    "t": round(time.monotonic() - begun, 1), "rss_mib": round(rss(), 1),
                    "gc_count": gc.get_count(), "gc_threshold": gc.get_threshold(),
                    "collections": [g["collections"] for g in gc.get_stats()],
                    "pymalloc_blocks": sys.getallocatedblocks(), **native()}
                if n % 6 == 0:
                    line["full_collect_found"] = gc.collect()
                    try:
                        line["big_containers"] = big_containers()
                    except Exception as exc:  # another thread's objects changed meanwhile
                        line["big_containers"] = {repr(exc): 0}
                    line["rss_after_collect_mib"] = round(rss(), 1)
                    if trace:
                        tracemalloc.take_snapshot().dump(str(out / f"snap-{n // 6:03d}.bin"))
                        line["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
                log.write(json.dumps(line) + "\n")
                log.flush()

    threading.Thread(target=run, daemon=True, name="bench-memory").start()


class Serve:
    """``rfq serve --config`` in its own process."""

    def __init__(self, directory: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.config_path = directory / "rfq.toml"
        self.config_path.write_text(to_toml(config), encoding="utf-8")
        self.port = int(config["api"]["port"])
        self.env = {**os.environ, **(env or {})}
        self.process: asyncio.subprocess.Process | None = None
        self.db = directory / "rfq.db"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        command = [str(Path(sys.executable).with_name("rfq"))]
        if os.environ.get("BENCH_PROFILE_SERVE"):  # cProfile the server into that file
            command = [sys.executable, "-c", "import cProfile, sys, time; sys.argv[0] = 'rfq'; "
                       "from rfq_engine.cli.main import main; p = cProfile.Profile(time.thread_time); "
                       "p.enable(); code = main(); p.disable(); "
                       f"p.dump_stats({os.environ['BENCH_PROFILE_SERVE']!r}); sys.exit(code)"]
        elif os.environ.get("BENCH_MEMORY_SERVE"):  # memory.jsonl (and snapshots) there
            command = [sys.executable, "-c", "import sys; sys.argv[0] = 'rfq'; sys.path.insert(0, "
                       f"{str(ROOT / 'bench')!r}); import e2e_kit; e2e_kit.watch_memory("
                       f"{os.environ['BENCH_MEMORY_SERVE']!r}, {bool(os.environ.get('BENCH_TRACEMALLOC'))}); "
                       "from rfq_engine.cli.main import main; sys.exit(main())"]
        log = open(self.directory / "serve.log", "wb")  # noqa: SIM115, ASYNC230 - the child keeps it
        self.process = await asyncio.create_subprocess_exec(
            *command, "serve", "--config", str(self.config_path), cwd=self.directory, env=self.env,
            stdout=log, stderr=log)
        await wait_listening(self.port, self.process)

    async def stop(self) -> None:
        if self.process is not None:
            await stop(self.process)

    def log_tail(self, lines: int = 20) -> str:
        text = (self.directory / "serve.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"},
                                             connector=aiohttp.TCPConnector(limit=0))

    async def close(self) -> None:
        await self.session.close()

    async def post_rfq(self, body: dict[str, Any]) -> tuple[int, float, str]:
        """``(status, milliseconds, rfq_id or the error text)``."""
        start = time.perf_counter()
        async with self.session.post(f"{self.base}/api/v1/rfqs", json=body) as response:
            data = await response.json(content_type=None)
        took = (time.perf_counter() - start) * 1000
        if response.status in (200, 201):
            return response.status, took, str(data["rfq_id"])
        return response.status, took, json.dumps(data)[:300]

    async def get(self, path: str) -> tuple[int, float]:
        start = time.perf_counter()
        async with self.session.get(f"{self.base}{path}") as response:
            await response.read()
        return response.status, (time.perf_counter() - start) * 1000


@dataclass
class Stream:
    """One WebSocket reader of the live stream. ``ended`` resolves each RFQ's future with its
    final state (the first reader in a run is given ``track=True``)."""

    port: int
    track: bool = False
    messages: int = 0
    coalesced: int = 0
    closed_with: str | None = None
    ended: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    hello: asyncio.Event = field(default_factory=asyncio.Event)

    def waiter(self, rfq_id: str) -> asyncio.Future[str]:
        future = self.ended.get(rfq_id)
        if future is None:
            future = self.ended[rfq_id] = asyncio.get_running_loop().create_future()
        return future

    def start(self, session: aiohttp.ClientSession) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(session))

    async def _run(self, session: aiohttp.ClientSession) -> None:
        url = f"http://127.0.0.1:{self.port}/api/v1/stream?token={TOKEN}"
        try:
            async with session.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    self.messages += 1
                    item = json.loads(message.data)
                    kind = item.get("type")
                    if kind == "hello":
                        self.hello.set()
                    elif kind == "rfq.changed":
                        self.coalesced += 1
                    elif self.track and kind == "rfq.state_changed":
                        to = item.get("payload", {}).get("to")
                        if to in TERMINAL:
                            future = self.waiter(str(item["rfq_id"]))
                            if not future.done():
                                future.set_result(to)
                self.closed_with = f"closed by the server, code {ws.close_code}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.closed_with = f"error {exc!r}"

    @property
    def connected(self) -> bool:
        return self.task is not None and not self.task.done() and self.closed_with is None


@dataclass
class RfqTimes:
    state: str = ""
    submitted: datetime | None = None
    opened: datetime | None = None
    sent: datetime | None = None
    ended: datetime | None = None
    quotes: list[datetime] = field(default_factory=list)
    answers: int = 0


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_rfqs(db: Path, rfq_ids: set[str] | None = None) -> dict[str, RfqTimes]:
    """Per RFQ, from the audit events in the SQLite file: when it was submitted, opened
    (``rfq.state_changed`` to ``open``), when ``rfq.sent`` was stamped, when each quote or
    decline was received (the adapter's ``received_at``), when and how it ended."""
    out: dict[str, RfqTimes] = {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT rfq_id, type, ts, payload FROM audit_events WHERE rfq_id IS NOT NULL "
                            "AND type IN ('rfq.submitted', 'rfq.state_changed', 'rfq.sent', "
                            "'quote.received', 'quote.declined') ORDER BY seq")
        for rfq_id, kind, ts, payload in rows:
            if rfq_ids is not None and rfq_id not in rfq_ids:
                continue
            times = out.setdefault(rfq_id, RfqTimes())
            data = json.loads(payload)
            if kind == "rfq.submitted":
                times.submitted = _ts(ts)
            elif kind == "rfq.state_changed":
                if data.get("to") == "open":
                    times.opened = _ts(ts)
                elif data.get("to") in TERMINAL:
                    times.state, times.ended = data["to"], _ts(ts)
            elif kind == "rfq.sent":
                times.sent = _ts(ts)
            else:
                times.answers += 1
                if kind == "quote.received":
                    times.quotes.append(_ts(data["received_at"]))
                else:
                    times.quotes.append(_ts(ts))
    return out


def ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


def row(label: str, samples: list[float], unit: str = "ms") -> str:
    if not samples:
        return f"{label:<58} (no samples)"
    return (f"{label:<58} p50 {pct(samples, 50):8.2f} {unit}  p90 {pct(samples, 90):8.2f} {unit}  "
            f"p99 {pct(samples, 99):8.2f} {unit}  n={len(samples)}")
