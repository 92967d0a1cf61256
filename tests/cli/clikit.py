"""Run the real ``rfq`` command in a child process, with a config and an RFQ file on disk.

Every command runs as ``python -m rfq_engine.cli.main`` with the test's tmp dir as its
working directory, so whatever it writes (database, checkpoint, lock) lands there and a
test can assert that nothing was written at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from rfq_engine.domain import utc_now

DESKS = ("desk-a", "desk-b", "desk-c")
TIMEOUT_S = 60.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RFQ_AUDIT_CHECKPOINT_KEY", None)  # the same checkpoint mode on every machine
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "rfq_engine.cli.main", *args]


def rfq(args: Sequence[str], cwd: Path, *, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``rfq <args>`` in a child process; never raises on a non-zero exit."""
    return subprocess.run(command(args), cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def rfq_popen(args: Sequence[str], cwd: Path) -> subprocess.Popen[bytes]:
    """``rfq <args>`` started with its stdout and stderr as pipes the test reads itself."""
    return subprocess.Popen(command(args), cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def config_text(db: str, *, decline_rate: float = 0.0, engine_extra: str = "",
                market: str | None = None) -> str:
    """A valid config: three fast simulated desks (desk-a always quotes best), one mandate."""
    desks = []
    for i, desk in enumerate(DESKS):
        desks.append(f"""
[[dealers]]
id = "{desk}"
kind = "simulated"
[dealers.simulated]
latency_ms = {20 + 10 * i}
latency_jitter_ms = 0
spread_bps = "{10 * (i + 1)}"
confirm_latency_ms = 10
decline_rate = {decline_rate}
seed = {i + 1}
""")
    market = market if market is not None else """
[market]
spot = { BTC = "40000" }
vol = { BTC = "0.55" }
rate = "0.05"
basis = { BTC = "0.06" }
hashprice = "55"
"""
    return f"""
[engine]
default_window_ms = 2000
confirm_timeout_ms = 1000
{engine_extra}
[store]
url = "sqlite+aiosqlite:///{db}"

[logging]
level = "WARNING"
json = true
{market}
[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future", "option"]
max_tenor_days = 190
max_notional_per_rfq = "10000000"
min_quotes = 2
price_tolerance_bps = "300"

[mandates.treasury.dealers]
desk-a = {{ credit_limit = "20000000" }}
desk-b = {{ credit_limit = "20000000" }}
desk-c = {{ credit_limit = "20000000" }}
""" + "".join(desks)


def rfq_body(**overrides: Any) -> dict[str, Any]:
    """Sell 10 BTC of a future 35 days out to the three desks."""
    expiry = (utc_now().date() + timedelta(days=35)).isoformat()
    body: dict[str, Any] = {
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": expiry}, "side": "sell"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC", "dealers": list(DESKS),
        "requester": "alice", "mandate": "treasury", "window_ms": 1000,
    }
    body.update(overrides)
    return body


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_rfq(path: Path, body: Mapping[str, Any]) -> Path:
    return write(path, json.dumps(body))


def store_files(directory: Path) -> list[str]:
    """Whatever a store leaves on disk: database, WAL, checkpoint, lock."""
    return sorted(p.name for p in directory.iterdir()
                  if ".db" in p.name or p.suffix in {".head", ".lock", ".sqlite"})


def sql(db: Path, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the SQLite file directly, as someone tampering with it would."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(statement, params).fetchall()
    conn.close()
    return rows
