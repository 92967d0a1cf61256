"""The web UI in a real browser (Debian's Chromium driven by Playwright, no browser
download): a trader sends a collar RFQ and watches the quotes arrive ranked, the window
count down and the fill appear; compliance then finds the RFQ, reads its decision record
and the chain status, and opens the dealer scorecards.

Screenshots go to /tmp/rfq-web-*.png for a person to look at; nothing asserts on pixels.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.web.conftest import (
    DEALERS,
    SHOTS,
    TIMEOUT_MS,
    TOKENS,
    Server,
    browser_page,
    login,
)

pytestmark = pytest.mark.slow



# Logs each distinct state of the first RFQ card: its state, whether the countdown shows,
# the valid quotes in ladder order with their rank, and how many dealers are still awaited.
LADDER_LOG = """() => {
  window.__ladder = [];
  const snap = () => {
    const card = document.querySelector('[data-testid=rfq-card]');
    if (!card) return;
    const rows = [...card.querySelectorAll('[data-testid=quote-row]')];
    const s = {state: card.dataset.state,
               countdown: !!card.querySelector('[data-testid=countdown]'),
               waiting: rows.filter(r => r.dataset.status === 'waiting').length,
               valid: rows.filter(r => ['valid', 'awarded', 'filled'].includes(r.dataset.status))
                          .map(r => [r.dataset.dealer,
                                     r.querySelector('[data-testid=quote-rank]').textContent])};
    const last = window.__ladder[window.__ladder.length - 1];
    if (JSON.stringify(last) !== JSON.stringify(s)) window.__ladder.push(s);
  };
  new MutationObserver(snap).observe(document.querySelector('[data-testid=live-rfqs]'),
                                     {childList: true, subtree: true, attributes: true});
}"""


def test_trader_collar_then_compliance_review(rfq_server: Server) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with browser_page(rfq_server.base, console_errors=True) as (page, problems):

        # -- a wrong token is refused, then alice signs in
        page.get_by_test_id("login-token").fill("not-a-valid-token-000000")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_contain_text("not recognised")
        problems.clear()  # the refused sign-in logs its 401 to the console, as it should
        login(page, "alice")
        expect(page.get_by_test_id("nav-compliance")).to_be_hidden()  # traders: no audit
        expect(page.get_by_test_id("stream-status")).to_have_attribute("data-state", "live")

        # -- money stays exact in the page: decimal strings, never floats
        exact = page.evaluate("""async () => {
          const d = await import('/static/decimal.js');
          return [d.sub('0.3', '0.1'), d.fmt('12345678.905', 2), d.cmp('395.73', '395.730'),
                  d.fmtPrice('-12.5'), d.bps('355.72', '395.73', '40000'),
                  d.round('355.7413886873243694227981798', 2)];
        }""")
        assert exact == ["0.2", "12,345,678.91", 0, "-12.50", "-10.0", "355.74"]

        # -- the collar template: buy put + sell call, one net ask
        page.get_by_test_id("template-collar").click()
        expect(page.get_by_test_id("rfq-leg")).to_have_count(2)
        expect(page.get_by_test_id("rfq-orientation")).to_contain_text(
            re.compile(r"You buy the package: buy .*put, sell .*call\. .*net ask"))
        for dealer in DEALERS:
            page.get_by_test_id(f"dealer-{dealer}").check()
        page.get_by_test_id("rfq-window").fill("3")

        # -- the ladder: countdown while open, quotes ranked as they arrive. Every
        # state the card goes through is logged in the page, so nothing depends on
        # catching a moment in time.
        page.evaluate(LADDER_LOG)
        page.get_by_test_id("rfq-submit").click()
        card = page.get_by_test_id("rfq-card").first
        rfq_id = card.get_attribute("data-rfq-id")
        assert rfq_id
        countdown = card.get_by_test_id("countdown")
        expect(countdown).to_contain_text(re.compile(r"\d\.\ds"))
        page.wait_for_function(  # all three quotes in (or the window over): a screenshot
            "() => document.querySelectorAll('[data-testid=quote-row][data-status=valid]')"
            ".length >= 3 || !document.querySelector('[data-testid=countdown]')")
        page.screenshot(path=f"{SHOTS}-blotter-open.png", full_page=True)

        # -- the fill; the off-market quote greyed with its reason; the silent desk
        expect(card.get_by_test_id("fill")).to_contain_text("FILLED", timeout=30_000)
        expect(card.get_by_test_id("rfq-state")).to_have_text("filled")
        expect(card.get_by_test_id("fill")).to_contain_text("desk-a")
        expect(card.get_by_test_id("award")).to_contain_text("confirmed")
        rejected = card.locator("[data-testid=quote-row][data-dealer=desk-c]")
        expect(rejected).to_have_attribute("data-status", "rejected")
        expect(rejected).to_contain_text("rejected:")
        expect(card.locator("[data-testid=quote-row][data-dealer=desk-d]")).to_contain_text(
            "no answer")
        expect(countdown).to_have_count(0)
        seen = page.evaluate("() => window.__ladder")
        one = {"state": "open", "countdown": True, "waiting": 3, "valid": [["desk-a", "1"]]}
        two = {"state": "open", "countdown": True, "waiting": 2,
               "valid": [["desk-a", "1"], ["desk-b", "2"]]}  # a buy: the lower ask first
        assert one in seen and two in seen and seen.index(one) < seen.index(two), seen
        assert seen[-1]["valid"] == [["desk-a", "1"], ["desk-b", "2"]], seen  # desk-c out
        prices = [Decimal(t.replace(",", "")) for t in card.locator(
            "[data-testid=quote-row][data-status=filled] td.price, "
            "[data-testid=quote-row][data-status=valid] td.price").all_inner_texts()]
        assert len(prices) == 2 and prices == sorted(prices)
        history = page.locator(f"[data-testid=history-row][data-rfq-id='{rfq_id}']")
        expect(history).to_contain_text("filled")
        page.screenshot(path=f"{SHOTS}-blotter-filled.png", full_page=True)

        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("login-form")).to_be_visible()
        assert page.evaluate("() => sessionStorage.length") == 0  # the token is gone

        # -- compliance: no trading, search, the decision record, the chain
        login(page, "dave")
        expect(page.get_by_test_id("search-form")).to_be_visible()  # dave lands here
        page.get_by_test_id("nav-blotter").click()
        expect(page.get_by_test_id("history-table")).to_be_visible()
        expect(page.get_by_test_id("rfq-ticket")).to_have_count(0)
        expect(page.get_by_test_id("cancel-rfq")).to_have_count(0)
        page.get_by_test_id("nav-compliance").click()
        page.get_by_test_id("search-input").fill(rfq_id[-8:])
        page.get_by_test_id("search-submit").click()
        results = page.get_by_test_id("result-row")
        expect(results).to_have_count(1)
        expect(page.get_by_test_id("chain-status")).to_have_text("Chain intact")
        page.screenshot(path=f"{SHOTS}-compliance-search.png", full_page=True)
        results.first.click()

        record = page.get_by_test_id("decision-record")
        expect(record.get_by_test_id("record-id")).to_have_text(rfq_id)
        asked = record.get_by_test_id("asked-row")
        expect(asked).to_have_count(len(DEALERS))
        assert sorted(asked.evaluate_all("rows => rows.map(r => r.dataset.dealer)")) \
            == sorted(DEALERS)
        expect(record.get_by_test_id("record-winner")).to_have_text("desk-a")
        expect(record.get_by_test_id("record-cover")).to_contain_text(re.compile(r"\d"))
        verdicts = record.get_by_test_id("rule-verdict")
        assert verdicts.count() >= 3  # every pre-trade rule plus min_quotes
        expect(record.locator("[data-testid=record-quote][data-dealer=desk-c]")).to_contain_text(
            "rejected")
        expect(record.get_by_test_id("record-slippage")).to_contain_text("bps")
        expect(record.get_by_test_id("record-fill")).to_have_count(1)
        expect(page.get_by_test_id("chain-status")).to_have_text("Chain intact")
        with page.expect_download() as download:
            page.get_by_test_id("export-jsonl").click()
        exported = download.value.path().read_text()
        assert exported.count(rfq_id) == len(exported.strip().splitlines()) > 5
        page.screenshot(path=f"{SHOTS}-decision-record.png", full_page=True)

        # -- scorecards: one SVG chart per metric
        page.get_by_test_id("nav-scorecards").click()
        expect(page.get_by_test_id("scorecard-row")).to_have_count(len(DEALERS))
        for metric in ("response_rate", "median_response_ms", "win_rate", "avg_distance_bps",
                       "last_look_reject_rate"):
            chart = page.locator(f"svg[data-testid=chart-{metric}]")
            expect(chart).to_be_visible()
        expect(page.locator("svg[data-testid=chart-response_rate] rect.bar")).to_have_count(
            len(DEALERS))
        page.screenshot(path=f"{SHOTS}-scorecards.png", full_page=True)

        # -- scenarios: worked example A, hedged vs unhedged revenue across prices
        page.get_by_test_id("nav-scenarios").click()
        table = page.get_by_test_id("scenario-table")
        expect(table).to_contain_text("35,000.00")   # collar revenue per BTC at 25,000
        expect(table).to_contain_text("-5,000.00")   # unhedged P&L per BTC at 25,000
        expect(page.locator("svg[data-testid=scenario-chart] polyline.series")).to_have_count(2)
        page.get_by_test_id("scenario-ndf").click()
        expect(page.get_by_test_id("scenario-table")).to_contain_text("90,000.00")  # example B
        page.screenshot(path=f"{SHOTS}-scenarios.png", full_page=True)
    assert not problems, problems
    log = rfq_server.log.read_text()
    assert not any(token in log for token in TOKENS.values())  # no token in the server log
