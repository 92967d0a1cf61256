"""``rfq audit verify --witness`` and ``rfq audit adopt-tail`` on stores written by real
``rfq request`` runs, tampered with straight on the files (issue 15, defect 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.clikit import config_text, rfq, rfq_body, sql, write, write_rfq

pytestmark = pytest.mark.slow


def two_requests(tmp_path: Path, *, between: Path | None = None) -> tuple[Path, Path]:
    """Two filled RFQs; ``between``: where to copy the checkpoint log after the first.
    Returns the database and the config (whose ``[store] witness_path`` is set)."""
    db, witness = tmp_path / "rfq.db", tmp_path / "witness" / "heads.jsonl"
    witness.parent.mkdir()
    config = write(tmp_path / "rfq.toml", config_text(str(db)).replace(
        "[store]\n", f'[store]\nwitness_path = "{witness}"\n'))
    request = write_rfq(tmp_path / "rfq.json", rfq_body())
    for i in range(2):
        done = rfq(["request", "--config", str(config), "--rfq", str(request)], tmp_path)
        assert done.returncode == 0, done.stderr
        if i == 0 and between is not None:
            shutil.copy2(f"{db}.head", between)
    return db, config


def test_a_rollback_of_database_and_checkpoint_log_is_caught_by_the_witness(tmp_path: Path) -> None:
    saved = tmp_path / "saved.head"
    db, config = two_requests(tmp_path, between=saved)
    witness = tmp_path / "witness" / "heads.jsonl"
    published = [json.loads(line) for line in witness.read_text().splitlines()]
    assert published, "the writer published no head"
    (first_of_second,), = sql(db, "SELECT min(seq) FROM audit_events WHERE rfq_id = "
                                  "(SELECT rfq_id FROM audit_events ORDER BY seq DESC LIMIT 1)")
    sql(db, "DELETE FROM audit_events WHERE seq >= ?", (first_of_second,))  # one whole RFQ
    shutil.copy2(saved, f"{db}.head")  # and the checkpoint log as it was before it
    url = f"sqlite+aiosqlite:///{db}"
    alone = rfq(["audit", "verify", "--store", url], tmp_path)
    assert alone.returncode == 0, alone.stderr  # consistent on this host: the documented limit
    for args in (["--store", url, "--witness", str(witness)], ["--config", str(config)]):
        done = rfq(["audit", "verify", *args], tmp_path)
        assert done.returncode == 4, done.stdout + done.stderr
        assert f"AUDIT CHAIN BROKEN at seq {first_of_second}" in done.stderr
        assert "witness" in done.stderr and "rolled back" in done.stderr


def test_adopt_tail_after_a_power_cut_lost_checkpoint_entries(tmp_path: Path) -> None:
    db, _ = two_requests(tmp_path)
    head = Path(f"{db}.head")
    lines = head.read_bytes().splitlines(keepends=True)
    head.write_bytes(b"".join(lines[:-3]))  # the newest entries never reached the disk
    url = f"sqlite+aiosqlite:///{db}"
    done = rfq(["audit", "verify", "--store", url], tmp_path)
    assert done.returncode == 4 and "not covered by the checkpoint log" in done.stderr
    (newest,), = sql(db, "SELECT max(seq) FROM audit_events")
    adopted = rfq(["audit", "adopt-tail", "--store", url, "--through", str(newest), "--by",
                   "carol"], tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert f"..{newest}" in adopted.stdout and "carol" in adopted.stdout
    done = rfq(["audit", "verify", "--store", url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "adopted by carol" in done.stdout
