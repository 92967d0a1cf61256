"""``rfq hedge run`` (and ``--dry-run``) make the collateral check ``rfq serve`` makes before a
program's RFQs (docs/risk.md): the real command in a child process, a real scheduler run over
SQLite. A desk short of collateral halts the program with the reason and a ``collateral_short``
alert in the audit log; once collateral is posted the next run hedges. With the default
``approval`` the program only proposes, for a person to approve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rfq_engine.domain.values import utc_now
from tests.cli.clikit import config_text, sql, store_files, write
from tests.hedging.test_cli_hedge import PROGRAMS, as_json, rfq

COLLATERAL = """
[collateral.{desk}]
initial_margin = {{ USD = "0.1" }}
minimum_transfer = "1000"
posted = {{ USD = "{posted}" }}
"""


def _config(tmp_path: Path, posted: str, mode: str) -> Path:
    desks = "".join(COLLATERAL.format(desk=d, posted=posted) for d in ("desk-a", "desk-b", "desk-c"))
    return write(tmp_path / "rfq.toml", config_text("hedge.db") + PROGRAMS + desks
                 + f'\n[risk]\non_collateral_short = "{mode}"\n')


def _at() -> datetime:
    today = utc_now()
    return datetime(today.year, today.month, 10, 9, 30, tzinfo=UTC)


def test_hedge_run_halts_short_of_collateral_then_hedges_once_posted(tmp_path: Path) -> None:
    config = _config(tmp_path, "5000", "halt")
    args = ["hedge", "run", "--config", str(config), "--at", _at().isoformat(), "--json"]
    (dry,) = as_json(rfq([*args, "--dry-run"], tmp_path))["decisions"]
    assert dry["action"] == "wait" and dry["rfqs"] == []
    assert any(r.startswith("halted: collateral short (desk-a would require") for r in dry["reasons"])
    plan = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--dry-run", "--json"],
                       tmp_path))
    assert plan["action"] == "wait" and any(r.startswith("halted: collateral short") for r in plan["reasons"])
    assert store_files(tmp_path) == []  # the dry runs write nothing

    (halted,) = as_json(rfq(args, tmp_path))["decisions"]
    assert halted["action"] == "wait" and halted["rfqs"] == [] and halted["outcomes"] == []
    assert any("halted: collateral short (desk-a" in r for r in halted["reasons"])
    db = tmp_path / "hedge.db"
    assert sql(db, "SELECT count(*) FROM rfqs") == [(0,)]
    alerts = sql(db, "SELECT payload FROM audit_events WHERE type = 'risk.alerted'")
    assert len(alerts) == 3 and all('"collateral_short"' in str(p) for (p,) in alerts)  # one per desk

    _config(tmp_path, "1000000", "halt")  # collateral posted
    later = (_at() + timedelta(minutes=6)).isoformat()
    (sent,) = as_json(rfq([*args[:-3], "--at", later, "--json"], tmp_path))["decisions"]
    assert sent["action"] == "hedge" and [o["state"] for o in sent["outcomes"]] == ["filled"]
    assert not any("collateral short" in r for r in sent["reasons"])
    cleared = sql(db, "SELECT payload FROM audit_events WHERE type = 'risk.alerted'")
    assert sum('"cleared"' in str(p) for (p,) in cleared) == 3


def test_hedge_run_short_of_collateral_asks_a_person(tmp_path: Path) -> None:
    config = _config(tmp_path, "5000", "approval")
    args = ["hedge", "run", "--config", str(config), "--at", _at().isoformat(), "--json"]
    (dry,) = as_json(rfq([*args, "--dry-run"], tmp_path))["decisions"]
    assert dry["action"] == "hedge" and dry["rfqs"]
    assert any("a person approves before anything is sent" in r for r in dry["reasons"])
    (ran,) = as_json(rfq(args, tmp_path))["decisions"]
    assert ran["action"] == "proposed" and ran["rfqs"] == [] and ran["proposed"]
    assert any("collateral short (desk-a" in r for r in ran["reasons"])
    assert sql(tmp_path / "hedge.db", "SELECT count(*) FROM rfqs") == [(0,)]  # nothing sent
