"""An unresolved award resolved in a real browser: desk-a books slower than the engine's
reconciliation bound, so its award ends ``unresolved``; the trader who asked sees the
warning and no button; an approver records "executed" with the evidence; the RFQ fills."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, TOKENS, Server, login, serve, write_config

pytestmark = pytest.mark.slow

DESKS = {
    # desk-a quotes best and then takes 20 s to book: meanwhile its lookup answers UNKNOWN
    # (the server's shutdown waits for the booking to finish: a desk never half-books)
    "desk-a": 'latency_ms = 100\nspread_bps = "20"\nbook_latency_ms = 20000\n',
    "desk-b": 'latency_ms = 150\nspread_bps = "40"\n',
}
ENGINE = ("confirm_timeout_ms = 300\nreconcile_timeout_ms = 500\nreconcile_backoff_ms = 50\n"
          "reconcile_slow_interval_ms = 1000\n")


@pytest.fixture
def slow_desk_server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path, write_config(tmp_path, DESKS, ENGINE))


def _post(server: Server, path: str, body: dict[str, Any], user: str) -> dict[str, Any]:
    request = urllib.request.Request(
        server.base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKENS[user]}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_an_approver_resolves_an_unresolved_award_in_the_blotter(slow_desk_server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    expiry = (date.today() + timedelta(days=40)).isoformat()
    created = _post(slow_desk_server, "/api/v1/rfqs", {
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": expiry}, "side": "sell"}],
        "direction": "sell", "quantity": "5", "quantity_unit": "BTC",
        "dealers": list(DESKS), "mandate": "treasury", "window_ms": 600}, "alice")
    rfq_id = created["rfq_id"]
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(slow_desk_server.base + "/")
            login(page, "alice")  # a trader: warned, but only an approver resolves
            card = page.locator(f'[data-testid=rfq-card][data-rfq-id="{rfq_id}"]')
            expect(card).to_have_attribute("data-state", "unresolved")
            box = card.get_by_test_id("resolve")
            expect(box).to_contain_text("do not re-send")
            expect(box).to_contain_text("an approver or admin resolves it")
            expect(card.get_by_test_id("resolve-executed")).to_have_count(0)
            page.screenshot(path="/tmp/rfq-web-unresolved.png", full_page=True)

            page = browser.new_page(viewport={"width": 1440, "height": 1000})  # a new context
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(slow_desk_server.base + "/")
            login(page, "carol")
            card = page.locator(f'[data-testid=rfq-card][data-rfq-id="{rfq_id}"]')
            expect(card).to_have_attribute("data-state", "unresolved")
            card.get_by_test_id("resolve-executed").click()  # no evidence yet: refused locally
            expect(card.get_by_test_id("resolve-evidence")).to_have_class("input small invalid")
            card.get_by_test_id("resolve-evidence").fill("desk-a blotter line 12, call 14:05")
            card.get_by_test_id("resolve-trade-id").fill("DA-7781")
            card.get_by_test_id("resolve-executed").click()
            expect(card).to_have_attribute("data-state", "filled")
            expect(card.get_by_test_id("award")).to_contain_text("resolved by carol")
            expect(card.get_by_test_id("fill")).to_contain_text("DA-7781")
            page.screenshot(path="/tmp/rfq-web-resolved.png", full_page=True)
        finally:
            browser.close()
    assert problems == []
