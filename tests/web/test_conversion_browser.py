"""A coin premium's conversion in the web decision view, in a real browser: ``rfq serve`` with
a Deribit ``book`` dealer (a real ccxt against the fake Deribit of ``tests/ccxt_dealers``, run
in a thread of this process) quotes a BTC put whose premium is in BTC; the engine converts it
at Deribit's index and ranks it in USD. The record view's model (``record.js``, as the server
serves it, in the browser) carries the conversion in the words of ``rfq audit show``: the BTC
premium, the fee, the index price with its source, and the USD price it was ranked at; the
record page shows the USD price and, under the quote, that conversion.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ccxt_dealers.fake_deribit import API_KEY, SECRET, FakeDeribit, expiry_name
from tests.serve_kit import users_toml
from tests.web.conftest import TIMEOUT_MS, TOKENS, Server, browser_page, serve

pytestmark = pytest.mark.slow

EXPIRY = date.today() + timedelta(days=30)
PUT = f"BTC-{expiry_name(EXPIRY)}-50000-P"


class VenueThread:
    """The fake Deribit on its own event loop in a thread, for a server in another process."""

    def __init__(self) -> None:
        self.venue = FakeDeribit(option_expiry=EXPIRY)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeDeribit:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.venue.start(), self.loop).result(10)
        return self.venue

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.venue.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _config(tmp_path: Path, venue_url: str) -> Path:
    users = users_toml({"alice": "trader", "dave": "compliance"}, TOKENS)
    path = tmp_path / "rfq.toml"
    path.write_text(f"""
[engine]
[store]
url = "sqlite+aiosqlite:///{tmp_path}/web.db"
[logging]
json = true
[api]
port = 0
{users}
[market]
spot = {{ BTC = "60000" }}
vol = {{ BTC = "0.5" }}
rate = "0.05"
hashprice = "55"
[mandates.treasury]
underlyings = ["BTC"]
instruments = ["option"]
max_tenor_days = 200
min_quotes = 1
price_tolerance_bps = "100000"
approval_threshold = "10000000"
[mandates.treasury.dealers]
deribit-book = {{ credit_limit = "1000000000" }}
[[dealers]]
id = "deribit-book"
kind = "ccxt"
[dealers.ccxt]
exchange = "deribit"
api_key_env = "T_WEB_DERIBIT_KEY"
secret_env = "T_WEB_DERIBIT_SECRET"
urls = {{ rest = "{venue_url}" }}
enable_rate_limit = false
journal_path = "{tmp_path}/deribit.journal"
""")
    return path


@pytest.fixture
def deribit_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, FakeDeribit]]:
    monkeypatch.setenv("T_WEB_DERIBIT_KEY", API_KEY)  # inherited by rfq serve
    monkeypatch.setenv("T_WEB_DERIBIT_SECRET", SECRET)
    with VenueThread() as venue:
        venue.set_book(PUT, bids=[("0.0140", "2")], asks=[("0.0150", "2")])
        for server in serve(tmp_path, _config(tmp_path, venue.url)):
            yield server, venue


def _api(server: Server, path: str, user: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        server.base + path, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKENS[user]}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_the_decision_view_carries_a_coin_premiums_conversion(
        deribit_server: tuple[Server, FakeDeribit]) -> None:
    from playwright.sync_api import expect

    server, venue = deribit_server
    expect.set_options(timeout=TIMEOUT_MS)
    created = _api(server, "/api/v1/rfqs", "alice", {
        "legs": [{"instrument": {"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": EXPIRY.isoformat(), "strike": "50000", "option_type": "put"},
                  "side": "buy"}],
        "direction": "buy", "quantity": "1", "quantity_unit": "BTC",
        "dealers": ["deribit-book"], "mandate": "treasury", "window_ms": 1500})
    rfq_id = created["rfq_id"]
    with browser_page(server.base, "dave") as (page, problems):
        page.goto(f"{server.base}/#/compliance/{rfq_id}")
        expect(page.get_by_test_id("record-state")).to_have_text("filled")
        row = page.locator('[data-testid=record-quote][data-dealer="deribit-book"]')
        # (0.0150 + Deribit's fee 0.0003) BTC at the 60,000 index: the USD price it ranked at
        expect(row).to_contain_text("918")
        view = _api(server, f"/api/v1/rfqs/{rfq_id}", "dave")
        [quote] = view["decision"]["quotes"]  # what the API serializes for the view
        assert quote["conversion"]["ask"] == {"premium": "0.015", "fee": "0.0003",
                                              "all_in": "0.0153", "price": "918"}
        texts = page.evaluate("""async (view) => {
          const m = await import("/static/record.js");
          return m.ladder(m.fromView(view)).rows.filter((r) => r.quote).map((r) => r.conversion);
        }""", view)
        at = quote["conversion"]["index"]["at"]
        expected = (f"converted at 60000 USD (deribit public/ticker {PUT} index_price, {at}): "
                    "ask 0.015 + fee 0.0003 = 0.0153 BTC -> 918 USD")
        assert texts == [expected]
        # and the record page shows it under the quote, as a reviewer reads it
        expect(row.get_by_test_id("record-quote-conversion")).to_have_text(expected)
        page.screenshot(path="/tmp/rfq-web-conversion.png", full_page=True)
    assert problems == []
    assert len(venue.order_requests) == 1 and venue.executed == 1
