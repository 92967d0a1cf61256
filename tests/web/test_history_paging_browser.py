"""The blotter's RFQ history follows the ``next`` cursor of ``GET /api/v1/rfqs``: the first
page, then the following ones when the table is scrolled to its end or "Load more" is
clicked, every RFQ once and newest first, as the API orders them; a new RFQ keeps the pages
already read; a filter starts again from its own first page."""

from __future__ import annotations

import json
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

PAGE = 100  # HISTORY_PAGE in rfq_engine/api/static/blotter.js
RFQS = 230  # three pages
DESKS = {"desk-a": 'latency_ms = 5\nspread_bps = "20"\n',
         "desk-b": 'latency_ms = 10\nspread_bps = "30"\n'}
EXPIRY = (date.today() + timedelta(days=40)).isoformat()


@pytest.fixture
def fast_desk_server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path, write_config(tmp_path, DESKS))


def _call(server: Server, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        server.base + path, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKENS['alice']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _post_rfq(server: Server, quantity: str = "1") -> str:
    body = {"legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                     "expiry": EXPIRY}, "side": "sell"}],
            "direction": "sell", "quantity": quantity, "quantity_unit": "BTC",
            "dealers": list(DESKS), "mandate": "treasury", "window_ms": 100}
    return str(_call(server, "/api/v1/rfqs", body)["rfq_id"])


def test_the_history_follows_the_next_cursor(fast_desk_server: Server) -> None:
    from playwright.sync_api import expect

    server = fast_desk_server
    posted = {_post_rfq(server) for _ in range(RFQS)}
    api_order = _all_pages(server, "")
    assert set(api_order) == posted

    expect.set_options(timeout=TIMEOUT_MS)
    with browser_page(server.base, "alice") as (page, problems):
        rows = page.get_by_test_id("history-row")
        more = page.get_by_test_id("history-more")

        def shown() -> list[str]:
            ids: list[str] = rows.evaluate_all("rs => rs.map(r => r.dataset.rfqId)")
            return ids

        # -- the first page, then "Load more" reads the second one
        expect(rows).to_have_count(PAGE)
        assert shown() == api_order[:PAGE]
        expect(more).to_be_visible()
        more.click()
        expect(rows).to_have_count(2 * PAGE)
        assert shown() == api_order[: 2 * PAGE]

        # -- scrolling the table to its end reads the next page (the last one)
        page.locator(".history-panel .table-wrap").evaluate("w => { w.scrollTop = w.scrollHeight; }")
        expect(rows).to_have_count(RFQS)
        expect(more).to_be_hidden()
        assert shown() == api_order  # each RFQ once, newest first, as the API pages them

        # -- a new RFQ: the first page is read again, the older pages stay
        newest = _post_rfq(server, "2")
        expect(rows).to_have_count(RFQS + 1)
        expect(rows.first).to_have_attribute("data-rfq-id", newest)
        assert shown() == [newest, *api_order]

        # -- a filter starts from its own first page
        page.get_by_test_id("history-state").select_option("filled")
        expect(page.get_by_test_id("live-count")).to_have_text("0 live")  # the newest ended
        filled = _all_pages(server, "state=filled")
        assert len(filled) > PAGE, "the desks fill every RFQ of this test"
        expect(rows).to_have_count(PAGE)
        expect(more).to_be_visible()
        assert shown() == filled[:PAGE]
        page.screenshot(path="/tmp/rfq-web-history-pages.png")
        assert not problems, problems


def _all_pages(server: Server, query: str) -> list[str]:
    """Every RFQ id the API lists for ``query``, following ``next`` (pages of ``PAGE``)."""
    ids: list[str] = []
    after = ""
    while True:
        data = _call(server, f"/api/v1/rfqs?limit={PAGE}&{query}{after}")
        ids.extend(r["rfq_id"] for r in data["rfqs"])
        if data["next"] is None:
            return ids
        after = f"&after={data['next']}"
