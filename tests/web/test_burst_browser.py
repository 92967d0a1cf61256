"""The blotter through a burst: 110 RFQs posted at once while a trader watches. Every one
shows up live and ends, the live count returns to 0, the ended cards leave the live panel
but for the newest six, the history's first page is the newest 100 in the API's order, and
the page still follows the next RFQ. (After such a burst the page once kept 99 ended cards
and, rebuilding every card for each new RFQ, was busy for seconds.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.web.conftest import TIMEOUT_MS, browser_page
from tests.web.test_history_paging_browser import PAGE, _all_pages, _post_rfq, fast_desk_server

pytestmark = pytest.mark.slow

BURST = 110
MAX_FINISHED_CARDS = 6  # rfq_engine/api/static/blotter.js
__all__ = ["fast_desk_server"]  # the fixture, imported for this module's tests


def test_the_blotter_follows_a_burst_of_rfqs(fast_desk_server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server = fast_desk_server
    expect.set_options(timeout=TIMEOUT_MS * 3)
    with browser_page(server.base, "alice", timeout_ms=TIMEOUT_MS * 3,
                      console_errors=True) as (page, problems):
        with ThreadPoolExecutor(16) as pool:
            posted = set(pool.map(lambda _: _post_rfq(server), range(BURST)))
        assert len(posted) == BURST
        expect(page.get_by_test_id("live-count")).to_have_text("0 live")
        # the ended RFQs leave the live panel but for the newest few (they used to stay:
        # 99 finished cards after a burst of 110, until the next RFQ was sent)
        expect(page.get_by_test_id("rfq-card")).to_have_count(MAX_FINISHED_CARDS)
        rows = page.get_by_test_id("history-row")
        expect(rows).to_have_count(PAGE)
        api_order = _all_pages(server, "")
        assert set(api_order) == posted
        shown: list[str] = rows.evaluate_all("rs => rs.map(r => r.dataset.rfqId)")
        assert shown == api_order[:PAGE]
        newest = _post_rfq(server, "2")  # and the page still follows what happens
        expect(rows.first).to_have_attribute("data-rfq-id", newest)
        expect(page.get_by_test_id("live-count")).to_have_text("0 live")
        page.screenshot(path="/tmp/rfq-web-burst.png")
        assert not problems, problems
