"""``/api/v1/hedge/risk``: the risk monitor's figures, its active alerts, and reporting against
the market (each program's hedge P&L beside the unhedged production value, over time), for the
web UI's Risk page and its banner. ``install`` attaches the risk watch to the app's engine
(the scheduler's collateral gate consults it), starts it with the web app and stops it after.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from aiohttp import web

from rfq_engine.api.auth import require
from rfq_engine.api.ops import METRICS_KEY
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.serialize import json_response
from rfq_engine.domain.events import CollateralPosted, FillRecorded, KillSwitchSet, ProductionRealized
from rfq_engine.domain.values import decimal_str, format_ts, utc_now
from rfq_engine.engine import EngineEvent
from rfq_engine.hedging.evidence import load_performance
from rfq_engine.hedging.riskwatch import RiskWatch
from rfq_engine.readmodels.events import listened
from rfq_engine.wiring import App, venue_margin_reader

__all__ = ["WATCH_KEY", "install", "routes"]

routes = web.RouteTableDef()
WATCH_KEY: web.AppKey[RiskWatch] = web.AppKey("risk_watch", RiskWatch)
FRESH_S = 10.0
"""A report younger than this is served as it is (unless a fill, the kill switch or an operator
input came since); an older one is evaluated again."""
_EVALUATED = web.AppKey("risk_evaluated", list)
DECIMAL_THRESHOLDS = ("credit_usage", "margin_usage", "liquidation_distance", "coverage_tolerance",
                      "liquidity_ratio")


def install(web_app: web.Application, app: App) -> None:
    """The risk routes, and the watch: attached to ``app.engine``, started with the web app."""
    watch = RiskWatch(app.engine, app.store, app.config, app.reference,
                      venues=venue_margin_reader(app.config)).attach()
    web_app[WATCH_KEY] = watch
    web_app[_EVALUATED] = [0.0]
    if METRICS_KEY in web_app:
        web_app[METRICS_KEY].watch_risk(lambda: watch.active)
    web_app.add_routes(routes)

    def on_event(event: EngineEvent) -> None:
        if isinstance(listened(event), FillRecorded | KillSwitchSet | CollateralPosted | ProductionRealized):
            web_app[_EVALUATED][0] = float("-inf")  # the figures moved: evaluate on the next read

    app.engine.add_listener(on_event)

    async def start(_: web.Application) -> None:
        await watch.start()
        web_app[_EVALUATED][0] = time.monotonic()

    async def stop(_: web.Application) -> None:
        await watch.stop()

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(stop)


async def _report(request: web.Request) -> dict[str, Any]:
    watch = request.app[WATCH_KEY]
    stamp = request.app[_EVALUATED]
    if watch.last_report is None or time.monotonic() - stamp[0] > FRESH_S:
        await watch.evaluate()
        stamp[0] = time.monotonic()
    assert watch.last_report is not None
    return watch.last_report


@routes.get("/api/v1/hedge/risk")
@require("hedge:read")
async def risk(request: web.Request) -> web.Response:
    """Every risk figure, the alerts, and each program's performance against the market."""
    app = request.app[APP_KEY]
    report = await _report(request)
    now = utc_now()
    snapshot = await app.reference.snapshot()
    performance = await load_performance(app.store, app.config.programs, snapshot, now.astimezone(UTC).date())
    thresholds = request.app[WATCH_KEY].risk
    return json_response({
        "as_of": format_ts(now), "risk": report, "active": list(request.app[WATCH_KEY].active.values()),
        "performance": performance,
        "thresholds": {**{k: decimal_str(getattr(thresholds, k)) for k in DECIMAL_THRESHOLDS},
                       "on_collateral_short": thresholds.on_collateral_short},
    })


@routes.get("/api/v1/hedge/risk/alerts")
@require("hedge:read")
async def alerts(request: web.Request) -> web.Response:
    """The active alerts only (the web UI's banner polls this)."""
    watch = request.app[WATCH_KEY]
    return json_response({"as_of": format_ts(utc_now()), "active": list(watch.active.values())})
