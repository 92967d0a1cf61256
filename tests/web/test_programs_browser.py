"""The Programs page against a real ``rfq serve``: a program whose first start catches up
and hedges the coming month; the page shows its next runs, its decision and its coverage,
the same figures as ``GET /api/v1/hedge/programs``."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (
    TIMEOUT_MS,
    TOKENS,
    Server,
    browser_page,
    serve,
    write_config,
)

pytestmark = pytest.mark.slow

DESKS = {"desk-a": 'latency_ms = 5\nspread_bps = "20"\n',
         "desk-b": 'latency_ms = 10\nspread_bps = "30"\n'}
EXTRA = """
[programs.monthly]
strategy = "future"
ladder = ["0.5", "0.25"]
basis_risk = "price only: difficulty and fees unhedged"
mandate = "treasury"
dealers = ["desk-a", "desk-b"]
window_ms = 300
schedule = "0 14 * * 5L"
[programs.monthly.forecast]
hashrate = "1 EH/s"
difficulty = "100000000000000"
"""


@pytest.fixture
def programs_server(tmp_path: Path) -> Iterator[Server]:
    config = write_config(tmp_path, DESKS)
    config.write_text(config.read_text() + EXTRA)
    yield from serve(tmp_path, config)


def _get(server: Server, path: str) -> Any:
    request = urllib.request.Request(server.base + path,
                                     headers={"Authorization": f"Bearer {TOKENS['dave']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_programs_page_shows_next_runs_decisions_and_coverage(programs_server: Server) -> None:
    from playwright.sync_api import expect

    server = programs_server
    end = time.monotonic() + 30
    view: dict[str, Any] = {}
    while time.monotonic() < end:  # another process: poll until both months are hedged
        (view,) = _get(server, "/api/v1/hedge/programs")["programs"]
        covered = [c for c in view["coverage"] or [] if c["hedged"] != "0"]
        if view["decision_count"] == 2 and covered:
            break
        time.sleep(0.2)
    assert view["decision_count"] == 2, view
    (latest,) = view["decisions"]
    assert latest["trigger"] in ("ladder", "catch_up", "schedule") and latest["action"] == "hedge"
    coming = view["due"]["period"]
    expect.set_options(timeout=TIMEOUT_MS)
    with browser_page(server.base, "dave", console_errors=True) as (page, problems):
        page.get_by_test_id("nav-programs").click()
        card = page.locator("[data-testid=program-card][data-program=monthly]")
        expect(card).to_contain_text("future BTC · ratio 50.0%")
        runs = card.get_by_test_id("program-next-runs")
        first = view["next_runs"][0]
        expect(runs).to_contain_text(f"{first[:10]} {first[11:19]}")
        expect(card.get_by_test_id("program-due")).to_contain_text(f"plans {coming}")
        expect(card.get_by_test_id("program-decision")).to_have_count(1)
        expect(card.get_by_test_id("program-decision")).to_contain_text(f"{latest['period']}: hedge")
        row = card.locator(f"[data-testid=coverage-row][data-period='{coming}']")
        expect(row).to_be_visible()
        hedged = next(c for c in view["coverage"] if c["period"] == coming)["hedged"]
        expect(row).to_contain_text(hedged[: hedged.index(".") + 3] if "." in hedged else hedged)
    assert problems == []
