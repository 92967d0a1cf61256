"""``rfq demo --fast``: both RFQs quoted, awarded and filled live, then the chain verified."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.clikit import rfq

pytestmark = pytest.mark.slow


def test_demo_fills_both_rfqs_and_verifies_the_chain(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = rfq(["demo", "--fast", "--store", f"sqlite+aiosqlite:///{db}"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    sections = out.split("\n== ")[1:]
    assert len(sections) == 2, out
    for section in sections:
        assert len(re.findall(r"^\s+\+\s*[\d.]+s\s+quote\s", section, re.MULTILINE)) >= 2, section
        assert "AWARD" in section, section
        assert re.search(r"^\s+\+\s*[\d.]+s\s+FILL\s", section, re.MULTILINE), section
        assert "=> FILLED" in section, section
    assert re.search(r"Audit chain intact: \d+ events", out), out
    assert db.exists()
    assert not (tmp_path / "rfq-demo.db").exists()  # --store is honoured: no default database
