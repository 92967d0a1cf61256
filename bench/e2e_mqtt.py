"""End to end over MQTT: REST in, 10 desks over MQTT in another process, a real Mosquitto.

    .venv/bin/python bench/e2e_mqtt.py                         # 200 RFQs one at a time, 15 s at 64 in flight
    .venv/bin/python bench/e2e_mqtt.py --rfqs 100 --in-flight 8 64 --seconds 15
    .venv/bin/python bench/e2e_mqtt.py --broker-config old     # the broker config as generated before
    .venv/bin/python bench/e2e_mqtt.py --desk-processes 5      # two desks a process

What runs, each in its own process: a private Mosquitto started from the files ``rfq
broker-config`` writes (``write_broker_files``: password file, ACL, persistence,
``set_tcp_nodelay``); ``rfq serve`` with 10 ``kind = "mqtt"`` dealers and SQLite FULL; ten
reference dealer bots (``dealer_tools.bot.DealerBot``, answering at once: latency 0,
last-look reject rate 0.02) in one process, or spread over ``--desk-processes``; and this
process, which posts RFQs to the API and follows the live stream to know when each ended.

**Floor**, measured in the same run on the same broker: a raw aiomqtt QoS 1 round trip
(TCP_NODELAY on) from this process to an echo client in the desks' process and back:
publish ``bench/floor/ping``, the echo publishes ``bench/floor/pong``, both QoS 1. During
the one-at-a-time phase one floor sample is taken before every RFQ.

**RFQ -> all quotes**: from the engine's audit events read back from its SQLite file: from
the RFQ's ``rfq.state_changed`` to ``open`` (durable before anything is sent) to the
``received_at`` of the 10th answer. It is also shown from ``rfq.sent``, and how many
answers were received before ``rfq.sent`` was stamped.

**Throughput**: ``--in-flight`` RFQs outstanding for ``--seconds``: accepted, completed and
filled per second, the share of completed RFQs that filled, ``rfq.new`` sends that failed
(``rfq.sent`` ``failed``), aiomqtt's "pending publish calls" warnings in the engine's and the
desks' logs, and Mosquitto's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import secrets
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiomqtt
from e2e_kit import (
    Api,
    RfqTimes,
    Serve,
    Stream,
    base_config,
    cpu_s,
    load_average,
    ms,
    pct,
    read_rfqs,
    rfq_body,
    row,
    stop,
    wait_listening,
)
from e2e_kit import free_port as free_port_

from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_tools.brokerconf import find_tool, write_broker_files

DESKS = [f"desk-{i:02d}" for i in range(10)]
FLOOR_USERS = ("floor-a", "floor-b")
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
OLD_PERSISTENCE = ("autosave_on_changes true\nautosave_interval 1\n")
TARGET_RATIO = 1.5
TARGET_FILLED_PER_S = 150
TARGET_FILL_SHARE = 95.0


# ----------------------------------------------------------------------------- the desks' process

async def run_desks(spec_path: str, part: int) -> None:
    """This process's share of the ten reference bots (desk ``i`` runs in process ``i %
    --desk-processes``) and, in process 0, the floor's echo client."""
    import structlog

    from dealer_adapters.simulated.config import SimulatedDealerConfig
    from dealer_tools.bot import BotEvent, DealerBot
    from rfq_engine.domain import DealerId, utc_now
    from rfq_engine.pricing.config import MarketConfig

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(Path(spec_path).read_text())  # noqa: ASYNC240 - before anything runs
    broker = MqttBrokerConfig(port=spec["port"], reconnect_initial_ms=50)
    market = MarketConfig.model_validate(spec["market"])
    quoting = SimulatedDealerConfig.model_validate(spec["quoting"])
    bots = [DealerBot(DealerId(d), secret=spec["secrets"][d].encode(), broker=broker,
                      password=spec["passwords"][d], quoting=quoting.model_copy(update={"seed": i}),
                      market=lambda: market.to_snapshot(utc_now()))
            for i, d in enumerate(DESKS) if i % spec["processes"] == part]
    seen: list[str] = []  # when a desk had read (and verified) each rfq.new: the breakdown

    def traced(event: BotEvent) -> None:
        if event.kind == "received" and event.msg_type == "rfq.new":
            seen.append(f"{time.time():.6f} {event.rfq_id}")

    for bot in bots:
        bot.listeners.append(traced)
    for bot in bots:
        assert await bot.start(), "a desk could not connect"
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    loop.add_signal_handler(signal.SIGTERM, stop_event.set)
    if part != 0:
        print("ready", flush=True)
        await stop_event.wait()
    else:
        await echo_floor(spec, stop_event)
    for bot in bots:
        await bot.close()
    Path(f"{spec['trace']}.{part}").write_text("\n".join(seen))  # noqa: ASYNC240 - all stopped


async def echo_floor(spec: dict[str, Any], stop_event: asyncio.Event) -> None:
    """The floor's far end: answers each ping with a pong, both QoS 1, until stopped."""
    echo = aiomqtt.Client("127.0.0.1", spec["port"], username="floor-b",
                          password=spec["passwords"]["floor-b"], identifier="floor-b",
                          socket_options=(NODELAY,))
    async with echo:
        await echo.subscribe("bench/floor/ping", qos=1)
        print("ready", flush=True)

        async def pong() -> None:
            async for message in echo.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                await echo.publish("bench/floor/pong", payload, qos=1)

        task = asyncio.get_running_loop().create_task(pong())
        await stop_event.wait()
        task.cancel()


# ----------------------------------------------------------------------------- the bench's process

class Floor:
    """The raw aiomqtt QoS 1 round trip: ping from here, pong from the desks' process."""

    def __init__(self, port: int, password: str) -> None:
        self.client = aiomqtt.Client("127.0.0.1", port, username="floor-a", password=password,
                                     identifier="floor-a", socket_options=(NODELAY,))
        self.waiting: dict[bytes, asyncio.Future[float]] = {}
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.__aenter__()
        await self.client.subscribe("bench/floor/pong", qos=1)
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages:
            now = time.perf_counter()
            payload = bytes(message.payload) if isinstance(message.payload, bytes) else b""
            future = self.waiting.pop(payload, None)
            if future is not None and not future.done():
                future.set_result(now)

    async def sample(self, record: bool = True) -> float:
        token = secrets.token_hex(200).encode()  # ~400 bytes, an envelope's size
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[token] = future
        start = time.perf_counter()
        await self.client.publish("bench/floor/ping", token, qos=1)
        took = (await asyncio.wait_for(future, 10) - start) * 1000
        if record:
            self.samples.append(took)
        return took

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.client.__aexit__(None, None, None)


def warnings_in(path: Path) -> int:
    try:
        return path.read_text(errors="replace").count("pending publish calls")
    except OSError:
        return 0


async def one_at_a_time(api: Api, tracker: Stream, floor: Floor, rfqs: int, warmup: int,
                        window_ms: int) -> list[str]:
    timed: list[str] = []
    for i in range(warmup + rfqs):
        await floor.sample(record=i >= warmup)
        status, _, rfq_id = await api.post_rfq(rfq_body(DESKS, window_ms))
        if status not in (200, 201):
            raise RuntimeError(f"POST /rfqs answered {status}: {rfq_id}")
        await asyncio.wait_for(tracker.waiter(rfq_id), 30)
        if i >= warmup:
            timed.append(rfq_id)
    return timed


async def sustained(api: Api, tracker: Stream, in_flight: int, seconds: float,
                    window_ms: int) -> dict[str, Any]:
    started = time.perf_counter()
    until = started + seconds
    accepted: list[str] = []
    completed: list[tuple[float, str, str]] = []
    refused = 0
    post_ms: list[float] = []

    async def worker() -> None:
        nonlocal refused
        while time.perf_counter() < until:
            status, took, rfq_id = await api.post_rfq(rfq_body(DESKS, window_ms))
            post_ms.append(took)
            if status not in (200, 201):
                refused += 1
                await asyncio.sleep(0.05)
                continue
            accepted.append(rfq_id)
            state = await asyncio.wait_for(tracker.waiter(rfq_id), 60)
            completed.append((time.perf_counter() - started, rfq_id, state))

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    in_window = [c for c in completed if c[0] <= seconds]
    return {"in_flight": in_flight, "seconds": seconds, "accepted": accepted, "completed": completed,
            "in_window": in_window, "refused": refused, "post_ms": post_ms,
            "drain_s": time.perf_counter() - until}


def sent_failures(db: Path, rfq_ids: set[str]) -> tuple[int, int]:
    """(``rfq.new`` sends that failed, sends) over the RFQs given, from ``rfq.sent``."""
    import contextlib
    import sqlite3

    failed = total = 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        query = "SELECT rfq_id, payload FROM audit_events WHERE type = 'rfq.sent'"
        for rfq_id, payload in conn.execute(query):
            if rfq_id in rfq_ids:
                data = json.loads(payload)
                failed += len(data.get("failed") or {})
                total += len(data.get("sent") or ()) + len(data.get("failed") or {})
    return failed, total


async def bench(args: argparse.Namespace) -> None:
    mosquitto = find_tool("mosquitto")
    assert mosquitto is not None, "mosquitto is not installed"
    tmp = Path(tempfile.mkdtemp(prefix="rfq-e2e-mqtt-"))
    port, api_port = free_port_(), free_port_()
    secrets_ = {d: secrets.token_hex(16) for d in DESKS}
    passwords = {d: secrets.token_hex(12) for d in (*DESKS, *FLOOR_USERS)}
    engine_password = secrets.token_hex(12)
    broker = MqttBrokerConfig(port=port)
    files = write_broker_files(tmp / "broker", broker=broker, engine_password=engine_password,
                               dealer_passwords={d: passwords[d] for d in (*DESKS, *FLOOR_USERS)},
                               bind="127.0.0.1", run_as="root" if os.geteuid() == 0 else None,
                               log_file=tmp / "broker" / "mosquitto.log", source="bench")
    with files.acl_file.open("a") as acl:  # the floor's two clients talk on their own topics
        for user in FLOOR_USERS:
            acl.write(f"\nuser {user}\ntopic readwrite bench/floor/#\n")
    config_text = files.config.read_text()
    if args.broker_config == "old":
        lines = [ln for ln in config_text.splitlines() if not ln.startswith("autosave_")]
        config_text = "\n".join(lines) + "\n" + OLD_PERSISTENCE
        files.config.write_text(config_text)
    persistence = [ln for ln in config_text.splitlines()
                   if ln.startswith(("persistence ", "autosave_", "set_tcp_nodelay"))]
    broker_process = await asyncio.create_subprocess_exec(mosquitto, "-c", str(files.config))
    await wait_listening(port, broker_process)

    market = {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.55"}, "rate": "0.05", "basis": {"BTC": "0.06"}}
    quoting = {"latency_ms": 0, "latency_jitter_ms": 0, "confirm_latency_ms": 0, "spread_bps": "20",
               "last_look_reject_rate": 0.02, "quote_validity_ms": 5000}
    spec = tmp / "desks.json"
    trace = tmp / "desks.trace"
    spec.write_text(json.dumps({"port": port, "secrets": secrets_, "passwords": passwords,
                                "market": market, "quoting": quoting, "trace": str(trace),
                                "processes": args.desk_processes}))
    desks_log = tmp / "desks.log"
    desk_processes = []
    with desks_log.open("wb") as log:
        for part in range(args.desk_processes):
            desk_processes.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "desks", "--spec", str(spec), "--part", str(part),
                stdout=asyncio.subprocess.PIPE, stderr=log))
    for process in desk_processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.strip() == b"ready", f"the desks did not start: {line!r}"

    env = {"BENCH_ENGINE_MQTT_PASSWORD": engine_password}
    config = base_config(tmp, DESKS, port=api_port, min_quotes=1)
    config["mqtt"] = {"host": "127.0.0.1", "port": port, "password_env": "BENCH_ENGINE_MQTT_PASSWORD",
                      "reconnect_initial_ms": 50}
    config["dealers"] = []
    for d in DESKS:
        env[f"BENCH_SECRET_{d.replace('-', '_').upper()}"] = secrets_[d]
        config["dealers"].append({"id": d, "kind": "mqtt",
                                  "mqtt": {"secret_env": f"BENCH_SECRET_{d.replace('-', '_').upper()}"}})
    serve = Serve(tmp, config, env)
    await serve.start()
    api = Api(api_port)
    tracker = Stream(api_port, track=True)
    tracker.start(api.session)
    floor = Floor(port, passwords["floor-a"])
    try:
        await asyncio.wait_for(tracker.hello.wait(), 30)
        await floor.start()
        for _ in range(args.warmup):
            await floor.sample(record=False)
        # ready: every desk online and answering
        deadline = time.monotonic() + 60
        while True:
            status, _, rfq_id = await api.post_rfq(rfq_body(DESKS, args.window_ms))
            if status in (200, 201):
                await asyncio.wait_for(tracker.waiter(rfq_id), 30)
                if read_rfqs(serve.db, {rfq_id})[rfq_id].answers == len(DESKS):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the desks never all answered")
            await asyncio.sleep(0.5)

        print(f"settings {os.cpu_count()} CPUs, {platform.python_version()}, load average "
              f"{load_average()} before the run; broker: {'; '.join(persistence)}; desks in "
              f"{args.desk_processes} process(es)")
        timed = await one_at_a_time(api, tracker, floor, args.rfqs, args.warmup, args.window_ms)
        times = first = read_rfqs(serve.db, set(timed))
        opened, sent = [], []
        early = 0
        for rfq_id in timed:
            t = times[rfq_id]
            if t.opened is None or len(t.quotes) < len(DESKS):
                continue
            last = max(t.quotes)
            opened.append(ms(t.opened, last))
            if t.sent is not None:
                sent.append(ms(t.sent, last))
                early += sum(1 for q in t.quotes if q < t.sent)
        print(f"one RFQ at a time, {len(timed)} RFQs to {len(DESKS)} desks after {args.warmup} warm-up "
              f"(load average {load_average()})")
        print(row("floor  raw aiomqtt QoS 1 round trip", floor.samples))
        print(row("engine RFQ opened -> 10th answer received", opened))
        print(row("engine rfq.sent stamped -> 10th answer received", sent))
        ratio = pct(opened, 50) / pct(floor.samples, 50)
        print(f"ratio  p50 {ratio:.2f}x the floor (target <= {TARGET_RATIO}x: "
              f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); {len(timed) - len(opened)} RFQs "
              f"with fewer than 10 answers; {early} answers received before rfq.sent was stamped")

        for in_flight in args.in_flight:
            pids = {"broker": [broker_process.pid], "serve": [serve.pid],
                    "desks": [p.pid for p in desk_processes]}
            before = {k: sum(cpu_s(p) for p in ps) for k, ps in pids.items()}
            warned = warnings_in(serve.directory / "serve.log") + warnings_in(desks_log)
            result = await sustained(api, tracker, in_flight, args.seconds, args.window_ms)
            cpu = {k: sum(cpu_s(p) for p in ps) - before[k] for k, ps in pids.items()}
            warned = warnings_in(serve.directory / "serve.log") + warnings_in(desks_log) - warned
            seconds = result["seconds"]
            window = result["in_window"]
            filled = sum(1 for c in window if c[2] in ("filled", "partially_filled"))
            ids = {c[1] for c in result["completed"]}
            failed, total = sent_failures(serve.db, ids)
            share = 100 * filled / len(window) if window else 0.0
            times = read_rfqs(serve.db, ids)
            lasts = [ms(t.opened, max(t.quotes)) for t in times.values()
                     if t.opened is not None and len(t.quotes) == len(DESKS)]
            print(f"{in_flight} in flight for {seconds:g} s (load average {load_average()}):")
            print(f"  accepted {len(result['accepted']) / seconds:7.1f} RFQs/s   completed "
                  f"{len(window) / seconds:7.1f} RFQs/s   filled {filled / seconds:7.1f} RFQs/s "
                  f"(target >= {TARGET_FILLED_PER_S} at 64 in flight: "
                  f"{'met' if filled / seconds >= TARGET_FILLED_PER_S else 'NOT met'})")
            print(f"  filled {share:.1f}% of completed (target >= {TARGET_FILL_SHARE:g}%: "
                  f"{'met' if share >= TARGET_FILL_SHARE else 'NOT met'}); rfq.new sends failed "
                  f"{failed} of {total}; refused POSTs {result['refused']}; drain {result['drain_s']:.1f} s")
            print("  " + row("POST /rfqs", result["post_ms"]).strip())
            print("  " + row("RFQ opened -> 10th answer", lasts).strip())
            print(f"  CPU s over the phase: mosquitto {cpu['broker']:.1f}, rfq serve {cpu['serve']:.1f}, "
                  f"desks {cpu['desks']:.1f}; 'pending publish calls' warnings {warned}")
        print(f"stream reader: {tracker.messages} messages, "
              f"{'connected throughout' if tracker.connected else tracker.closed_with}")
    finally:
        await floor.close()
        tracker.task and tracker.task.cancel()
        await api.close()
        await serve.stop()
        for process in desk_processes:
            await stop(process)
        await stop(broker_process)
    breakdown(first, timed, trace)
    print(f"logs and store in {tmp}")


def breakdown(times: dict[str, RfqTimes], timed: list[str], trace: Path) -> None:
    """Where the one-at-a-time figure goes: engine and desks stamp the same wall clock."""
    read: dict[str, list[datetime]] = {}
    parts = sorted(trace.parent.glob(f"{trace.name}.*"))  # one file per desks process
    for line in (ln for part in parts for ln in part.read_text().splitlines()):
        stamp, rfq_id = line.split()
        read.setdefault(rfq_id, []).append(datetime.fromtimestamp(float(stamp), UTC))
    steps: dict[str, list[float]] = {}
    for rfq_id in timed:
        t, got = times.get(rfq_id), read.get(rfq_id, [])
        if t is None or t.opened is None or t.sent is None or min(len(t.quotes), len(got)) < len(DESKS):
            continue
        for name, value in (("opened -> rfq.sent stamped (the open transition's commit, 10 signings)",
                             ms(t.opened, t.sent)),
                            ("rfq.sent -> the first desk has read its rfq.new", ms(t.sent, min(got))),
                            ("first -> tenth desk has read its rfq.new",
                             ms(min(got), max(got))),
                            ("tenth desk read -> tenth answer received by the engine",
                             ms(max(got), max(t.quotes))),
                            ("first -> tenth answer received by the engine",
                             ms(min(t.quotes), max(t.quotes)))):
            steps.setdefault(name, []).append(value)
    print("where the one-at-a-time time goes (p50 / p90):")
    for name, values in steps.items():
        print(f"  {name:<76} {pct(values, 50):6.2f} / {pct(values, 90):6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["bench", "desks"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--desk-processes", type=int, default=1, choices=range(1, 11), metavar="1..10",
                        help="spread the 10 desks over this many processes (as real desks are)")
    parser.add_argument("--rfqs", type=int, default=200, help="RFQs timed one at a time")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--in-flight", type=int, nargs="*", default=[64])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each sustained phase")
    parser.add_argument("--window-ms", type=int, default=1000)
    parser.add_argument("--broker-config", choices=["generated", "old"], default="generated",
                        help="old: autosave on every change, as the generator wrote it before")
    args = parser.parse_args()
    if args.role == "desks":
        asyncio.run(run_desks(args.spec, args.part))
    else:
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
