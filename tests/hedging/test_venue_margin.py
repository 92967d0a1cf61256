"""Venue margin read through real ccxt (``dealer_adapters.ccxt.margin``) from fakes of Deribit's
and OKX's account endpoints (``fake_venue_accounts``), and the risk report using the venue's
figures where it has them, saying which source each came from (docs/risk.md, "Venue margin").

Worked example (an inverse future's margin call, to the cent): short 400,000 USD of Deribit's
dated BTC future at 40,000 (10 BTC), marked at 50,000. The config's estimate (2.5 BTC collateral,
IM 10%, MM 5%) calls 0.3 BTC = 15,000.00 USD. Deribit says the margin balance is 0.5 BTC, the
initial margin 0.85 and the maintenance margin 0.45 (its own rates): the call is
0.85 - 0.5 = 0.35 BTC = 17,500.00 USD, the usage 0.45 / 0.5 = 90%, and its estimated
liquidation price 50,500 is 1% from its mark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.margin import MarginReader
from rfq_engine.domain.instruments import Future, Perpetual
from rfq_engine.hedging.positions import ContractTerms
from rfq_engine.hedging.risk import RiskConfig, risk_report
from tests.ccxt_dealers.fake_deribit import API_KEY as DERIBIT_KEY
from tests.ccxt_dealers.fake_deribit import SECRET as DERIBIT_SECRET
from tests.ccxt_dealers.fake_deribit import expiry_name
from tests.ccxt_dealers.fake_okx import API_KEY as OKX_KEY
from tests.hedging.fake_venue_accounts import DeribitAccounts, OkxAccounts
from tests.hedging.test_margin import TODAY, fill, market

ENV = {"T_DERIBIT_KEY": DERIBIT_KEY, "T_DERIBIT_SECRET": DERIBIT_SECRET,
       "T_OKX_KEY": OKX_KEY, "T_OKX_SECRET": "secret", "T_OKX_PASS": "pass"}
EXPIRY = TODAY + timedelta(days=60)
FUTURE = Future("BTC", "USD", EXPIRY)
ESTIMATE = {"collateral": "2.5", "initial_margin": "0.1", "maintenance_margin": "0.05"}


def _ccxt(exchange: str, url: str, tmp_path: Path) -> CcxtDealerConfig:
    keys = ({"api_key_env": "T_DERIBIT_KEY", "secret_env": "T_DERIBIT_SECRET"} if exchange == "deribit" else
            {"api_key_env": "T_OKX_KEY", "secret_env": "T_OKX_SECRET", "password_env": "T_OKX_PASS"})
    return CcxtDealerConfig.model_validate({
        "exchange": exchange, **keys, "urls": {"rest": url}, "enable_rate_limit": False, "timeout_ms": 2000,
        "journal_path": str(tmp_path / f"{exchange}.journal")})


def _inverse(instrument: Any, dealer: str, notional: str = "400000") -> Any:
    return replace(fill(instrument, "sell", "10", "40000", dealer=dealer, n=1),
                   contract=ContractTerms(settlement="BTC", inverse=True, notional=D(notional)))


@pytest.fixture
async def deribit() -> AsyncIterator[DeribitAccounts]:
    server = DeribitAccounts(future_expiry=EXPIRY)
    server.summaries["BTC"] = {"balance": 2.5, "equity": 0.5, "margin_balance": 0.5, "initial_margin": 0.85,
                               "maintenance_margin": 0.45, "available_funds": 0, "session_upl": -2.0}
    server.positions.append({
        "instrument_name": f"BTC-{expiry_name(EXPIRY)}", "kind": "future", "direction": "sell",
        "size": -400000.0, "size_currency": -8.0, "average_price": 40000.0, "mark_price": 50000.0,
        "index_price": 49990.0, "estimated_liquidation_price": 50500.0, "initial_margin": 0.85,
        "maintenance_margin": 0.45, "floating_profit_loss": -2.0, "realized_profit_loss": 0.0,
        "total_profit_loss": -2.0, "leverage": 50, "delta": -8.0, "open_orders_margin": 0.0})
    await server.start()
    yield server
    await server.stop()


async def _read(dealer: str, config: CcxtDealerConfig, currency: str = "BTC") -> Any:
    reader = MarginReader({dealer: (config, currency)}, ENV)
    try:
        return (await reader.read())[dealer]
    finally:
        await reader.close()


def _row(report: dict[str, Any]) -> dict[str, Any]:
    (row,) = report["venues"]
    return row


async def test_deribit_inverse_future_margin_call_from_the_venue(deribit: DeribitAccounts,
                                                                tmp_path: Path) -> None:
    account = await _read("deribit", _ccxt("deribit", deribit.url, tmp_path))
    assert account.error is None and account.currency == "BTC"
    assert (account.equity, account.initial_margin, account.maintenance_margin) == (D("0.5"), D("0.85"),
                                                                                  D("0.45"))
    # what ccxt asked the venue, read-only: the summary and the positions of the currency
    methods = [m for m, _ in deribit.account_requests]
    assert methods == ["private/get_account_summary", "private/get_positions"]
    assert all(p["currency"] == "BTC" for _, p in deribit.account_requests)
    assert deribit.executed == 0 and deribit.order_requests == []
    (held,) = account.positions
    assert held.symbol.startswith("BTC/USD:BTC-") and held.size == D(-400000)
    assert held.liquidation_price == D(50500) and held.market is not None and held.market.inverse

    cfg = RiskConfig.model_validate({"venues": {"deribit": ESTIMATE}})
    trades = [_inverse(FUTURE, "deribit")]
    estimate, _ = risk_report(cfg=cfg, trades=trades, snapshot=market(btc="50000"), today=TODAY,
                              agreements={}, credit_lines={})
    assert _row(estimate)["call_usd"] == "15000" and _row(estimate)["sources"]["equity"] == "config"
    report, alerts = risk_report(cfg=cfg, trades=trades, snapshot=market(btc="50000"), today=TODAY,
                                 agreements={}, credit_lines={}, venue_accounts={"deribit": account})
    row = _row(report)
    assert row["sources"] == {"equity": "venue", "initial_margin": "venue", "maintenance_margin": "venue",
                              "liquidation_price": "venue"}
    assert (row["equity"], row["initial_margin"], row["maintenance_margin"]) == ("0.5", "0.85", "0.45")
    assert row["call"] == "0.35" and row["call_usd"] == "17500" and row["usage"] == "0.9"
    assert row["liquidation_price"] == "50500" and row["distance"] == "0.01"
    assert row["venue_symbol"] == held.symbol and row["venue_mark"] == "50000"
    subject = f"deribit:{row['instrument']}"
    kinds = {(a.kind, a.subject): a for a in alerts}
    assert kinds[("margin_call", subject)].value == D("0.35")
    assert kinds[("margin_usage", subject)].value == D("0.9")
    assert kinds[("liquidation_distance", subject)].value == D("0.01")
    (read,) = report["venue_accounts"]
    assert read["venue"] == "deribit" and read["equity"] == "0.5" and read["error"] is None
    assert read["positions"][0]["liquidation_price"] == "50500"


async def test_a_figure_the_venue_does_not_state_stays_the_estimate(deribit: DeribitAccounts,
                                                                    tmp_path: Path) -> None:
    # cross collateral: Deribit adds estimated_liquidation_price only under segregated margin
    del deribit.positions[0]["estimated_liquidation_price"]
    account = await _read("deribit", _ccxt("deribit", deribit.url, tmp_path))
    cfg = RiskConfig.model_validate({"venues": {"deribit": ESTIMATE}})
    report, _ = risk_report(cfg=cfg, trades=[_inverse(FUTURE, "deribit")], snapshot=market(btc="50000"),
                            today=TODAY, agreements={}, credit_lines={}, venue_accounts={"deribit": account})
    row = _row(report)
    assert row["sources"]["liquidation_price"] == "config" and row["sources"]["equity"] == "venue"
    assert D(row["liquidation_price"]).quantize(D("0.01")) == D("50666.67")  # 400,000 x 0.95 / 7.5
    assert row["call_usd"] == "17500"


async def test_okx_inverse_swap_balance_and_position(tmp_path: Path) -> None:
    server = OkxAccounts(future_expiry=EXPIRY, option_expiry=EXPIRY)
    server.details = [
        {"ccy": "BTC", "eq": "0.6", "cashBal": "2.6", "availEq": "0", "availBal": "0", "frozenBal": "0.8",
         "imr": "0.8", "mmr": "0.4", "mgnRatio": "1.5", "upl": "-2"},
        {"ccy": "USDT", "eq": "1000", "cashBal": "1000", "availEq": "1000", "availBal": "1000",
         "frozenBal": "0", "imr": "", "mmr": "", "mgnRatio": "", "upl": "0"}]
    server.positions = [
        {"instType": "SWAP", "instId": "BTC-USD-SWAP", "mgnMode": "cross", "posSide": "net", "pos": "-4000",
         "posCcy": "", "ccy": "BTC", "avgPx": "40000", "markPx": "50000", "liqPx": "51200", "imr": "0.8",
         "margin": "", "mmr": "0.4", "mgnRatio": "1.5", "lever": "10", "upl": "-2",
         "notionalUsd": "400000", "cTime": "1700000000000", "uTime": "1700000000000", "posId": "1"},
        {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "mgnMode": "cross", "posSide": "net", "pos": "10",
         "posCcy": "", "ccy": "USDT", "avgPx": "40000", "markPx": "50000", "liqPx": "30000", "imr": "50",
         "margin": "", "mmr": "2", "mgnRatio": "20", "lever": "10", "upl": "100", "notionalUsd": "500",
         "cTime": "1700000000000", "uTime": "1700000000000", "posId": "2"}]
    await server.start()
    try:
        account = await _read("okx", _ccxt("okx", server.url, tmp_path))
    finally:
        await server.stop()
    assert [m for m, _ in server.account_requests] == ["account/balance", "account/positions"]
    assert server.account_requests[0][1]["ccy"] == "BTC" and server.executed == 0
    assert (account.equity, account.initial_margin, account.margin_ratio) == (D("0.6"), D("0.8"), D("1.5"))
    (held,) = account.positions  # the USDT-margined swap is another account's
    assert held.size == D(-4000) and held.liquidation_price == D(51200) and held.margin_ratio == D("1.5")
    cfg = RiskConfig.model_validate({"venues": {"okx": ESTIMATE}})
    report, _ = risk_report(cfg=cfg, trades=[_inverse(Perpetual("BTC", "USD"), "okx")],
                            snapshot=market(btc="50000"), today=TODAY, agreements={}, credit_lines={},
                            venue_accounts={"okx": account})
    row = _row(report)
    assert set(row["sources"].values()) == {"venue"} and row["venue_symbol"] == "BTC/USD:BTC"
    assert row["call"] == "0.2" and row["call_usd"] == "10000"  # 0.8 - 0.6 BTC at 50,000
    assert row["usage"] == "0.6666666666666666666666666667" and row["distance"] == "0.024"


async def test_an_unreadable_venue_is_an_alert_and_the_estimate(tmp_path: Path) -> None:
    server = OkxAccounts(future_expiry=EXPIRY, option_expiry=EXPIRY, auth_ok=False)
    await server.start()
    try:
        account = await _read("okx", _ccxt("okx", server.url, tmp_path))
    finally:
        await server.stop()
    assert account.error is not None and account.equity is None
    cfg = RiskConfig.model_validate({"venues": {"okx": ESTIMATE}})
    report, alerts = risk_report(cfg=cfg, trades=[_inverse(Perpetual("BTC", "USD"), "okx")],
                                 snapshot=market(btc="50000"), today=TODAY, agreements={}, credit_lines={},
                                 venue_accounts={"okx": account})
    row = _row(report)
    assert set(row["sources"].values()) == {"config"} and row["venue_error"] == account.error
    assert row["call_usd"] == "15000"  # the config's estimate
    (unread,) = [a for a in alerts if a.kind == "venue_unread"]
    assert unread.subject == "okx" and "config's estimate" in unread.message
    assert report["venue_accounts"][0]["error"] == account.error


async def test_a_missing_key_is_an_unread_account_not_a_crash(tmp_path: Path) -> None:
    config = _ccxt("deribit", "http://127.0.0.1:9", tmp_path)
    reader = MarginReader({"deribit": (config, "btc")}, environ={})
    account = (await reader.read())["deribit"]
    await reader.close()
    assert account.currency == "BTC" and account.error is not None and "T_DERIBIT_KEY" in account.error


async def test_the_watch_reads_the_venue_and_audits_its_margin_call(open_system: Any, tmp_path: Path) -> None:
    """A real engine and scheduler fill a program's future with desk-a; the watch, given a reader of
    a venue account for desk-a (OKX, USDT-margined), raises the call the venue's figures give."""
    from types import SimpleNamespace

    from rfq_engine.hedging.riskwatch import RiskWatch
    from rfq_engine.store import EventFilter
    from tests.hedging.kit import after, program, this_months_slot

    slot = this_months_slot()
    system = await open_system({"p": program()}, lambda: after(slot))
    (decision,) = await system.scheduler.run_due(after(slot))
    assert await system.settle(decision.rfq_ids) == ["filled"]
    server = OkxAccounts(future_expiry=EXPIRY, option_expiry=EXPIRY)
    server.details = [{"ccy": "USDT", "eq": "30000", "cashBal": "30000", "availEq": "0", "availBal": "0",
                       "frozenBal": "0", "imr": "40000", "mmr": "20000", "mgnRatio": "1.5", "upl": "0"}]
    await server.start()
    risk = RiskConfig.model_validate({"venues": {"desk-a": {**ESTIMATE, "collateral": "10000000",
                                                            "currency": "USDT"}}})
    config = SimpleNamespace(risk=risk, collateral={}, mandates={}, programs=system.scheduler.programs,
                             forecast=None)
    reader = MarginReader({"desk-a": (_ccxt("okx", server.url, tmp_path), "USDT")}, ENV)
    watch = RiskWatch(system.engine, system.store, config, system.scheduler._reference, lambda: after(slot),
                      venues=reader)
    try:
        report = await watch.evaluate()
    finally:
        await watch.stop()  # closes the reader's exchange
        await server.stop()
    (row,) = report["venues"]
    assert row["sources"] == {"equity": "venue", "initial_margin": "venue", "maintenance_margin": "venue",
                              "liquidation_price": "config"}  # no USD-quoted future of that date at OKX
    assert row["call"] == "10000" and row["usage"] == "0.6666666666666666666666666667"
    assert [m for m, _ in server.account_requests] == ["account/balance", "account/positions"]
    await system.store.flush()
    raised = [e.payload for e in await system.store.events(EventFilter(types=["risk.alerted"]))]
    call = next(p for p in raised if p["kind"] == "margin_call")
    assert call["subject"] == f"desk-a:{row['instrument']}" and D(call["value"]) == D(10000)


async def test_a_slow_venue_never_holds_the_collateral_gate(tmp_path: Path) -> None:
    """The venues are read before the watch takes its lock: a venue slow to answer its account
    endpoint leaves the scheduler's collateral gate free."""
    import asyncio
    from types import SimpleNamespace

    from rfq_engine.hedging.riskwatch import RiskWatch
    from rfq_engine.pricing.reference import ModelReferenceProvider
    from rfq_engine.store import open_store

    asked, answer = asyncio.Event(), asyncio.Event()

    class SlowDeribit(DeribitAccounts):
        async def m_private_get_account_summary(self, p: dict[str, str]) -> Any:
            asked.set()
            await answer.wait()
            return await super().m_private_get_account_summary(p)

    from tests.hedging.test_margin import T0

    server = SlowDeribit(future_expiry=EXPIRY)
    await server.start()
    store = open_store(f"sqlite+aiosqlite:///{tmp_path}/watch.db")
    await store.open()
    reader = MarginReader({"deribit": (_ccxt("deribit", server.url, tmp_path), "BTC")}, ENV)
    config = SimpleNamespace(risk=RiskConfig.model_validate({"venues": {"deribit": ESTIMATE}}))
    reference = ModelReferenceProvider(market(btc="50000"), max_age=None, source="config")
    # no fill, so no alert: the engine (which audits alerts) is never called
    watch = RiskWatch(SimpleNamespace(), store, config, reference, lambda: T0, venues=reader)
    try:
        evaluation = asyncio.create_task(watch.evaluate())
        await asyncio.wait_for(asked.wait(), 10)
        assert not watch._lock.locked()  # the gate would not wait for the venue
        answer.set()
        report = await asyncio.wait_for(evaluation, 10)
        assert report["venue_accounts"][0]["error"] is None and report["alerts"] == []
        assert [m for m, _ in server.account_requests] == ["private/get_account_summary",
                                                           "private/get_positions"]
    finally:
        answer.set()
        await reader.close()
        await store.close()
        await server.stop()


def test_the_reader_is_built_for_the_ccxt_dealers_of_risk_venues(tmp_path: Path) -> None:
    from rfq_engine.config import parse_config
    from rfq_engine.wiring import venue_margin_reader
    from tests.api.conftest import config_data

    data = config_data(tmp_path)
    data["dealers"].append({"id": "deribit", "kind": "ccxt", "ccxt": {
        "exchange": "deribit", "journal_path": str(tmp_path / "deribit.journal")}})
    assert venue_margin_reader(parse_config(data)) is None  # no [risk.venues.deribit]
    data["risk"] = {"venues": {"deribit": ESTIMATE, "d1": ESTIMATE}}  # d1 is a simulated desk
    reader = venue_margin_reader(parse_config(data))
    assert reader is not None and reader.dealers == ["deribit"]
    data["risk"]["venues"]["deribit"] = {**ESTIMATE, "read": False}
    assert venue_margin_reader(parse_config(data)) is None
