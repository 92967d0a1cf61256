"""Crash-test kit: a config on disk, real `rfq` processes, and read-only views of what they left.

Everything here observes from the outside, as an operator would: the engine runs as a
separate process (``python -m rfq_engine.cli.main``), is killed with SIGKILL (by a
failpoint or by the test), and the test then reads the SQLite audit store read-only and
the simulated desks' JSONL ledgers (their side of every execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from dealer_adapters.simulated import ExecutionRecord
from rfq_engine.domain import RfqState, utc_now
from rfq_engine.store import AuditEvent, AwardRow, EventFilter, EventType, FillRow, RfqRow, open_store

__all__ = [
    "DESKS",
    "NON_TERMINAL",
    "Case",
    "DeskSettings",
    "StoreView",
    "default_desks",
    "killed",
    "make_case",
    "output",
    "read_ledgers",
    "run_rfq",
    "start_rfq",
    "wait_for_event",
]

DESKS = ("desk-a", "desk-b", "desk-c")
NON_TERMINAL = frozenset(s.value for s in RfqState if not s.is_terminal)
PROCESS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DeskSettings:
    """One simulated desk. desk-a quotes tightest, so it always wins rank 1 (sell: best bid)."""

    spread_bps: str
    latency_ms: int = 20
    confirm_latency_ms: int = 30
    last_look_reject_rate: float = 0.0
    book_latency_ms: int = 0
    """Booking slower than the engine's ``send_timeout_ms``: the send times out, the desk
    books on, a lookup meanwhile answers UNKNOWN."""
    lose_confirm_rate: float = 0.0
    """The desk executes and its confirm is lost on the way (a lost reply)."""


def default_desks(*, latency_ms: int = 20, confirm_latency_ms: int = 30) -> dict[str, DeskSettings]:
    return {
        dealer: DeskSettings(spread, latency_ms + 10 * i, confirm_latency_ms)
        for i, (dealer, spread) in enumerate(zip(DESKS, ("10", "20", "30"), strict=True))
    }


@dataclass(frozen=True)
class Case:
    """The files of one crash scenario, all inside the test's tmp dir."""

    root: Path
    config: Path
    rfq: Path
    db: Path
    checkpoint: Path
    ledgers: Mapping[str, Path]
    store_url: str | None = None
    """A PostgreSQL store (``postgresql+asyncpg://...``); None: SQLite at ``db``."""

    @property
    def url(self) -> str:
        return self.store_url or f"sqlite+aiosqlite:///{self.db}"


def make_case(
    root: Path,
    *,
    desks: Mapping[str, DeskSettings] | None = None,
    window_ms: int = 400,
    confirm_timeout_ms: int = 600,
    send_timeout_ms: int = 500,
    store_url: str | None = None,
    engine_extra: Sequence[str] = (),
) -> Case:
    """Write the config TOML and the RFQ JSON: 3 simulated desks with ledgers, fixed seeds,
    no latency jitter, min_quotes 1, a SQLite store in ``root``."""
    desks = desks or default_desks()
    db = root / "audit.db"
    checkpoint = root / "audit.db.head"  # the store's default place, next to the database
    ledgers = {dealer: root / f"ledger-{dealer}.jsonl" for dealer in desks}
    lines = [
        "[engine]",
        f"default_window_ms = {window_ms}",
        f"confirm_timeout_ms = {confirm_timeout_ms}",
        "min_quote_validity_ms = 50",
        f"send_timeout_ms = {send_timeout_ms}",
        *engine_extra,
        "",
        "[store]",
        f"url = {json.dumps(store_url or f'sqlite+aiosqlite:///{db}')}",
        f"checkpoint_path = {json.dumps(str(checkpoint))}",
        "",
        "[logging]",
        'level = "WARNING"',
        "json = true",
        "",
        "[market]",
        'spot = { BTC = "40000" }',
        'vol = { BTC = "0.55" }',
        'rate = "0.05"',
        'basis = { BTC = "0.06" }',
        'hashprice = "55"',
        "",
        "[mandates.treasury]",
        'underlyings = ["BTC"]',
        'instruments = ["future"]',
        "max_tenor_days = 190",
        'max_notional_per_rfq = "10000000"',
        "min_quotes = 1",
        "",
        "[mandates.treasury.dealers]",
        *(f'{dealer} = {{ credit_limit = "100000000" }}' for dealer in desks),
    ]
    for seed, (dealer, desk) in enumerate(desks.items(), start=1):
        lines += [
            "",
            "[[dealers]]",
            f'id = "{dealer}"',
            'kind = "simulated"',
            "[dealers.simulated]",
            f"latency_ms = {desk.latency_ms}",
            "latency_jitter_ms = 0",
            f'spread_bps = "{desk.spread_bps}"',
            f"confirm_latency_ms = {desk.confirm_latency_ms}",
            f"last_look_reject_rate = {float(desk.last_look_reject_rate)}",
            f"book_latency_ms = {desk.book_latency_ms}",
            f"lose_confirm_rate = {float(desk.lose_confirm_rate)}",
            f"seed = {seed}",
            f"ledger_path = {json.dumps(str(ledgers[dealer]))}",
        ]
    config = root / "rfq.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expiry = (utc_now() + timedelta(days=30)).date().isoformat()
    rfq = root / "rfq.json"
    rfq.write_text(json.dumps({
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": expiry}, "side": "sell"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC", "dealers": list(desks),
        "requester": "alice", "mandate": "treasury", "window_ms": window_ms,
    }), encoding="utf-8")
    return Case(root, config, rfq, db, checkpoint, ledgers, store_url)


# --- processes ------------------------------------------------------------------------------


def _env(failpoints: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RFQ_FAILPOINTS"}
    if failpoints:
        env["RFQ_FAILPOINTS"] = failpoints
    return env


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "rfq_engine.cli.main", *args]


def run_rfq(case: Case, *args: str, failpoints: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `rfq` command to its end (or its SIGKILL); never inherits RFQ_FAILPOINTS."""
    return subprocess.run(_command(args), cwd=case.root, env=_env(failpoints), capture_output=True,
                          text=True, timeout=PROCESS_TIMEOUT_S, check=False)


def start_rfq(case: Case, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(_command(args), cwd=case.root, env=_env(None), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def output(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str],
           out: str | None = None, err: str | None = None) -> str:
    """Both streams of a finished process, for assertion messages."""
    if isinstance(proc, subprocess.CompletedProcess):
        out, err = proc.stdout, proc.stderr
    return f"--- stdout\n{out or ''}\n--- stderr\n{err or ''}"


def killed(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str]) -> bool:
    return proc.returncode == -signal.SIGKILL


def wait_for_event(case: Case, event_type: str, proc: subprocess.Popen[str],
                   timeout_s: float = 15.0) -> str:
    """Poll the store file read-only (it belongs to another process) until an event of
    ``event_type`` is committed; returns its rfq_id. Fails if the process ends first."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        row = _first_event(case, event_type)
        if row is not None:
            return str(row[0])
        if proc.poll() is not None:
            raise AssertionError(f"rfq request ended (rc {proc.returncode}) before any {event_type}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event_type} in {case.db} within {timeout_s} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)


def _first_event(case: Case, event_type: str) -> tuple[Any, ...] | None:
    query = "SELECT rfq_id FROM audit_events WHERE type = {} ORDER BY seq LIMIT 1"
    if case.store_url is not None:
        import asyncpg

        async def pg() -> tuple[Any, ...] | None:
            dsn = case.store_url.replace("postgresql+asyncpg://", "postgresql://")  # type: ignore[union-attr]
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                found = await conn.fetchrow(query.format("$1"), event_type)
            except asyncpg.UndefinedTableError:
                return None
            finally:
                await conn.close()
            return None if found is None else tuple(found)

        return asyncio.run(pg())
    try:
        with contextlib.closing(sqlite3.connect(f"file:{case.db}?mode=ro", uri=True,
                                                timeout=1.0)) as conn:
            result: tuple[Any, ...] | None = conn.execute(query.format("?"), (event_type,)).fetchone()
            return result
    except sqlite3.OperationalError:  # no database file or no tables yet
        return None


# --- what the processes left behind ---------------------------------------------------------


@dataclass(frozen=True)
class StoreView:
    """Everything in the audit store, read through the store API, read-only."""

    events: list[AuditEvent]
    rfqs: list[RfqRow]
    awards: list[AwardRow]
    fills: list[FillRow]
    payloads: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, case: Case) -> StoreView:
        return asyncio.run(cls._read(case))

    @classmethod
    async def _read(cls, case: Case) -> StoreView:
        store = open_store(case.url, checkpoint_path=case.checkpoint, readonly=True)
        await store.open()
        try:
            events = await store.events(EventFilter())
            rfqs = await store.rfqs()
            awards = [a for r in rfqs for a in await store.awards(r.rfq_id)]
            fills = await store.fills()
        finally:
            await store.close()
        return cls(events, rfqs, awards, fills, {e.seq: e.payload for e in events})

    def of(self, event_type: EventType, rfq_id: str | None = None) -> list[dict[str, Any]]:
        """Payloads of every event of one type (of one RFQ), in seq order."""
        return [self.payloads[e.seq] for e in self.events
                if e.type == event_type and (rfq_id is None or e.rfq_id == rfq_id)]

    def execution_ids(self, event_type: EventType) -> list[str]:
        return [str(p["execution_id"]) for p in self.of(event_type)]

    @property
    def rfq(self) -> RfqRow:
        assert len(self.rfqs) == 1, f"expected exactly one RFQ, found {len(self.rfqs)}"
        return self.rfqs[0]

    def recovered_rfqs(self) -> list[str]:
        return [str(r) for p in self.of(EventType.ENGINE_RECOVERED) for r in p["rfqs"]]


def read_ledgers(case: Case, *, repaired: bool = True) -> list[ExecutionRecord]:
    """Every execution the desks booked, from their JSONL files (read only, never repaired).

    A torn last line (a kill during the desk's write: that answer was never sent) is
    skipped; with ``repaired`` (after a restart has loaded the ledgers) there must be none.
    """
    records: list[ExecutionRecord] = []
    for path in case.ledgers.values():
        if not path.exists():
            continue
        complete, _, torn = path.read_text(encoding="utf-8").rpartition("\n")
        assert not (repaired and torn), f"{path}: torn last line {torn!r} left after a restart"
        records += [ExecutionRecord.from_json(line) for line in complete.split("\n") if line.strip()]
    return records
