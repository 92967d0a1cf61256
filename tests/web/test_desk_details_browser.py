"""The details a busy desk reads at a glance (issue 14), in a real browser: an approval
card says when the request lapses; a price tie in the ladder says the earlier quote won;
the compliance table keeps its REASON column readable at 1366 px; the scenario chart draws
the payoff as a curve whose kinks are the strikes, with labelled axes; every date field is
a UTC date typed as YYYY-MM-DD, never the browser's local mm/dd/yyyy.

Screenshots go to /tmp/rfq-web-*.png for a person to look at.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SHOTS,
    TIMEOUT_MS,
    TOKENS,
    Server,
    login,
    serve,
    write_config,
)

pytestmark = pytest.mark.slow

DESKS = {
    # desk-a and desk-b quote the same model at the same spread: the same price, desk-a
    # first; desk-c is wider. The tie goes to desk-a, because its quote came first.
    "desk-a": 'latency_ms = 200\nspread_bps = "20"\n',
    "desk-b": 'latency_ms = 700\nspread_bps = "20"\n',
    "desk-c": 'latency_ms = 400\nspread_bps = "60"\n',
}
EXPIRY = (date.today() + timedelta(days=40)).isoformat()
FUTURE = {"kind": "future", "underlying": "BTC", "quote_ccy": "USD", "expiry": EXPIRY}
LONG_REASON = ("the desk lost its hedge line while the window was open; re-sent as a smaller "
               "clip after the call with the client, and the treasurer asked for this to be "
               "kept on the record for the month-end review of every cancelled request")


@pytest.fixture
def desk_server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path, write_config(tmp_path, DESKS))


def call(server: Server, method: str, path: str, user: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.base + path, data=None if body is None else json.dumps(body).encode(),
        method=method, headers={"Authorization": f"Bearer {TOKENS[user]}",
                                "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def rfq(server: Server, **extra: Any) -> str:
    body = {"legs": [{"instrument": FUTURE, "side": "sell"}], "direction": "sell",
            "quantity": "5", "quantity_unit": "BTC", "dealers": list(DESKS),
            "mandate": "treasury", "window_ms": 1500, **extra}
    rfq_id: str = call(server, "POST", "/api/v1/rfqs", "alice", body)["rfq_id"]
    return rfq_id


def wait_for(server: Server, rfq_id: str, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        view: dict[str, Any] = call(server, "GET", f"/api/v1/rfqs/{rfq_id}", "dave")
        if view["state"] in states or time.monotonic() > deadline:
            assert view["state"] in states, view["state"]
            return view
        time.sleep(0.1)


def points(polyline: Any) -> list[tuple[float, float]]:
    text = polyline.get_attribute("points")
    return [(float(x), float(y)) for x, y in (p.split(",") for p in text.split())]


def test_the_desk_details_in_a_browser(desk_server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    server = desk_server
    tied = rfq(server)
    pending = rfq(server, require_approval=True)
    cancelled = rfq(server, window_ms=60_000)
    call(server, "POST", f"/api/v1/rfqs/{cancelled}/cancel", "alice", {"reason": LONG_REASON})
    view = wait_for(server, tied, {"filled"})
    ranking = view["decision"]["quotes"]
    prices = {q["dealer_id"]: q["bid"] for q in ranking}
    assert prices["desk-a"] == prices["desk-b"] != prices["desk-c"], prices  # a tie on price
    approval = wait_for(server, pending, {"pending_approval"})["decision"]["approval"]
    expires = datetime.fromisoformat(approval["expires_at"].replace("Z", "+00:00"))
    wait_for(server, cancelled, {"cancelled"})

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def page_for(user: str, width: int, height: int = 1000) -> Any:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(TIMEOUT_MS)
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on("console", lambda m: problems.append(f"console: {m.text}")
                        if m.type == "error" else None)  # a CSP violation is one too
                page.goto(server.base + "/")
                login(page, user)
                return page

            # -- the approval card says when the request lapses, in UTC, and counts down
            page = page_for("carol", 1440)
            card = page.locator(f'[data-testid=rfq-card][data-rfq-id="{pending}"]')
            expect(card).to_have_attribute("data-state", "pending_approval")
            note = card.get_by_test_id("approval-expiry")
            expect(note).to_contain_text(f"expires {expires:%Y-%m-%d %H:%M:%S} UTC")
            expect(note).to_contain_text(re.compile(r"in 1[45]:\d\d"))  # 15 minutes by default
            first = note.inner_text()
            page.wait_for_timeout(1200)
            assert note.inner_text() != first  # it counts down
            expect(card.get_by_test_id("approve")).to_be_visible()
            live = rfq(server, require_approval=True)  # arrives by the stream, not a reload
            card = page.locator(f'[data-testid=rfq-card][data-rfq-id="{live}"]')
            expect(card.get_by_test_id("approval-expiry")).to_contain_text(
                re.compile(r"expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · in 1[45]:\d\d"))
            call(server, "POST", f"/api/v1/rfqs/{live}/refuse", "carol", {"reason": "not today"})
            expect(card).to_have_attribute("data-state", "rejected")

            # -- the tie: desk-a and desk-b at one price, desk-a first because it quoted first
            page.locator(f'[data-testid=history-row][data-rfq-id="{tied}"]').click()
            card = page.locator(f'[data-testid=rfq-card][data-rfq-id="{tied}"]')
            a = card.locator("[data-testid=quote-row][data-dealer=desk-a]")
            b = card.locator("[data-testid=quote-row][data-dealer=desk-b]")
            expect(a.get_by_test_id("quote-rank")).to_have_text("1")
            expect(b.get_by_test_id("quote-rank")).to_have_text("2")
            expect(a.get_by_test_id("quote-tie")).to_contain_text("tie on price: quoted first")
            expect(b.get_by_test_id("quote-tie")).to_contain_text(
                re.compile(r"tie with desk-a: quoted \d+ ms later"))
            expect(card.locator("[data-testid=quote-row][data-dealer=desk-c]")
                   .get_by_test_id("quote-tie")).to_have_count(0)
            expect(card.get_by_test_id("tie-rule")).to_contain_text(
                "Equal prices rank by the time each quote was received, the earlier first "
                "(desk-a = desk-b at")
            expect(card.get_by_test_id("tie-rule")).to_contain_text("desk-a quoted first")
            card.scroll_into_view_if_needed()
            page.screenshot(path=f"{SHOTS}-approval-and-tie.png", full_page=True)

            # -- the ticket's dates: text in YYYY-MM-DD, UTC; a local format is refused
            page = page_for("alice", 1440)
            page.get_by_test_id("template-collar").click()
            expiry = page.locator('[data-field="legs[0].instrument.expiry"]')
            assert expiry.get_attribute("type") == "text"
            assert expiry.get_attribute("placeholder") == "YYYY-MM-DD"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", expiry.input_value())
            expect(page.locator(".mini-field", has=expiry)).to_contain_text("Expiry (UTC)")
            expiry.fill("03/26/2027")
            page.get_by_test_id("dealer-desk-a").check()
            page.get_by_test_id("rfq-submit").click()
            expect(page.get_by_test_id("rfq-form-error")).to_contain_text("YYYY-MM-DD (UTC)")
            expect(expiry).to_have_class(re.compile(r"\binvalid\b"))
            assert page.locator("input[type=date]").count() == 0

            # -- compliance at 1366 px: dates in UTC, and the REASON column is whole
            page = page_for("dave", 1366, 768)
            expect(page.get_by_test_id("search-form")).to_be_visible()
            for testid, label in (("search-from", "From (UTC date)"), ("search-to", "To (UTC, inclusive)")):
                field = page.get_by_test_id(testid)
                assert field.get_attribute("type") == "text"
                assert field.get_attribute("placeholder") == "YYYY-MM-DD"
                expect(page.locator("label.field", has=field)).to_contain_text(label)
            assert page.locator("input[type=date]").count() == 0
            rows = page.get_by_test_id("result-row")
            expect(rows).to_have_count(4)
            page.get_by_test_id("search-from").fill("2020-01-01")
            page.get_by_test_id("search-to").fill("2020-01-31")
            page.get_by_test_id("search-submit").click()
            expect(rows).to_have_count(0)
            page.get_by_test_id("search-from").fill("12/01/2020")  # a local format: refused
            page.get_by_test_id("search-submit").click()
            expect(page.get_by_test_id("search-from")).to_have_class(re.compile(r"\binvalid\b"))
            page.get_by_test_id("search-today").click()  # today in UTC, both ends
            today = datetime.now(UTC).date().isoformat()
            expect(page.get_by_test_id("search-from")).to_have_value(today)
            expect(rows).to_have_count(4)
            long_row = page.locator(f'[data-testid=result-row][data-rfq-id="{cancelled}"]')
            expect(long_row.locator("td.reason")).to_contain_text(LONG_REASON[-40:])
            geometry = page.evaluate("""(id) => {
              const row = document.querySelector(`[data-testid=result-row][data-rfq-id="${id}"]`);
              const cell = row.querySelector('td.reason');
              const wrap = row.closest('.table-wrap');
              const c = cell.getBoundingClientRect(), w = wrap.getBoundingClientRect();
              return {cellRight: c.right, wrapRight: w.right, scroll: wrap.scrollWidth,
                      client: wrap.clientWidth, cellScroll: cell.scrollWidth,
                      cellClient: cell.clientWidth, height: c.height,
                      page: document.documentElement.scrollWidth, viewport: window.innerWidth};
            }""", cancelled)
            page.screenshot(path=f"{SHOTS}-compliance-1366.png", full_page=True)
            assert geometry["cellRight"] <= geometry["wrapRight"] + 1, geometry  # not cut off
            assert geometry["scroll"] <= geometry["client"] + 1, geometry  # no sideways scroll
            assert geometry["cellScroll"] <= geometry["cellClient"] + 1, geometry
            assert geometry["page"] <= geometry["viewport"], geometry
            assert geometry["height"] > 30, geometry  # the long reason wraps onto more lines

            # -- the decision records: the tie and the approval's expiry
            page.goto(f"{server.base}/#/compliance/{tied}")
            record = page.get_by_test_id("decision-record")
            expect(record.get_by_test_id("record-tie-rule")).to_contain_text("desk-a quoted first")
            expect(record.locator("[data-testid=record-quote][data-dealer=desk-b]")).to_contain_text(
                "tie with desk-a")
            record.get_by_test_id("record-quotes").screenshot(path=f"{SHOTS}-record-tie.png")
            page.goto(f"{server.base}/#/compliance/{pending}")
            expect(page.get_by_test_id("record-approval-expiry")).to_have_text(
                f"{expires:%Y-%m-%d %H:%M:%S} UTC")

            # -- the scenario chart: the payoff as a curve, its kinks at the strikes
            page.get_by_test_id("nav-scenarios").click()
            chart = page.locator("svg[data-testid=scenario-chart]")
            expect(chart.locator("[data-testid=scenario-kink]")).to_have_count(2)
            kinks = chart.locator("[data-testid=scenario-kink]").evaluate_all(
                "els => els.map(e => [e.dataset.x, +e.getAttribute('cx')])")
            assert [k[0] for k in kinks] == ["35000", "50000"], kinks
            tags = chart.get_by_test_id("scenario-kink-tag")
            expect(tags).to_have_text(["floor 3.5M", "cap 5M"])  # a collar's floor and cap
            hedged = points(chart.locator("polyline[data-series=hedged]"))
            unhedged = points(chart.locator("polyline[data-series=unhedged]"))
            assert len(hedged) >= 30 and len(unhedged) == len(hedged), (len(hedged), len(unhedged))
            put_x, call_x = kinks[0][1], kinks[1][1]
            assert any(abs(x - put_x) < 0.2 for x, _ in hedged)  # a vertex at each strike
            assert any(abs(x - call_x) < 0.2 for x, _ in hedged)
            floor = {round(y, 1) for x, y in hedged if x <= put_x + 0.2}
            cap = {round(y, 1) for x, y in hedged if x >= call_x - 0.2}
            middle = {round(y, 1) for x, y in hedged if put_x + 0.2 < x < call_x - 0.2}
            assert len(floor) == 1 and len(cap) == 1 and len(middle) > 5, (floor, cap, middle)
            assert len({round(y, 1) for _, y in unhedged}) == len(unhedged)  # a straight rise
            expect(chart.get_by_test_id("x-axis-label")).to_have_text("price at expiry (USD per unit)")
            expect(chart.get_by_test_id("y-axis-label")).to_have_text("revenue for 100 units (USD)")
            expect(page.get_by_test_id("scenario-table")).to_contain_text("35,000.00")
            chart.scroll_into_view_if_needed()
            page.screenshot(path=f"{SHOTS}-scenario-curve.png", full_page=True)
            page.get_by_test_id("scenario-put").click()  # a protective put: one kink, a floor
            expect(chart.locator("[data-testid=scenario-kink]")).to_have_count(1)
            page.get_by_test_id("scenario-ndf").click()  # linear: no kink, still a curve
            expect(chart.locator("[data-testid=scenario-kink]")).to_have_count(0)
            expect(chart.get_by_test_id("x-axis-label")).to_contain_text("settlement rate")
            assert len(points(chart.locator("polyline[data-series=hedged]"))) >= 20
        finally:
            browser.close()
    assert not problems, problems
