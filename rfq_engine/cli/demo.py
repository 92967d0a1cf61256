"""``rfq demo``: the main job on embedded defaults, with no external service.

Five simulated desks (one always declines, one always rejects on last look), one
mandate, a fixed market. It runs a sell-future hedge RFQ and a two-leg costless-collar
RFQ, shows quotes arriving live with the window's countdown, the ranking, the award and
the fill, then verifies the audit chain.
"""

from __future__ import annotations

import calendar
import tomllib
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from rfq_engine.cli.live import LiveView, money
from rfq_engine.config import parse_config
from rfq_engine.domain import RfqSpec, utc_now

__all__ = ["DEMO_DEALERS", "demo_rfqs", "run_demo", "run_demo_rfqs", "verify_demo_store"]

DEMO_DEALERS = ("alpha-otc", "bravo-otc", "charlie-mm", "delta-desk", "echo-desk")


def last_friday(year: int, month: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - 4) % 7)


def _month_ahead(today: date, months: int) -> tuple[int, int]:
    index = today.year * 12 + today.month - 1 + months
    return index // 12, index % 12 + 1


def demo_rfqs(today: date, window_ms: int,
              dealers: tuple[str, ...] = DEMO_DEALERS) -> list[tuple[str, RfqSpec]]:
    """The two hedges a miner runs: sell next month's production forward, and a collar."""
    future_expiry = last_friday(*_month_ahead(today, 1))
    option_expiry = last_friday(*_month_ahead(today, 3))
    common: dict[str, Any] = {"quantity": "100", "quantity_unit": "BTC", "dealers": list(dealers),
                              "requester": "treasury-desk", "mandate": "treasury",
                              "window_ms": window_ms}
    sell_future = RfqSpec.from_dict({
        **common, "direction": "sell",
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": future_expiry.isoformat()}, "side": "sell"}],
    })
    collar = RfqSpec.from_dict({
        **common, "direction": "buy",
        "legs": [
            {"instrument": {"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                            "expiry": option_expiry.isoformat(), "strike": "35000",
                            "option_type": "put"}, "side": "buy"},
            {"instrument": {"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                            "expiry": option_expiry.isoformat(), "strike": "50000",
                            "option_type": "call"}, "side": "sell"},
        ],
    })
    return [
        (f"Sell 100 BTC of the {future_expiry:%d %b %Y} future (next month's production)",
         sell_future),
        (f"Collar on 100 BTC to {option_expiry:%d %b %Y}: buy the 35,000 put, sell the "
         "50,000 call, quoted as one net premium (negative = the miner receives)", collar),
    ]


async def run_demo(store_url: str, *, fast: bool = False) -> int:
    from rfq_engine.wiring import open_app

    text = resources.files("rfq_engine.cli").joinpath("demo.toml").read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text), "embedded demo config")
    app = await open_app(config, store_url=store_url)
    view = LiveView()
    app.engine.add_listener(view)
    print(f"RFQ engine demo — store {store_url}, {len(app.engine.dealers)} simulated dealers: "
          f"{', '.join(app.engine.dealers)}")
    print("  (echo-desk declines everything; charlie-mm quotes tight but rejects on last look)")
    try:
        await run_demo_rfqs(app, view, 800 if fast else 3000, DEMO_DEALERS)
    finally:
        await view.close()
        await app.close()
    return await verify_demo_store(store_url)


async def run_demo_rfqs(app: Any, view: LiveView, window_ms: int, dealers: tuple[str, ...]) -> None:
    """Run the demo's RFQs one after the other on ``app``, printing each as it goes."""
    for title, spec in demo_rfqs(utc_now().date(), window_ms, dealers):
        print(f"\n== {title}")
        rfq_id = await app.engine.submit(spec)
        view.watch(rfq_id)
        state = await app.engine.wait(rfq_id)
        live = await app.store.get_rfq(rfq_id)
        fills = await app.store.fills(rfq_id)
        filled = sum((f.quantity for f in fills), Decimal(0))
        avg = sum((f.price * f.quantity for f in fills), Decimal(0)) / filled if fills else None
        print(f"  => {state.value.upper()}: {live.reason if live else ''}; filled "
              f"{filled} BTC at {money(avg)}  (rfq {rfq_id})")
    await view.close()


async def verify_demo_store(store_url: str) -> int:
    """Verify the audit chain of the demo's store and print the verdict; 0 or 4."""
    from rfq_engine.store import open_store

    store = open_store(store_url, readonly=True)
    await store.open()
    try:
        report = await store.verify()
    finally:
        await store.close()
    status = "intact" if report.ok else f"BROKEN at seq {report.first_bad_seq}: {report.problem}"
    print(f"\nAudit chain {status}: {report.events} events, head {report.head_hash[:16]}…")
    print(f"Inspect: rfq audit show <rfq_id> --store {store_url}")
    return 0 if report.ok else 4
