#!/usr/bin/env python
"""Engine overhead: what the RFQ engine itself costs, with dealers that answer instantly.

    .venv/bin/python bench/engine_overhead.py            # full run (a few minutes)
    .venv/bin/python bench/engine_overhead.py --quick    # smoke run
    .venv/bin/python bench/engine_overhead.py --store memory sqlite   # also without SQLite

It prints figures; it is not a test. docs/performance.md explains them. Measured:

disk floor: an fsync, a bare sqlite3 WAL commit, an atomic file replace (what the chain-head
    checkpoint costs), so the figures below can be read against what the disk allows.
(a) decision latency, one RFQ at a time: from the moment the 10th (last) quote is handed
    to the engine's inbound sink to the moment the ``award.decided`` event is durable
    (the future ``AuditStore.append`` returned has resolved). Split into the engine's
    part (last quote -> ``append("award.decided")`` called) and the store's part
    (append -> durable). Two variants: "idle store" holds the last quote until the RFQ
    is collecting (``rfq.sent`` durable) and the store has nothing in flight, as when
    dealers answer over tens of milliseconds; "instant" delivers every quote at once,
    before ``rfq.sent`` is even written, so it also holds that commit.
(b) sustained throughput: many RFQs in flight at once (each fully run: submit, 10 quotes,
    rank, award, last look, fill, outcome), every event persisted; the clock stops after
    the last RFQ ended and ``store.flush()`` returned. The chain is verified afterwards.
(c) audit append and verify throughput of the store alone: ``bench/audit_throughput.py``
    (the store's own benchmark) is run and its figures read; without it, measured here.

How it is wired. ``InstantDealers`` is a minimal ``DealerAdapter``: ``send_rfq`` schedules
(``loop.call_soon``) a two-way quote from that dealer, ``send_award`` schedules a confirm
at the awarded price and size; no model, no wire encoding, no timers, so what is left is
the engine and the store. ``TimedStore`` wraps the real store by composition: it
delegates every call and, for ``award.decided`` events, records when ``append`` was
called and when its future resolved (a done-callback, registered before the engine
awaits the future). Nothing in the engine is patched.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibrate import python_speed_ms  # bench/calibrate.py: this directory is on sys.path
from overhead_rig import (  # bench/overhead_rig.py: this directory is on sys.path
    ROOT,
    TARGET_A_P99_MS,
    TARGET_APPEND,
    TARGET_B_RFQS,
    TARGET_VERIFY,
    Floor,
    Rig,
    StoreKind,
    build,
    disk_floor,
    make_store,
    pct,
    print_floor,
)

from rfq_engine.domain import (
    RfqState,
    new_id,
)
from rfq_engine.logging import configure_logging

# --------------------------------------------------------------------------- (a) latency


@dataclass
class LatencyResult:
    store: str
    variant: str  # "instant" | "idle store"
    rfqs: int
    total_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)



async def run_latency(kind: StoreKind, directory: Path, rfqs: int, warmup: int, n_dealers: int,
                      *, idle_store: bool) -> LatencyResult:
    """One RFQ at a time. ``idle_store``: hold the last quote until the RFQ is collecting
    (its ``rfq.sent`` durable) and every earlier event is durable, as when dealers answer
    over tens or hundreds of milliseconds. Otherwise ("instant") the last quote arrives
    before ``rfq.sent`` is even written, so the figure also holds that commit and the
    commit of the quotes ahead of it: the engine may not award before ``rfq.sent`` is
    durable."""
    rig = await build(kind, directory, n_dealers)
    rig.dealers.hold_last = idle_store
    result = LatencyResult(kind.label, "idle store" if idle_store else "instant", rfqs)
    try:
        for i in range(warmup + rfqs):
            rig.dealers.held_event.clear()
            rfq_id = await rig.engine.submit(rig.spec)
            if idle_store:
                while rfq_id not in rig.dealers.held:
                    rig.dealers.held_event.clear()
                    await rig.dealers.held_event.wait()
                await rig.store.sent_durable.setdefault(rfq_id, asyncio.Event()).wait()
                await rig.store.flush()
                rig.dealers.release(rfq_id)
            rig.store.sent_durable.pop(rfq_id, None)
            state = await rig.engine.wait(rfq_id)
            if state is not RfqState.FILLED:
                raise RuntimeError(f"rfq {rfq_id} ended {state.value}, expected filled")
            quote_at = rig.dealers.last_quote_at.pop(rfq_id)
            appended = rig.store.award_appended.pop(rfq_id)
            durable = rig.store.award_durable.pop(rfq_id)
            if i >= warmup:
                result.total_ms.append((durable - quote_at) * 1000)
                result.engine_ms.append((appended - quote_at) * 1000)
                result.commit_ms.append((durable - appended) * 1000)
    finally:
        await rig.close()
    return result


# --------------------------------------------------------------------------- (b) throughput


@dataclass
class ThroughputResult:
    store: str
    rfqs: int
    in_flight: int
    seconds: float
    events: int
    states: dict[str, int]
    chain_ok: bool
    loop_cpu_s: float
    """CPU time of the event loop's thread (engine, store's Python side, asyncio)."""
    process_cpu_s: float
    """CPU time of every thread of the process (adds SQLite's work in aiosqlite's thread)."""

    @property
    def loop_cpu_ms(self) -> float:
        return self.loop_cpu_s / self.rfqs * 1000

    @property
    def process_cpu_ms(self) -> float:
        return self.process_cpu_s / self.rfqs * 1000

    @property
    def rfqs_per_s(self) -> float:
        return self.rfqs / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


async def run_throughput(kind: StoreKind, directory: Path, rfqs: int, in_flight: int,
                         n_dealers: int) -> ThroughputResult:
    rig = await build(kind, directory, n_dealers)
    states: dict[str, int] = {}
    try:
        # warm-up (first-use costs, the risk book's first store queries), not timed
        await asyncio.gather(*(_one(rig, states) for _ in range(min(50, rfqs))))
        await rig.store.flush()
        states.clear()
        events_before = rig.store.appended
        started = 0

        async def worker() -> None:
            nonlocal started
            while started < rfqs:
                started += 1
                await _one(rig, states)

        start, thread0, process0 = time.perf_counter(), time.thread_time(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        await rig.store.flush()
        seconds = time.perf_counter() - start
        loop_cpu, process_cpu = time.thread_time() - thread0, time.process_time() - process0
        events = rig.store.appended - events_before
        report = await rig.store.verify()  # not timed: every event really is in the chain
    finally:
        await rig.close()
    return ThroughputResult(kind.label, rfqs, in_flight, seconds, events, states, report.ok,
                            loop_cpu, process_cpu)


async def _one(rig: Rig, states: dict[str, int]) -> None:
    rfq_id = await rig.engine.submit(rig.spec)
    state = await rig.engine.wait(rfq_id)
    states[state.value] = states.get(state.value, 0) + 1
    rig.store.award_appended.pop(rfq_id, None)
    rig.store.award_durable.pop(rfq_id, None)
    rig.dealers.last_quote_at.pop(rfq_id, None)
    rig.store.sent_durable.pop(rfq_id, None)


# --------------------------------------------------------------------------- (c) audit store


@dataclass
class AuditResult:
    store: str
    events: int
    append_per_s: float | None
    verify_per_s: float | None
    source: str


AUDIT_SCRIPT = ROOT / "bench" / "audit_throughput.py"


def run_audit_script(kind: StoreKind, events: int) -> AuditResult:
    """Run the store's own benchmark (``bench/audit_throughput.py``) and read its figures."""
    command = [sys.executable, str(AUDIT_SCRIPT), "-n", str(events), "--synchronous", kind.synchronous]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    | {line}")
    def figure(label: str) -> float | None:
        found = re.search(rf"^{label}\s+([\d,]+) events/s", done.stdout, re.MULTILINE)
        return None if found is None else float(found.group(1).replace(",", ""))
    return AuditResult(kind.label, events, figure("append"), figure("verify"),
                       "bench/audit_throughput.py")


_PAYLOAD: dict[str, Any] = {
    "dealer_id": "dealer-03", "quote_id": "0" * 32, "bid": "40123.5", "ask": "40140.5",
    "quantity": "10", "valid_until": "2030-01-01T00:00:00.000000Z",
    "received_at": "2030-01-01T00:00:00.000000Z", "msg_id": "1" * 32,
}


async def run_audit_here(kind: StoreKind, directory: Path, events: int, window: int = 1000) -> AuditResult:
    """Fallback when the store's benchmark is absent: quote-sized events, ``window`` in flight."""
    store = make_store(kind, directory)
    await store.open()
    try:
        rfq_ids = [new_id() for _ in range(max(1, events // 24))]
        start = time.perf_counter()
        for base in range(0, events, window):
            await asyncio.gather(*(store.append(rfq_ids[(base + i) % len(rfq_ids)], "quote.received",
                                                "dealer-03", _PAYLOAD)
                                   for i in range(min(window, events - base))))
        await store.flush()
        append_s = time.perf_counter() - start
        start = time.perf_counter()
        report = await store.verify()
        verify_s = time.perf_counter() - start
    finally:
        await store.close()
    return AuditResult(kind.label, events, events / append_s,
                       report.events / verify_s if report.ok else None, "measured here")


# --------------------------------------------------------------------------- report


def ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def machine() -> str:
    return (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def num(value: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if value is None or value != value else format(value, fmt)


def print_latency(r: LatencyResult, *, header: bool) -> None:
    if header:
        print(f"(a) last quote -> award.decided durable, one RFQ at a time, milliseconds "
              f"(target p99 < {TARGET_A_P99_MS:g} ms)")
        print(f"    {'store':<13} {'dealers':<10} {'n':>5} {'p50':>7} {'p99':>7} {'max':>7} | "
              f"{'engine p50':>10} {'p99':>6} | {'store p50':>9} {'p99':>6} | target")
    print(f"    {r.store:<13} {r.variant:<10} {r.rfqs:>5} {pct(r.total_ms, 50):>7.3f} "
          f"{pct(r.total_ms, 99):>7.3f} {max(r.total_ms):>7.3f} | {pct(r.engine_ms, 50):>10.3f} "
          f"{pct(r.engine_ms, 99):>6.3f} | {pct(r.commit_ms, 50):>9.3f} {pct(r.commit_ms, 99):>6.3f} | "
          f"{ok(pct(r.total_ms, 99) < TARGET_A_P99_MS)}", flush=True)


def print_throughput(r: ThroughputResult, *, header: bool) -> None:
    if header:
        print(f"(b) sustained throughput, every event persisted, final flush included "
              f"(target >= {TARGET_B_RFQS:g} RFQs/s)")
        print("    CPU ms/RFQ: the event loop's thread / the whole process (all threads)")
        print(f"    {'store':<13} {'RFQs':>6} {'in flight':>9} {'seconds':>8} {'RFQs/s':>7} "
              f"{'events/s':>9} {'CPU ms/RFQ':>13}  outcome | target")
    outcome = ", ".join(f"{n} {s}" for s, n in sorted(r.states.items()))
    chain = "chain intact" if r.chain_ok else "CHAIN BROKEN"
    cpu = f"{r.loop_cpu_ms:.2f} / {r.process_cpu_ms:.2f}"
    print(f"    {r.store:<13} {r.rfqs:>6} {r.in_flight:>9} {r.seconds:>8.2f} {r.rfqs_per_s:>7.0f} "
          f"{r.events_per_s:>9,.0f} {cpu:>13}  {outcome}, {chain} | "
          f"{ok(r.rfqs_per_s >= TARGET_B_RFQS)}", flush=True)


def audit_met(r: AuditResult) -> bool:
    return (r.append_per_s or 0) >= TARGET_APPEND and (r.verify_per_s or 0) >= TARGET_VERIFY


def print_audit(r: AuditResult, *, header: bool) -> None:
    if header:
        print(f"    {'store':<13} {'events':>8} {'append ev/s':>12} {'verify ev/s':>12}  source | target")
    print(f"    {r.store:<13} {r.events:>8,} {num(r.append_per_s):>12} {num(r.verify_per_s):>12}  "
          f"{r.source} | {ok(audit_met(r))}", flush=True)


def print_summary(args: argparse.Namespace, latency: Sequence[LatencyResult],
                  throughput: Sequence[ThroughputResult], audit: Sequence[AuditResult]) -> None:
    if not (latency or throughput or audit):
        return
    stores = list(dict.fromkeys([*(r.store for r in latency), *(r.store for r in throughput),
                                 *(r.store for r in audit)]))
    rows: list[tuple[str, str, Callable[[str], str]]] = []
    for variant in ("instant", "idle store"):
        def a(store: str, variant: str = variant) -> str:
            found = [r for r in latency if r.store == store and r.variant == variant]
            return num(pct(found[0].total_ms, 99), ".2f") + " ms" if found else "-"
        rows.append((f"(a) p99 last quote -> award durable ({variant})", f"< {TARGET_A_P99_MS:g} ms", a))

    def b(store: str) -> str:
        found = [r for r in throughput if r.store == store]
        return num(found[0].rfqs_per_s) if found else "-"

    def c_append(store: str) -> str:
        found = [r for r in audit if r.store == store]
        return num(found[0].append_per_s) if found else "-"

    def c_verify(store: str) -> str:
        found = [r for r in audit if r.store == store]
        return num(found[0].verify_per_s) if found else "-"

    rows += [
        (f"(b) RFQs/s, {args.in_flight} in flight", f">= {TARGET_B_RFQS:g}", b),
        ("(c) audit append, events/s", f">= {TARGET_APPEND:,.0f}", c_append),
        ("(c) audit verify, events/s", f">= {TARGET_VERIFY:,.0f}", c_verify),
    ]
    width = max(len(r[0]) for r in rows)
    print("summary")
    print(f"    {'figure':<{width}} | " + " | ".join(f"{s:>13}" for s in stores) + " | target")
    for label, target, cell in rows:
        print(f"    {label:<{width}} | " + " | ".join(f"{cell(s):>13}" for s in stores) + f" | {target}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("ERROR", json=False)
    if args.no_gc:
        gc.disable()
    elif args.gc_tuned:  # as `rfq serve` does after start-up
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    kinds: list[StoreKind] = []
    for name in args.store:
        if name == "memory":
            kinds.append(StoreKind("memory"))
        else:
            kinds.extend(StoreKind("sqlite", sync) for sync in args.synchronous)
    print(f"$ {args.command}")
    print(f"machine: {machine()}; load average {load()}; "
          f"python speed {python_speed_ms():.0f} ms (bench/calibrate.py, lower is faster)")
    print(f"{args.dealers} instant dealers per RFQ; (a) {args.latency_rfqs} RFQs one at a time after "
          f"{args.warmup} warm-up; (b) {args.throughput_rfqs} RFQs, {args.in_flight} in flight; "
          f"(c) {args.audit_events:,} events\n", flush=True)
    latency: list[LatencyResult] = []
    throughput: list[ThroughputResult] = []
    audit: list[AuditResult] = []
    floors: list[Floor] = []
    with tempfile.TemporaryDirectory(prefix="rfq-bench-") as tmp:
        directory = Path(tmp)
        if not args.no_floor:
            floors = await asyncio.to_thread(disk_floor, directory)
            print_floor(floors)
        if args.latency_rfqs:
            for kind in kinds:
                for idle in (False, True):
                    latency.append(await run_latency(kind, directory, args.latency_rfqs, args.warmup,
                                                     args.dealers, idle_store=idle))
                    print_latency(latency[-1], header=len(latency) == 1)
            print()
        if args.throughput_rfqs:
            for kind in kinds:
                throughput.append(await run_throughput(kind, directory, args.throughput_rfqs,
                                                       args.in_flight, args.dealers))
                print_throughput(throughput[-1], header=len(throughput) == 1)
            print()
        if args.audit_events:
            print(f"(c) audit store alone (targets: append >= {TARGET_APPEND:,.0f} events/s, "
                  f"verify >= {TARGET_VERIFY:,.0f} events/s)", flush=True)
            for kind in kinds:
                if kind.name == "sqlite" and AUDIT_SCRIPT.exists() and not args.own_audit:
                    result = run_audit_script(kind, args.audit_events)
                else:
                    result = await run_audit_here(kind, directory, args.audit_events)
                audit.append(result)
            for i, result in enumerate(audit):
                print_audit(result, header=i == 0)
            print()
    print_summary(args, latency, throughput, audit)
    print(f"load average at the end {load()}; python speed {python_speed_ms():.0f} ms")
    return {
        "command": args.command, "machine": machine(), "load_end": load(),
        "disk_floor": [vars(f) for f in floors],
        "latency": [{"store": r.store, "variant": r.variant, "rfqs": r.rfqs,
                     **{f"{name}_p{q}": pct(values, q)
                        for name, values in (("total_ms", r.total_ms), ("engine_ms", r.engine_ms),
                                             ("store_ms", r.commit_ms))
                        for q in (50, 99, 100)}} for r in latency],
        "throughput": [{"store": r.store, "rfqs": r.rfqs, "in_flight": r.in_flight,
                        "seconds": r.seconds, "rfqs_per_s": r.rfqs_per_s,
                        "events_per_s": r.events_per_s, "states": r.states, "chain_ok": r.chain_ok,
                        "loop_cpu_ms_per_rfq": r.loop_cpu_ms, "process_cpu_ms_per_rfq": r.process_cpu_ms}
                       for r in throughput],
        "audit": [vars(r) for r in audit],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--latency-rfqs", type=int, default=2000, help="(a) RFQs, one at a time (0: skip)")
    p.add_argument("--warmup", type=int, default=200, help="(a) untimed RFQs first")
    p.add_argument("--throughput-rfqs", type=int, default=5000, help="(b) RFQs in total (0: skip)")
    p.add_argument("--in-flight", type=int, default=200, help="(b) RFQs running at once")
    p.add_argument("--dealers", type=int, default=10, help="dealers per RFQ")
    p.add_argument("--audit-events", type=int, default=100_000, help="(c) events appended (0: skip)")
    p.add_argument("--own-audit", action="store_true",
                   help="(c) measure here even if bench/audit_throughput.py exists")
    p.add_argument("--store", nargs="+", choices=["sqlite", "memory"], default=["sqlite"],
                   help="memory: the in-process store, to see the engine without SQLite")
    p.add_argument("--synchronous", nargs="+", choices=["FULL", "NORMAL"], default=["FULL", "NORMAL"])
    p.add_argument("--gc-tuned", action="store_true",
                   help="gc.freeze() after start-up and gc.set_threshold(50000, 20, 100), "
                        "as `rfq serve` does")
    p.add_argument("--no-gc", action="store_true", help="diagnostic: run with the cyclic GC disabled")
    p.add_argument("--no-floor", action="store_true", help="skip the disk-floor calibration")
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run of a few seconds)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.latency_rfqs, args.warmup = min(args.latency_rfqs, 200), min(args.warmup, 20)
        args.throughput_rfqs = min(args.throughput_rfqs, 500)
        args.in_flight, args.audit_events = min(args.in_flight, 50), min(args.audit_events, 10_000)
    given = list(sys.argv[1:] if argv is None else argv)
    args.command = shlex.join([".venv/bin/python", "bench/engine_overhead.py", *given])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
