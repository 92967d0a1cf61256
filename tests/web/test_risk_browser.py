"""The Risk page against a real ``rfq serve``: a hedge program whose catch-up run hedges at
start, a trader's RFQ filled by a desk with a collateral agreement, then the page's alerts,
exposure against credit lines, desk margin, the program against the market (tables and
charts), the banner on every page, and the risk metric."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
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
         "desk-b": 'latency_ms = 10\nspread_bps = "30"\n',
         "desk-c": 'latency_ms = 5\nspread_bps = "10"\n'}
EXPIRY = (date.today() + timedelta(days=40)).isoformat()
EXTRA = """
[programs.p]
strategy = "future"
hedge_ratio = "0.5"
mandate = "treasury"
dealers = ["desk-a", "desk-b"]
window_ms = 300
schedule = "0 0 1 * *"
[programs.p.forecast]
hashrate = "1 EH/s"
difficulty = "100000000000000"

[collateral.desk-a]
initial_margin = { USD = "0.1" }
minimum_transfer = "1000"
posted = { USD = "2000000" }

[risk]
margin_usage = "0.01"
depth = { "BTC-USD-FUT" = "20" }

[risk.venues.desk-c]
collateral = "1000000"
currency = "USD"
initial_margin = "0.1"
maintenance_margin = "0.05"
funding_rate = "0.0001"

[mandates.perps]
underlyings = ["BTC"]
instruments = ["perpetual"]
max_tenor_days = 200
min_quotes = 1
price_tolerance_bps = "250"
approval_threshold = "10000000"
[mandates.perps.dealers]
desk-c = { credit_limit = "1000000000" }
"""


@pytest.fixture
def risk_server(tmp_path: Path) -> Iterator[Server]:
    config = write_config(tmp_path, DESKS)
    config.write_text(config.read_text() + EXTRA)
    yield from serve(tmp_path, config)


def _call(server: Server, path: str, body: dict[str, Any] | None = None, user: str = "alice") -> Any:
    request = urllib.request.Request(
        server.base + path, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKENS[user]}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw.decode()


def _until(what: str, probe: Any, timeout: float = 30) -> Any:
    """Poll the server (another process: no event to await) until ``probe`` returns a value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_risk_page_banner_and_metric(risk_server: Server) -> None:
    from playwright.sync_api import expect

    server = risk_server
    body = {"legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                     "expiry": EXPIRY}, "side": "sell"}],
            "direction": "sell", "quantity": "5", "quantity_unit": "BTC",
            "dealers": ["desk-a", "desk-b"], "mandate": "treasury", "window_ms": 200}
    perp = {"legs": [{"instrument": {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USD"},
                      "side": "sell"}], "direction": "sell", "quantity": "2", "quantity_unit": "BTC",
            "dealers": ["desk-c"], "mandate": "perps", "window_ms": 200}
    for rfq in (body, perp):
        url = f"/api/v1/rfqs/{_call(server, '/api/v1/rfqs', rfq)['rfq_id']}"
        _until(f"the trader's RFQ {url} to fill", lambda u=url: _call(server, u)["state"] == "filled")

    def program_filled() -> bool:
        (program,) = _call(server, "/api/v1/hedge/programs")["programs"]
        rows = [r for r in _call(server, "/api/v1/rfqs")["rfqs"] if r["requester"] == "program:p"]
        return bool(program["decisions"]) and bool(rows) and all(r["state"] == "filled" for r in rows)

    _until("the program's catch-up hedge to fill", program_filled)
    data = _call(server, "/api/v1/hedge/risk", user="dave")
    kinds = {(a["kind"], a["subject"]) for a in data["active"]}
    assert ("margin_usage", "desk-a") in kinds, data["active"]
    assert any(k == "liquidity" for k, _ in kinds), data["active"]
    (funding,) = data["risk"]["funding_accrued"]  # the short perpetual at desk-c, since its fill
    assert funding["dealer"] == "desk-c" and funding["rate"] == "0.0001" and funding["held"] == "-2"
    (perf,) = data["performance"]
    (period,) = perf["periods"]
    assert period["fills"] == 1 and period["unhedged_value"] is not None
    metrics = _call(server, "/metrics", user="erin")
    assert 'rfq_risk_alerts_total{kind="margin_usage"} 1.0' in metrics
    assert f"rfq_risk_alerts_active {float(len(kinds))}" in metrics

    # the treasurer posts desk-a's collateral (the same 2,000,000 USD the config says): the
    # desk's row then says who posted it and when, the venue's row still "the config"
    posted = _call(server, "/api/v1/hedge/collateral",
                   {"dealer": "desk-a", "amounts": {"USD": "2000000"}, "note": "wire 77"})
    assert posted["type"] == "collateral.posted"

    expect.set_options(timeout=TIMEOUT_MS)
    with browser_page(server.base, "dave", console_errors=True) as (page, problems):
        banner = page.get_by_test_id("risk-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(f"{len(kinds)} risk alert")
        expect(banner).to_contain_text("margin_usage desk-a")
        banner.get_by_test_id("risk-banner-link").click()
        expect(page.get_by_test_id("nav-risk")).to_have_class("active")
        alert = page.locator('[data-testid=risk-alert][data-kind=margin_usage][data-subject=desk-a]')
        expect(alert).to_contain_text("of the collateral posted")
        party = page.locator('[data-testid=risk-counterparties-row][data-key=desk-a]')
        desk_a = next(c for c in data["risk"]["counterparties"] if c["dealer"] == "desk-a")
        expect(party).to_contain_text(f"{float(desk_a['usage']) * 100:.1f}%")
        expect(page.get_by_test_id("risk-credit-chart")).to_be_visible()
        desk_row = page.locator('[data-testid=risk-desks-row][data-key=desk-a]')
        expect(desk_row).to_contain_text("posted by alice at")
        program = page.locator('[data-testid=risk-program][data-program=p]')
        expect(program.locator(f'[data-testid=risk-performance-row][data-key="{period["period"]}"]')
               ).to_be_visible()
        expect(program.get_by_test_id("risk-value-chart")).to_be_visible()
        expect(program.get_by_test_id("risk-pnl-chart").locator("polyline")).to_have_attribute(
            "data-points", "2")  # from 0 before the first fill, then after it
        accrued = page.locator(
            '[data-testid=risk-funding-accrued-row][data-key="desk-c:BTC-USD-PERP:false"]')
        expect(accrued).to_contain_text("desk-c BTC-USD-PERP")
        expect(accrued).to_contain_text(funding["since"])
        venue = page.locator('[data-testid=risk-venues-row][data-key="desk-c:BTC-USD-PERP"]')
        expect(venue).to_contain_text("estimate")  # a simulated desk: no venue account to read
        expect(venue).to_contain_text("the config")  # no collateral.posted for this venue
        liquidity = page.get_by_test_id("risk-liquidity-row")
        expect(liquidity.first).to_contain_text("BTC-USD-FUT-")
        page.get_by_test_id("nav-blotter").click()
        expect(banner).to_be_visible()  # on every page
        assert problems == [], problems
