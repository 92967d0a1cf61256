"""``GET /api/v1/hedge/programs`` and ``/programs/{name}``: each program's next runs, what its
latest scheduled time plans, its decisions and its coverage, after a real scheduler run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.domain.values import parse_ts, utc_now
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.scheduler import HedgeScheduler
from tests.api.conftest import DEALERS, Api, auth, config_data
from tests.hedging.kit import serve_api

PROGRAMS = {
    "monthly": {"strategy": "future", "mandate": "treasury", "dealers": DEALERS,
                "hedge_ratio": "0.5", "schedule": "0 14 * * 5L", "timezone": "UTC",
                "window_ms": 300},
    "quiet": {"strategy": "future", "mandate": "treasury", "dealers": DEALERS,
              "hedge_ratio": "0.25", "schedule": "0 9 1 * *", "enabled": False},
}


@pytest.fixture
async def programs_api(tmp_path: Path) -> AsyncIterator[Api]:
    data = config_data(tmp_path, max_hedge_ratio="0.8")
    data["forecast"] = {"hashrate": "1 EH/s", "difficulty": "100000000000000"}
    data["programs"] = PROGRAMS
    async with serve_api(data) as api:
        yield api


async def get(api: Api, url: str, user: str | None = "dave") -> tuple[int, Any]:
    resp = await api.client.get(url, headers=auth(user) if user else {})
    return resp.status, await resp.json()


async def test_programs_show_next_runs_decisions_and_coverage(programs_api: Api) -> None:
    api = programs_api
    month = Period.of(utc_now().date())
    mid_month = datetime(month.year, month.month, 10, 9, 30, tzinfo=UTC)
    scheduler = HedgeScheduler.from_config(api.app.engine, api.app.store, api.app.config,
                                           api.app.reference, lambda: mid_month)
    (decision,) = await scheduler.run_due(mid_month)
    assert await api.app.engine.wait(decision.rfq_ids[0], 10) == "filled"
    await api.app.store.flush()

    status, body = await get(api, "/api/v1/hedge/programs")
    assert status == 200
    views = {v["name"]: v for v in body["programs"]}
    assert list(views) == ["monthly", "quiet"]
    view = views["monthly"]
    now = parse_ts(body["as_of"], "as_of")
    runs = [parse_ts(t, "next_runs") for t in view["next_runs"]]
    assert len(runs) == 3 and now < runs[0] < runs[1] < runs[2]
    assert all(t.weekday() == 4 and t.hour == 14 and (t + timedelta(days=7)).month != t.month
               for t in runs)  # the last Friday of each month, 14:00
    assert views["quiet"]["next_runs"] == [] and views["quiet"]["decisions"] == []
    (last,) = view["decisions"]  # the list shows the latest one only
    assert (last["period"], last["trigger"], last["action"]) == (
        str(month.plus(1)), "catch_up", "hedge")
    assert last["rfqs"][0]["rfq_id"] == decision.rfq_ids[0] and view["decision_count"] == 1
    coverage = {c["period"]: c for c in view["coverage"]}
    assert set(coverage) == {str(month), str(month.plus(1))}
    assert coverage[str(month)]["hedged"] == "0"
    assert coverage[str(month.plus(1))]["hedged"] == last["target"]
    assert Decimal(coverage[str(month.plus(1))]["coverage"]) <= Decimal("0.5")
    assert view["due"]["period"] == str(month.plus(1))

    status, one = await get(api, "/api/v1/hedge/programs/monthly?limit=5")
    assert status == 200 and one["name"] == "monthly" and len(one["decisions"]) == 1
    assert one["decisions"][0]["recorded_at"].endswith("Z")


async def test_program_errors(programs_api: Api) -> None:
    status, body = await get(programs_api, "/api/v1/hedge/programs/nope")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await get(programs_api, "/api/v1/hedge/programs/monthly?limit=0")
    assert (status, body["field"]) == (422, "limit")
    status, _ = await get(programs_api, "/api/v1/hedge/programs", user=None)
    assert status == 401
    for user in ("alice", "carol", "erin"):
        status, _ = await get(programs_api, "/api/v1/hedge/programs", user=user)
        assert status == 200
