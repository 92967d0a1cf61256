"""End to end over REST: the real ``rfq serve``, simulated desks, SQLite FULL, a load generator
in its own process, live-stream readers, RSS over a soak.

    .venv/bin/python bench/e2e_rest.py                      # 15 s phases, a 60 s soak
    .venv/bin/python bench/e2e_rest.py --soak 600           # the 10-minute soak
    .venv/bin/python bench/e2e_rest.py --seconds 10 --soak 30 --concurrency 64 --rate 100

Three processes: ``rfq serve`` (5 simulated desks answering in 20 +/- 10 ms, a 2% last-look
reject rate, 200 ms windows, SQLite ``synchronous=FULL``); the load generator (``--role
load``: HTTP clients and one stream reader that tells when each RFQ ended); and this one,
which starts both, keeps ``--readers`` more WebSocket readers of ``/api/v1/stream``
connected from start to end and samples the server's RSS every second.

Phases, in order:

- **floor**: ``GET /healthz`` and ``GET /api/v1/me`` one at a time (the HTTP and auth path
  with no engine work), and a bare ``sqlite3`` commit of one row with ``synchronous=FULL``
  in the store's directory (the disk's share of every durable write);
- **closed loop**: ``--concurrency`` clients each posting an RFQ and waiting for its end,
  for ``--seconds``: RFQs/s accepted and completed, POST p50/p99;
- **open loop**: ``--rate`` RFQs/s posted on a fixed schedule for ``--seconds``, whatever
  the answers: POST p50/p99 at that rate;
- **soak**: ``--rate`` RFQs/s for ``--soak`` seconds: completed RFQs/s, and RSS after the
  first fifth (warm-up) against the end.

At the end the readers' state, the share of completed RFQs that filled, and ``rfq audit
verify`` over the store (every event durable and chained).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from e2e_kit import (
    TOKEN,
    Api,
    Serve,
    Stream,
    base_config,
    cpu_s,
    free_port,
    load_average,
    pct,
    rfq_body,
    row,
    rss_mib,
    stop,
)

DESKS = [f"desk-{c}" for c in "abcde"]
WINDOW_MS = 200
TARGETS = {"completed": 200, "p99_at_100": 100.0, "filled": 95.0}


# ----------------------------------------------------------------------------- the load generator

async def closed_loop(api: Api, tracker: Stream, clients: int, seconds: float) -> dict[str, Any]:
    until = time.perf_counter() + seconds
    posts: list[float] = []
    accepted = completed = refused = 0
    states: list[str] = []

    async def client() -> None:
        nonlocal accepted, completed, refused
        while time.perf_counter() < until:
            status, took, rfq_id = await api.post_rfq(rfq_body(DESKS, WINDOW_MS))
            posts.append(took)
            if status not in (200, 201):
                refused += 1
                await asyncio.sleep(0.05)
                continue
            accepted += 1
            state = await asyncio.wait_for(tracker.waiter(rfq_id), 60)
            if time.perf_counter() <= until:
                completed += 1
                states.append(state)

    await asyncio.gather(*(client() for _ in range(clients)))
    return {"accepted": accepted / seconds, "completed": completed / seconds, "refused": refused,
            "post_p50": pct(posts, 50), "post_p99": pct(posts, 99), "posts": len(posts),
            "states": dict(Counter(states))}


async def open_loop(api: Api, tracker: Stream, rate: float, seconds: float) -> dict[str, Any]:
    start = time.perf_counter()
    posts: list[float] = []
    by_minute: dict[int, list[float]] = {}  # POST latencies by the minute they were sent in
    ended: list[tuple[float, str]] = []
    refused = 0
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        nonlocal refused
        sent = time.perf_counter() - start
        status, took, rfq_id = await api.post_rfq(rfq_body(DESKS, WINDOW_MS))
        posts.append(took)
        by_minute.setdefault(int(sent // 60), []).append(took)
        if status not in (200, 201):
            refused += 1
            return
        state = await asyncio.wait_for(tracker.waiter(rfq_id), 120)
        ended.append((time.perf_counter() - start, state))

    n = 0
    while (due := start + n / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.get_running_loop().create_task(one()))
        n += 1
    late = time.perf_counter() - (start + seconds)
    await asyncio.gather(*tasks, return_exceptions=True)
    in_window = [e for e in ended if e[0] <= seconds]
    return {"rate": rate, "posted": n, "refused": refused, "post_p50": pct(posts, 50),
            "post_p99": pct(posts, 99), "completed": len(in_window) / seconds,
            "p99_by_minute": [pct(by_minute[m], 99) for m in sorted(by_minute)],
            "states": dict(Counter(s for _, s in ended)), "schedule_late_s": late}


async def run_load(port: int, args: argparse.Namespace) -> None:
    api = Api(port)
    tracker = Stream(port, track=True)
    tracker.start(api.session)
    out: dict[str, Any] = {}
    try:
        await asyncio.wait_for(tracker.hello.wait(), 30)
        for _ in range(20):  # warm-up
            _, _, rfq_id = await api.post_rfq(rfq_body(DESKS, WINDOW_MS))
            await asyncio.wait_for(tracker.waiter(rfq_id), 30)
        health, me = [], []
        for _ in range(200):
            health.append((await api.get("/healthz"))[1])
            me.append((await api.get("/api/v1/me"))[1])
        out["floor"] = {"healthz": health, "me": me}
        print(json.dumps({"phase": "floor", **out["floor"]}), flush=True)
        result = await closed_loop(api, tracker, args.concurrency, args.seconds)
        print(json.dumps({"phase": "closed", **result}), flush=True)
        result = await open_loop(api, tracker, args.rate, args.seconds)
        print(json.dumps({"phase": "open", **result}), flush=True)
        if args.soak > 0:
            result = await open_loop(api, tracker, args.rate, args.soak)
            print(json.dumps({"phase": "soak", **result}), flush=True)
        print(json.dumps({"phase": "tracker", "messages": tracker.messages, "coalesced": tracker.coalesced,
                          "connected": tracker.connected, "closed_with": tracker.closed_with}), flush=True)
    finally:
        if tracker.task is not None:
            tracker.task.cancel()
        await api.close()


# ----------------------------------------------------------------------------- the bench's process

def disk_floor(directory: Path, n: int = 200) -> list[float]:
    path = directory / "floor.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        took = []
        for i in range(n):
            start = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
            conn.execute("COMMIT")
            took.append((time.perf_counter() - start) * 1000)
    path.unlink()
    return took


class DiskProbe:
    """The disk's own latency beside the store, all along the run: every 100 ms a thread of
    this process writes 4 KiB to a file in the store's directory and fdatasyncs it. A commit
    stall that this probe saw too (at the same moment) is the disk's, not the engine's."""

    def __init__(self, directory: Path, every_s: float = 0.1) -> None:
        self.path, self.every_s = directory / "disk-probe", every_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, latency s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        started, block = time.monotonic(), b"p" * 4096
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.wait(self.every_s):
                t0 = time.monotonic()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                self.samples.append((t0 - started, time.monotonic() - t0))
        finally:
            os.close(fd)

    def line(self) -> str:
        took = sorted(s for _, s in self.samples)
        if not took:
            return "disk probe: no samples"
        worst_at, worst = max(self.samples, key=lambda s: s[1])
        slow = sum(1 for s in took if s > 0.5)
        return (f"disk probe (4 KiB write + fdatasync every {self.every_s * 1000:.0f} ms beside the "
                f"store, {len(took)} samples): p50 {took[len(took) // 2] * 1000:.2f} ms, p99 "
                f"{took[int(len(took) * 0.99)] * 1000:.2f} ms, max {worst:.3f} s at {worst_at:.0f} s; "
                f"{slow} over 0.5 s")


def io_written(pid: int) -> int:
    """Bytes ``pid`` caused to be written to the disk (/proc/<pid>/io)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return int(next(x for x in text.splitlines() if x.startswith("write_bytes:")).split()[1])


def device_of(path: Path) -> str | None:
    """The block device (as /proc/diskstats names it) holding ``path``."""
    dev = os.stat(path).st_dev
    try:
        name = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve().name
    except OSError:
        return None
    return name if Path(f"/sys/block/{name}").exists() else None


def disk_counts(device: str | None) -> tuple[float, float, float]:
    """(bytes written, write requests, flush requests) of ``device`` since boot, the whole
    machine's (/proc/diskstats): what the disk was asked to do, the journal's writes too."""
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if device is not None and f[2] == device:
            return int(f[9]) * 512.0, float(f[7]), float(f[19]) if len(f) > 19 else 0.0
    return 0.0, 0.0, 0.0


async def audit_counts(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The store's write counters from ``/metrics`` (commits, events, query-table updates)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics",
                           headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        text = await resp.text()
    return {k: float(v) for k, v in (x.split() for x in text.splitlines() if x.startswith(
        ("rfq_audit_commits ", "rfq_audit_events_committed ", "rfq_audit_table_updates ",
         "rfq_audit_wait_seconds_bucket")))}


def wait_line(counts: dict[str, float]) -> str:
    """The batches' waits (``rfq_audit_wait_seconds``: append to durable) over a phase, as the
    bucket bounds their p50, p99 and p99.9 fall under."""
    buckets = sorted(((float(k.split('le="')[1].split('"')[0]), v) for k, v in counts.items()
                      if k.startswith("rfq_audit_wait_seconds_bucket")), key=lambda b: b[0])
    if not buckets or not buckets[-1][1]:
        return "audit store waits: not reported"
    total = buckets[-1][1]

    def under(q: float) -> str:
        bound = next(b for b, n in buckets if n >= q * total)
        return "over 10 s" if bound == float("inf") else f"<= {bound * 1000:g} ms"

    return (f"audit store waits, append to durable (the oldest event of each of {total:,.0f} batches):"
            f" p50 {under(0.5)}, p99 {under(0.99)}, p99.9 {under(0.999)}")


def slow_commits(log: Path) -> str:
    """What rfq serve's slow-commit warnings said (commit_watch.py), in one line."""
    lines = [x for x in log.read_text(errors="replace").splitlines() if "audit store slow" in x]
    if not lines:
        return "slow commits (over 0.5 s): none logged"
    last = json.loads(lines[-1])["event"]
    total = last.split(" in all")[0].rsplit(" ", 1)[-1]
    longest = last.split("the longest ")[1].split(")")[0]
    return f"slow commits (over 0.5 s): {total}, the longest {longest} ({len(lines)} warnings logged)"


def filled_share(states: dict[str, int]) -> float:
    filled = states.get("filled", 0) + states.get("partially_filled", 0)
    total = sum(states.values())
    return 100 * filled / total if total else 0.0


async def bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rfq-e2e-rest-"))
    port = free_port()
    config = base_config(tmp, DESKS, port=port, min_quotes=2)
    config["dealers"] = [{"id": d, "kind": "simulated", "simulated": {
        "latency_ms": 20, "latency_jitter_ms": 10, "confirm_latency_ms": 5, "spread_bps": str(15 + 3 * i),
        "last_look_reject_rate": 0.02, "quote_validity_ms": 3000, "seed": i + 1}}
        for i, d in enumerate(DESKS)]
    serve = Serve(tmp, config)
    print(f"settings {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{load_average()} before the run; store SQLite FULL in {tmp}")
    disk = disk_floor(tmp)
    probe = DiskProbe(tmp)
    device = device_of(tmp)
    probe.start()
    await serve.start()
    session = aiohttp.ClientSession()
    readers = [Stream(port) for _ in range(args.readers)]
    for reader in readers:
        reader.start(session)
    rss: list[tuple[float, float]] = []
    phases: dict[str, dict[str, Any]] = {}
    started = time.monotonic()

    async def sample() -> None:
        while True:
            rss.append((time.monotonic() - started, rss_mib(serve.pid)))
            await asyncio.sleep(1.0)

    sampler = asyncio.get_running_loop().create_task(sample())
    load = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "load", "--port", str(port), "--seconds", str(args.seconds),
        "--rate", str(args.rate), "--soak", str(args.soak), "--concurrency", str(args.concurrency),
        stdout=asyncio.subprocess.PIPE, limit=1 << 24)
    cpu_mark = cpu_s(serve.pid)
    try:
        assert load.stdout is not None
        while line := await load.stdout.readline():
            item = json.loads(line)
            cpu_now = cpu_s(serve.pid)
            item["serve_cpu_s"], cpu_mark = cpu_now - cpu_mark, cpu_now  # since the previous phase
            item["at"] = time.monotonic() - started
            item["load"] = load_average()
            item["written"] = io_written(serve.pid)
            item["audit"] = await audit_counts(session, port)
            item["disk"] = disk_counts(device)
            phases[item["phase"]] = item
            if item["phase"] == "soak":
                phases["soak"]["started"] = item["at"] - args.soak
        await load.wait()
        alive = [r.connected for r in readers]  # before the server stops and closes them
    finally:
        sampler.cancel()
        await session.close()
        await serve.stop()
        await stop(load)
        probe.stop()
    verify = subprocess.run([str(Path(sys.executable).with_name("rfq")), "audit", "verify",  # noqa: ASYNC221
                             "--config", str(serve.config_path)], capture_output=True, text=True, cwd=tmp,
                            check=False)  # everything else has stopped
    report(args, phases, disk, rss, readers, alive, verify, device)
    print(probe.line())
    print(slow_commits(tmp / "serve.log"))
    print(f"store and logs in {tmp}")


def cpu_line(phase: dict[str, Any], seconds: float) -> str:
    """rfq serve's CPU over the phase, per RFQ completed: less sensitive than RFQs/s to what
    else the machine runs."""
    done = phase["completed"] * seconds
    per = 1000 * phase["serve_cpu_s"] / done if done else float("nan")
    return f"rfq serve CPU {phase['serve_cpu_s']:.1f} s over the phase: {per:.2f} ms per completed RFQ"


def report(args: argparse.Namespace, phases: dict[str, dict[str, Any]], disk: list[float],
           rss: list[tuple[float, float]], readers: list[Stream], alive: list[bool],
           verify: subprocess.CompletedProcess[str], device: str | None) -> None:
    floor = phases.get("floor", {})
    print(row("floor  GET /healthz, one at a time", floor.get("healthz", [])))
    print(row("floor  GET /api/v1/me (auth), one at a time", floor.get("me", [])))
    print(row("floor  bare sqlite3 commit of one row, FULL", disk))
    closed = phases.get("closed")
    if closed:
        met = "met" if closed["completed"] >= TARGETS["completed"] else "NOT met"
        print(f"closed loop, {args.concurrency} clients, {args.seconds:g} s (load average {closed['load']}):")
        print(f"  accepted {closed['accepted']:7.1f} RFQs/s   completed {closed['completed']:7.1f} RFQs/s "
              f"(target >= {TARGETS['completed']}: {met}); POST p50 {closed['post_p50']:.1f} ms, "
              f"p99 {closed['post_p99']:.1f} ms; refused {closed['refused']}; "
              f"filled {filled_share(closed['states']):.1f}%")
        print(f"  {cpu_line(closed, args.seconds)}")
    for name in ("open", "soak"):
        phase = phases.get(name)
        if not phase:
            continue
        seconds = args.seconds if name == "open" else args.soak
        met = "met" if phase["post_p99"] < TARGETS["p99_at_100"] else "NOT met"
        print(f"{'open loop' if name == 'open' else 'soak'}, {phase['rate']:g} RFQs/s for {seconds:g} s "
              f"(load average {phase['load']}):")
        print(f"  POST p50 {phase['post_p50']:.1f} ms, p99 {phase['post_p99']:.1f} ms (target p99 < "
              f"{TARGETS['p99_at_100']:g} ms at 100 RFQs/s: {met}); "
              f"completed {phase['completed']:.1f} RFQs/s; "
              f"refused {phase['refused']}; filled {filled_share(phase['states']):.1f}%; the schedule ended "
              f"{phase['schedule_late_s']:.2f} s late")
        print(f"  {cpu_line(phase, seconds)}")
        if name == "soak" and len(phase.get("p99_by_minute", [])) > 1:
            print("  POST p99 minute by minute: " + " ".join(f"{v:.0f}" for v in phase["p99_by_minute"])
                  + " ms")
        if name == "soak" and "open" in phases:
            written = (phase["written"] - phases["open"]["written"]) / 1e6
            done = phase["completed"] * seconds
            print(f"  rfq serve wrote {written:,.0f} MB to the disk ({written / seconds:.1f} MB/s, "
                  f"{written * 1000 / max(done, 1):.0f} KB per completed RFQ: WAL, database, "
                  "checkpoint log)")
            wrote, ios, flushes = (a - b for a, b in zip(phase["disk"], phases["open"]["disk"],
                                                         strict=True))
            print(f"  the disk ({device}, the whole machine): {wrote / 1e6:,.0f} MB written "
                  f"({wrote / 1e3 / max(done, 1):.0f} KB per RFQ), {ios / seconds:,.0f} write "
                  f"requests/s, {flushes / seconds:,.0f} flushes/s")
            counts = {k: v - phases["open"]["audit"].get(k, 0) for k, v in phase["audit"].items()}
            if counts.get("rfq_audit_commits"):
                print(f"  audit store: {counts['rfq_audit_commits'] / seconds:.0f} commits/s of "
                      f"{counts['rfq_audit_events_committed'] / counts['rfq_audit_commits']:.1f} "
                      f"events, {counts.get('rfq_audit_table_updates', 0) / seconds:.0f} "
                      "query-table transactions/s")
                print(f"  {wait_line(counts)}")
    soak = phases.get("soak")
    if soak:
        start, end = soak["started"], soak["at"]
        during = [m for t, m in rss if start <= t <= end]
        if during:
            warm = during[: max(1, len(during) // 5)]
            after = during[len(during) // 5:]
            slope = (after[-1] - after[0]) / max(1.0, (len(after) - 1) / 60) if len(after) > 1 else 0.0
            print(f"  RSS of rfq serve: {during[0]:.0f} MiB at the start, {warm[-1]:.0f} MiB after the "
                  f"first fifth (warm-up), {max(after):.0f} MiB at most after it, {during[-1]:.0f} MiB at "
                  f"the end ({slope:+.1f} MiB/min after warm-up; target: flat)")
    states: Counter[str] = Counter()
    for name in ("closed", "open", "soak"):
        states.update(phases.get(name, {}).get("states", {}))
    share = filled_share(states)
    print(f"filled {share:.1f}% of {sum(states.values())} completed RFQs (target >= {TARGETS['filled']:g}%: "
          f"{'met' if share >= TARGETS['filled'] else 'NOT met'})")
    tracker = phases.get("tracker", {})
    connected = sum(alive)
    print(f"stream readers: {connected} of {len(readers)} connected throughout (target: all), "
          f"{min((r.messages for r in readers), default=0)}-{max((r.messages for r in readers), default=0)} "
          f"messages each, {sum(r.coalesced for r in readers)} coalesced markers; the load generator's "
          f"reader: {tracker.get('messages')} messages, "
          f"{'connected' if tracker.get('connected') else tracker.get('closed_with')}; "
          + "; ".join(r.closed_with or "" for r, up in zip(readers, alive, strict=True) if not up))
    print(f"rfq audit verify: exit {verify.returncode}: {(verify.stdout or verify.stderr).strip()[-300:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["bench", "load"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the closed and open loops")
    parser.add_argument("--soak", type=float, default=60.0, help="length of the soak (600: ten minutes)")
    parser.add_argument("--rate", type=float, default=100.0, help="RFQs/s of the open loop and the soak")
    parser.add_argument("--concurrency", type=int, default=64, help="clients of the closed loop")
    parser.add_argument("--readers", type=int, default=4, help="stream readers kept connected")
    args = parser.parse_args()
    if args.role == "load":
        asyncio.run(run_load(args.port, args))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
