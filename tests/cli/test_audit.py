"""``rfq audit verify/show/export`` on a store written by real ``rfq request`` runs.

Tampering is done as an attacker would: straight on the SQLite file with sqlite3 (an
edited payload, deleted newest rows), never through the store's API.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.store import open_store
from tests.cli.clikit import config_text, rfq, rfq_body, rfq_popen, sql, write, write_rfq

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Golden:
    """A store holding two RFQs (one filled, one not), never opened by a test directly."""

    directory: Path
    filled: str
    not_filled: str


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    work = tmp_path_factory.mktemp("audit-src")
    db = work / "rfq.db"
    ids: list[str] = []
    for decline_rate, expected in ((0.0, 0), (1.0, 2)):
        config = write(work / "rfq.toml", config_text(str(db), decline_rate=decline_rate))
        request = write_rfq(work / "rfq.json", rfq_body())
        done = rfq(["request", "--config", str(config), "--rfq", str(request), "--json"], work)
        assert done.returncode == expected, done.stderr
        ids.append(json.loads(done.stdout)["rfq_id"])
    golden = tmp_path_factory.mktemp("audit-golden")
    for name in ("rfq.db", "rfq.db-wal", "rfq.db.head"):
        if (work / name).exists():
            shutil.copy2(work / name, golden / name)
    return Golden(golden, ids[0], ids[1])


@pytest.fixture
def store(golden: Golden, tmp_path: Path) -> Path:
    """A private copy of the golden store (database and checkpoint); returns the db path."""
    for source in golden.directory.iterdir():
        shutil.copy2(source, tmp_path / source.name)
    return tmp_path / "rfq.db"


def url(db: Path) -> str:
    return f"sqlite+aiosqlite:///{db}"


def head_seq(db: Path) -> int:
    return int(sql(db, "SELECT max(seq) FROM audit_events")[0][0])


def no_floats(text: str) -> Any:
    def refuse(value: str) -> Any:
        raise AssertionError(f"a JSON float in an exported event: {value}")
    return json.loads(text, parse_float=refuse)


# --- verify -------------------------------------------------------------------------------


def test_verify_intact_store_exits_0(store: Path) -> None:
    done = rfq(["audit", "verify", "--store", url(store)], store.parent)
    assert done.returncode == 0, done.stderr
    assert f"audit chain intact: {head_seq(store)} events" in done.stdout


def test_verify_names_the_first_edited_row_and_exits_4(store: Path) -> None:
    (seq, payload), = sql(store, "SELECT seq, payload FROM audit_events WHERE type = 'fill.recorded'")
    forged = json.loads(payload)
    forged["price"] = str(Decimal(forged["price"]) + 100)  # a better fill than the dealer gave
    sql(store, "UPDATE audit_events SET payload = ? WHERE seq = ?",
        (json.dumps(forged, sort_keys=True, separators=(",", ":")), seq))
    done = rfq(["audit", "verify", "--store", url(store)], store.parent)
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"AUDIT CHAIN BROKEN at seq {seq}:" in done.stderr
    assert "edited" in done.stderr


def test_verify_catches_deleted_newest_rows_through_the_checkpoint(store: Path) -> None:
    head = head_seq(store)
    sql(store, "DELETE FROM audit_events WHERE seq > ?", (head - 3,))
    done = rfq(["audit", "verify", "--store", url(store)], store.parent)
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"AUDIT CHAIN BROKEN at seq {head - 2}:" in done.stderr
    assert "deleted" in done.stderr
    assert str(head) in done.stderr  # what the checkpoint says the head was


def test_verify_without_a_store_exits_1_and_creates_none(tmp_path: Path) -> None:
    done = rfq(["audit", "verify", "--store", url(tmp_path / "missing.db")], tmp_path)
    assert done.returncode == 1
    assert "no audit store" in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- show ---------------------------------------------------------------------------------


def test_show_prints_the_decision_record(store: Path, golden: Golden) -> None:
    done = rfq(["audit", "show", golden.filled, "--store", url(store)], store.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"RFQ {golden.filled}  —  FILLED")
    assert "award #1 -> desk-a" in done.stdout
    assert "fill desk-a 10 @ " in done.stdout
    done = rfq(["audit", "show", golden.not_filled, "--store", url(store), "--json"], store.parent)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["rfq_id"], record["state"], record["fills"]) == (golden.not_filled, "not_filled", [])


def test_show_unknown_rfq_exits_1(store: Path) -> None:
    done = rfq(["audit", "show", "no-such-rfq", "--store", url(store)], store.parent)
    assert done.returncode == 1
    assert "no events for rfq no-such-rfq" in done.stderr


# --- export -------------------------------------------------------------------------------


def test_export_jsonl_streams_every_event_with_decimal_strings(store: Path) -> None:
    done = rfq(["audit", "export", "--store", url(store), "--format", "jsonl"], store.parent)
    assert done.returncode == 0, done.stderr
    events = [no_floats(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, head_seq(store) + 1))
    assert f"exported {len(events)} events" in done.stderr
    for event in events:
        assert set(event) == {"seq", "ts", "rfq_id", "type", "actor", "payload", "prev_hash", "hash"}
        assert isinstance(event["payload"], dict)
    fill = next(e["payload"] for e in events if e["type"] == "fill.recorded")
    for key in ("price", "quantity", "notional"):
        assert isinstance(fill[key], str) and Decimal(fill[key]) > 0
    quote = next(e["payload"] for e in events if e["type"] == "quote.received")
    assert isinstance(quote["bid"], str) and isinstance(quote["quantity"], str)
    # chained: each event names the previous one's hash
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))


def test_export_csv_streams_every_event(store: Path) -> None:
    done = rfq(["audit", "export", "--store", url(store), "--format", "csv"], store.parent)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert [int(r["seq"]) for r in rows] == list(range(1, head_seq(store) + 1))
    assert f"exported {len(rows)} events" in done.stderr
    stored = dict(sql(store, "SELECT seq, payload FROM audit_events"))
    for row in rows:
        assert row["payload"] == stored[int(row["seq"])]  # the exact hashed bytes
        no_floats(row["payload"])


def test_export_counts_match_between_formats_and_filters(store: Path, golden: Golden) -> None:
    jsonl = rfq(["audit", "export", "--store", url(store), "--rfq", golden.filled,
                 "--out", "one.jsonl"], store.parent)
    assert jsonl.returncode == 0, jsonl.stderr
    lines = (store.parent / "one.jsonl").read_text(encoding="utf-8").splitlines()
    (count,), = sql(store, "SELECT count(*) FROM audit_events WHERE rfq_id = ?", (golden.filled,))
    assert len(lines) == count > 0
    assert {json.loads(line)["rfq_id"] for line in lines} == {golden.filled}
    as_csv = rfq(["audit", "export", "--store", url(store), "--rfq", golden.filled, "--format", "csv"],
                 store.parent)
    assert len(list(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))) == count


def test_export_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """``rfq audit export | head -1``: the reader leaves early; no traceback, exit 1."""
    db = tmp_path / "big.db"

    async def fill() -> None:  # far more than a pipe buffer holds
        store = open_store(url(db))
        await store.open()
        try:
            await asyncio.gather(*(store.append(None, "test.filler", "test", {"i": i})
                                   for i in range(2000)))
        finally:
            await store.close()

    asyncio.run(fill())
    proc = rfq_popen(["audit", "export", "--store", url(db)], tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1, err
    assert json.loads(first)["seq"] == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
