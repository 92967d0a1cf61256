"""The risk watch with a real engine, simulated desks and the scheduler over SQLite: the
collateral gate before a scheduled RFQ (ask a person, or halt and try again once collateral is
posted), alerts as audit events raised once and cleared, the webhook (a real HTTP server; a
dead one is logged and waits nothing)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from rfq_engine.hedging.margin import CollateralAgreement
from rfq_engine.hedging.risk import RiskConfig
from rfq_engine.hedging.riskwatch import RiskWatch
from rfq_engine.hedging.scheduler import coming_period
from rfq_engine.store import EventFilter
from tests.engine.conftest import Harness, wait_state
from tests.hedging.conftest import Open, System
from tests.hedging.kit import after, program, this_months_slot

D = Decimal
SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)


def agreement(posted: str) -> CollateralAgreement:
    # a future of ~9.74 BTC at ~40,000 has ~390,000 of notional: 10% is ~39,000 of initial margin
    return CollateralAgreement.model_validate({"initial_margin": {"USD": "0.1"}, "minimum_transfer": "1000",
                                               "posted": {"USD": posted}})


def watch(system: System, posted: str = "5000", **risk: Any) -> RiskWatch:
    mandates = {name: m.config for name, m in system.engine.services.mandates.items()}
    config = SimpleNamespace(risk=RiskConfig.model_validate(risk), collateral={"desk-a": agreement(posted)},
                             mandates=mandates, programs=system.scheduler.programs, forecast=None)
    return RiskWatch(system.engine, system.store, config, system.scheduler._reference,
                     lambda: after(SLOT)).attach()


async def alerts(system: System) -> list[dict[str, Any]]:
    await system.store.flush()
    return [e.payload for e in await system.store.events(EventFilter(types=["risk.alerted"]))]


async def test_collateral_short_makes_the_program_ask_a_person(open_system: Open) -> None:
    system = await open_system({"p": program()}, lambda: after(SLOT), submit_for_approval=True)
    watch(system)
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert decision.action == "hedge" and decision.rfq_ids
    assert any("collateral short (desk-a would require" in r and "a person approves" in r
               for r in decision.reasons)
    rfq_id = decision.rfq_ids[0]
    run = system.engine.live(rfq_id)
    assert run is not None and run.spec.require_approval  # the program itself needs no approval
    await wait_state(Harness(system.engine, None, system.store), rfq_id, "pending_approval")  # type: ignore[arg-type]
    await system.engine.approve(rfq_id, approver="carol")
    assert await system.settle([rfq_id]) == ["filled"]
    (raised,) = await alerts(system)
    assert raised["kind"] == "collateral_short" and raised["subject"] == "p/desk-a"
    assert raised["state"] == "raised" and raised["program"] == "p" and raised["period"] == str(PERIOD)
    assert D(raised["value"]) > D(30000)


async def test_collateral_short_halts_and_the_retry_sends_once_posted(open_system: Open) -> None:
    system = await open_system({"p": program()}, lambda: after(SLOT))
    watch(system, on_collateral_short="halt")
    (halted,) = await system.scheduler.run_due(after(SLOT))
    assert halted.action == "wait" and halted.rfq_ids == []
    assert any(r.startswith("halted: collateral short (desk-a") for r in halted.reasons)
    assert await system.program_rfqs() == []
    dry = await system.scheduler.run_program("p", now=after(SLOT, 30), period=PERIOD, dry_run=True)
    assert dry.action == "wait" and len(await alerts(system)) == 1  # a dry run writes nothing
    watch(system, posted="100000", on_collateral_short="halt")  # collateral posted
    (sent,) = await system.scheduler.run_due(after(SLOT) + timedelta(minutes=6))
    assert sent.action == "hedge" and await system.settle(sent.rfq_ids) == ["filled"]
    raised, cleared = await alerts(system)
    assert (raised["state"], cleared["state"]) == ("raised", "cleared")
    assert cleared["subject"] == raised["subject"] == "p/desk-a"


async def test_alerts_raise_once_clear_and_reach_the_webhook(open_system: Open) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        system = await open_system({"p": program()}, lambda: after(SLOT))
        (decision,) = await system.scheduler.run_due(after(SLOT))  # no watch attached: no gate
        assert await system.settle(decision.rfq_ids) == ["filled"]
        rfq_watch = watch(system, posted="5000", webhook_url=f"http://127.0.0.1:{port}/hook")
        report = await rfq_watch.evaluate()
        kinds = {(a["kind"], a["subject"]) for a in report["alerts"]}
        assert ("margin_call", "desk-a") in kinds or ("margin_usage", "desk-a") in kinds
        assert {(a["kind"], a["subject"]) for a in report["active"]} == kinds
        posted = [await asyncio.wait_for(received.get(), 5) for _ in kinds]
        assert {(p["kind"], p["subject"]) for p in posted} == kinds
        assert all(p["event"] == "risk.alerted" and p["state"] == "raised" for p in posted)
        await rfq_watch.evaluate()  # nothing changed: nothing raised again
        assert len(await alerts(system)) == len(kinds)
        # a restart reads the raised alerts back from the log and raises none of them again
        again = watch(system, posted="5000")
        await again.evaluate()
        assert len(await alerts(system)) == len(kinds)
        # collateral posted: the desk's alerts clear
        cleared = watch(system, posted="1000000", webhook_url=f"http://127.0.0.1:{port}/hook")
        await cleared.evaluate()
        states = [a["state"] for a in await alerts(system)]
        assert states.count("cleared") == len([k for k in kinds if k[1] == "desk-a"])
        await cleared.stop()
    finally:
        await runner.cleanup()


async def test_a_dead_or_hanging_webhook_is_logged_and_blocks_nothing(open_system: Open) -> None:
    hung = asyncio.Event()
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        hung.set()
        await release.wait()  # never answers within the timeout
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        system = await open_system({"p": program()}, lambda: after(SLOT))
        (decision,) = await system.scheduler.run_due(after(SLOT))
        await system.settle(decision.rfq_ids)
        for url in ("http://127.0.0.1:9/hook", f"http://127.0.0.1:{port}/hook"):  # refused, then hanging
            rfq_watch = watch(system, webhook_url=url, webhook_timeout_ms=300)
            rfq_watch._loaded = True  # raise every alert again, so that each is posted
            with capture_logs() as logs:
                report = await rfq_watch.evaluate()  # returns before any post has finished
                assert report["alerts"] and rfq_watch._posts
                await rfq_watch.stop()  # waits for the posts, which failed and were logged
            assert not rfq_watch._posts
            failed = [e for e in logs if e["event"] == "risk.webhook_failed"]
            assert len(failed) == len(report["alerts"]) and all(e["url"] == url for e in failed)
        assert hung.is_set() and "TimeoutError" in failed[0]["error"]
    finally:
        release.set()
        await runner.cleanup()


async def test_an_evaluation_runs_off_the_event_loop(open_system: Open, monkeypatch: Any) -> None:
    """The figures are pure work over every trade, seconds for a large book: the loop keeps
    turning meanwhile (on the loop, the 10-minute soak's server stood still for 10-58 s)."""
    import threading
    import time

    import rfq_engine.hedging.riskwatch as riskwatch

    system = await open_system({"p": program()}, lambda: after(SLOT))
    real = riskwatch.risk_report
    threads: list[threading.Thread] = []

    def slow_report(**kw: Any) -> Any:  # the real figures, after as long as a large book takes
        threads.append(threading.current_thread())
        time.sleep(0.5)
        return real(**kw)

    monkeypatch.setattr(riskwatch, "risk_report", slow_report)
    w = watch(system)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        report = await w.evaluate()
    finally:
        ticker.cancel()
    assert threads and threads[0] is not threading.main_thread()
    assert ticks >= 20, ticks  # the loop turned all along the half second
    assert report is w.last_report and report["as_of_time"]  # the real report came back
