"""Funding paid so far per perpetual position (``funding.perpetual_funding``), worked to the cent
(docs/risk.md, "Funding paid so far"): a short of 10 BTC of a linear perpetual from 01:00 UTC on
1 December to 01:00 on 31 December crosses 90 funding times (08:00, 16:00, then three a day, then
00:00 on the 31st); at +0.01% and 40,000 each pays the short 40.00 USD: 3,600.00 received."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Perpetual
from rfq_engine.hedging.funding import funding_times, perpetual_funding, position_funding
from rfq_engine.hedging.positions import ContractTerms, leg_trades
from rfq_engine.hedging.risk import RiskConfig, funding_rates, risk_report
from tests.hedging.test_margin import T0, TODAY, fill, market

PERP = Perpetual("BTC", "USD")
NOW = T0 + timedelta(days=30, hours=1)  # fill(n=1) is at T0 + 1 hour


def test_funding_times_every_eight_hours_from_midnight_utc() -> None:
    start = datetime(2026, 12, 1, 1, tzinfo=UTC)
    times = funding_times(start, start + timedelta(days=1), 3)
    assert [t.hour for t in times] == [8, 16, 0]
    assert funding_times(datetime(2026, 12, 1, 8, tzinfo=UTC), datetime(2026, 12, 1, 8, tzinfo=UTC), 3) == []
    assert len(funding_times(start, start + timedelta(days=1), 24)) == 24
    with pytest.raises(ValidationError):
        funding_times(start, start, 0)


def test_a_short_linear_perpetual_receives_3600_over_90_intervals() -> None:
    (row,) = perpetual_funding([fill(PERP, "sell", "10", "40000", dealer="bybit", n=1)],
                               {"bybit": (D("0.0001"), 3)}, market(btc="40000"), NOW)
    assert row["intervals"] == 90 and row["paid"] == "-3600.00" and row["paid_usd"] == "-3600.00"
    assert row["currency"] == "USD" and row["held"] == "-10" and row["instrument"] == "BTC-USD-PERP"
    assert row["since"] == "2026-12-01T01:00:00.000000Z"


def test_the_holding_at_each_funding_time_and_an_inverse_perpetual() -> None:
    short = fill(PERP, "sell", "10", "40000", dealer="bybit", n=1)
    # bought back 5 at 00:30 on 16 December: 45 intervals at 10 (1 Dec 08:00 to 16 Dec 00:00), 45 at 5
    back = replace(fill(PERP, "buy", "5", "40000", dealer="bybit", n=2),
                   filled_at=datetime(2026, 12, 16, 0, 30, tzinfo=UTC))
    (row,) = perpetual_funding([short, back], {"bybit": (D("0.0001"), 3)}, market(btc="40000"), NOW)
    assert row["intervals"] == 90 and row["paid"] == str(-(45 * D("40.00") + 45 * D("20.00")))
    inverse = replace(fill(PERP, "sell", "10", "40000", dealer="deribit", n=1),
                      contract=ContractTerms(settlement="BTC", inverse=True, notional=D(400000)))
    accrual = position_funding(leg_trades(inverse), rate=D("0.0001"), per_day=3, mark=D(40000), now=NOW)
    assert accrual.currency == "BTC" and len(accrual.payments) == 90
    # 400,000 / 40,000 x 0.01% a time
    assert accrual.payments[0][1] == D("0.00100000") and accrual.total == D("0.09")
    (coin,) = perpetual_funding([inverse], {"deribit": (D("0.0001"), 3)}, market(btc="40000"), NOW)
    assert coin["inverse"] is True and coin["paid"] == "-0.09000000" and coin["paid_usd"] == "-3600.00"


def test_a_dealer_without_a_rate_says_so_and_the_risk_report_carries_it() -> None:
    (row,) = perpetual_funding([fill(PERP, "buy", "1", "40000", dealer="desk", n=1)], {}, market(), NOW)
    assert row["paid"] is None and "no funding_rate in [risk.venues.desk]" in row["note"]
    cfg = RiskConfig.model_validate({"venues": {"bybit": {
        "collateral": "100000", "initial_margin": "0.1", "maintenance_margin": "0.05",
        "funding_rate": "0.0001"}}})
    assert funding_rates(cfg) == {"bybit": (D("0.0001"), 3)}
    trades = [fill(PERP, "sell", "10", "40000", dealer="bybit", n=1)]
    report, _ = risk_report(cfg=cfg, trades=trades, snapshot=market(btc="40000"), today=TODAY,
                            agreements={}, credit_lines={}, now=NOW)
    (accrued,) = report["funding_accrued"]
    assert accrued["paid"] == "-3600.00" and accrued["dealer"] == "bybit"
    without, _ = risk_report(cfg=cfg, trades=trades, snapshot=market(btc="40000"), today=TODAY,
                             agreements={}, credit_lines={})
    assert without["funding_accrued"] == []


async def test_the_programs_api_shows_a_perpetual_programs_funding(tmp_path: Any) -> None:
    """A perpetual program hedges through a real scheduler and engine; the programs API shows its
    position's funding at the dealer's configured rate, the payments since its fill."""
    from aiohttp.test_utils import TestClient, TestServer

    from rfq_engine.api.app import create_web_app
    from rfq_engine.config import parse_config
    from rfq_engine.domain.values import parse_ts, utc_now
    from rfq_engine.hedging.scheduler import HedgeScheduler
    from rfq_engine.wiring import open_app
    from tests.api.conftest import DEALERS, auth, config_data

    data = config_data(tmp_path, max_hedge_ratio="0.8")
    data["mandates"]["treasury"]["instruments"].append("perpetual")
    data["forecast"] = {"hashrate": "1 EH/s", "difficulty": "100000000000000"}
    data["programs"] = {"perp": {"strategy": "perpetual", "mandate": "treasury", "dealers": DEALERS,
                                 "hedge_ratio": "0.5", "schedule": "0 9 1 * *", "window_ms": 300}}
    data["risk"] = {"venues": {d: {"collateral": "10000000", "currency": "USD", "initial_margin": "0.1",
                                   "maintenance_margin": "0.05", "funding_rate": "0.0001"}
                               for d in DEALERS}}
    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        now = utc_now()
        scheduler = HedgeScheduler.from_config(app.engine, app.store, config, app.reference, lambda: now)
        (decision,) = await scheduler.run_due(now)
        assert decision.rfq_ids and await app.engine.wait(decision.rfq_ids[0], 10) == "filled"
        resp = await client.get("/api/v1/hedge/programs/perp", headers=auth("dave"))
        assert resp.status == 200
        body = await resp.json()
    finally:
        await client.close()
        await app.close()
    assert body["funding_error"] is None
    (row,) = body["funding"]
    assert row["instrument"] == "BTC-USD-PERP" and row["rate"] == "0.0001" and row["currency"] == "USD"
    assert D(row["held"]) < 0 and row["dealer"] in DEALERS
    since, as_of = parse_ts(row["since"], "since"), parse_ts(body["as_of"], "as_of")
    crossed = len(funding_times(since, as_of, 3))  # usually none: the fill was just now
    per_interval = (-D(row["held"]) * D(40000) * D("0.0001")).quantize(D("0.01"))
    assert row["intervals"] == crossed and D(row["paid"]) == -crossed * per_interval
