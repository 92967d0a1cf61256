"""The mandate's horizon as a ladder: hedge ratios by months ahead, filled at each scheduled
time and rolled month after month, through a real engine and scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pydantic
import pytest

from rfq_engine.domain.errors import ValidationError
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.overview import program_overview
from rfq_engine.hedging.positions import instrument_key, net_quantities
from rfq_engine.hedging.program import ProgramConfig, expiry_for, last_weekday
from rfq_engine.hedging.records import load_trades
from rfq_engine.hedging.scheduler import coming_period, prepare_plan
from tests.hedging.conftest import Open
from tests.hedging.kit import after, program, snapshot, this_months_slot

D = Decimal
BTC_PER_DAY = D("0.628642737865447998046875")  # 1 EH/s at difficulty 10^14
SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)
LADDER = {"hedge_ratio": "0.6", "ladder": ["0.6", "0.4", "0.2"],
          "basis_risk": "price only: difficulty and fees unhedged"}


def target(ratio: str, period: Period) -> D:
    return (D(ratio) * BTC_PER_DAY * period.days).quantize(D("0.01"), rounding=ROUND_FLOOR)


def future_key(period: Period) -> str:
    return f"BTC-USD-FUT-{expiry_for(period, 1).isoformat()}"


async def test_a_ladder_is_filled_then_rolled_month_by_month(open_system: Open) -> None:
    prog = {"p": program(**LADDER)}
    system = await open_system(prog, lambda: after(SLOT))
    first = await system.scheduler.run_due(after(SLOT))
    assert [(str(d.period), d.trigger, d.action) for d in first] == [
        (str(PERIOD), "schedule", "hedge"), (str(PERIOD.plus(1)), "ladder", "hedge"),
        (str(PERIOD.plus(2)), "ladder", "hedge")]
    assert [d.plan.target for d in first if d.plan] == [
        target("0.6", PERIOD), target("0.4", PERIOD.plus(1)), target("0.2", PERIOD.plus(2))]
    assert [s.client_rfq_id for d in first for s in d.submitted] == [
        f"program:p:{PERIOD}:hedge", f"program:p:{PERIOD.plus(1)}:hedge-m2",
        f"program:p:{PERIOD.plus(2)}:hedge-m3"]
    assert first[1].reasons[0] == "ladder: month +2 is hedged to 40%"
    for decision in first:
        assert await system.settle(decision.rfq_ids) == ["filled"]
    assert await system.scheduler.run_due(after(SLOT, 60)) == []  # once per scheduled time

    # a month later: month +2 becomes +1 (40% -> 60%, topped up by rolling the expiring
    # hedge), +3 becomes +2 (20% -> 40%), and a new month +3 gets 20%
    slot2 = datetime.combine(last_weekday(PERIOD.year, PERIOD.month, 4), datetime.min.time(),
                             UTC).replace(hour=14)
    second = await system.scheduler.run_due(after(slot2))
    assert [(str(d.period), d.trigger, d.action) for d in second] == [
        (str(PERIOD.plus(1)), "schedule", "roll+unwind"), (str(PERIOD.plus(2)), "ladder", "hedge"),
        (str(PERIOD.plus(3)), "ladder", "hedge")]
    assert [s.client_rfq_id for s in second[1].submitted] == [f"program:p:{PERIOD.plus(2)}:hedge-m2"]
    for decision in second:
        assert await system.settle(decision.rfq_ids) == ["filled"] * len(decision.rfq_ids)
    held = {instrument_key(i): q for i, q in net_quantities(await load_trades(system.store, "program:p"))
            .items() if q != 0}
    assert held == {future_key(PERIOD.plus(1)): -target("0.6", PERIOD.plus(1)),
                    future_key(PERIOD.plus(2)): -target("0.4", PERIOD.plus(2)),
                    future_key(PERIOD.plus(3)): -target("0.2", PERIOD.plus(3))}
    assert await system.scheduler.run_due(after(slot2, 600)) == []

    decisions = [d for d in await system.store.events() if d.type == "program.decided"]
    assert len(decisions) == 6
    view = program_overview("p", prog["p"], decisions=[], decided_at=[], trades=[],
                            forecast_defaults=None, now=after(slot2))
    assert view["ladder"] == ["0.6", "0.4", "0.2"] and view["basis_risk"].startswith("price only")


def test_ladder_config() -> None:
    data = program().model_dump(mode="json", exclude={"hedge_ratio", "forecast"}, exclude_none=True)
    assert ProgramConfig.model_validate({**data, "ladder": ["0.6", "0.4"]}).hedge_ratio == D("0.6")
    assert program(hedge_ratio="0.6", ladder=["0.6", "0.4"]).rungs == (D("0.6"), D("0.4"))
    assert program().rungs == (D("0.5"),)
    for bad, message in (({"hedge_ratio": "0.5", "ladder": ["0.6"]}, "first rung 0.6"),
                         ({"hedge_ratio": "0.1", "ladder": ["0.1"] * 13}, "at most 12"),
                         ({"hedge_ratio": "0.6", "ladder": ["0.6", "1.5"]}, "(0, 1]"),
                         ({"ladder": []}, "at least 1"),
                         ({"hedge_ratio": "0.6", "ladder": ["0.6", 0.4]}, ""),
                         ({"basis_risk": "x" * 501}, "at most 500")):
        with pytest.raises(pydantic.ValidationError) as caught:
            program(**bad)
        assert message in str(caught.value)


async def test_a_rung_beyond_the_ladder_is_an_error() -> None:
    with pytest.raises(ValidationError, match="ladder has 3 rung"):
        await prepare_plan(name="p", program=program(**LADDER), store=None, snapshot=snapshot(),
                           forecast_defaults=None, mandate_max_ratio=None, period=PERIOD,
                           today=SLOT.date(), rung=4)


def test_rfq_hedge_run_dry_run_shows_the_ladder(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rfq_engine.cli.main import main
    from tests.cli.clikit import config_text, store_files, write
    from tests.hedging.test_cli_hedge import PROGRAMS

    config = write(tmp_path / "rfq.toml", config_text("hedge.db") + PROGRAMS.replace(
        'hedge_ratio = "0.5"', 'ladder = ["0.5", "0.3", "0.1"]'))
    at = after(SLOT).isoformat()
    assert main(["hedge", "run", "--config", str(config), "--at", at, "--dry-run", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["decisions"]
    assert [(r["period"], r["trigger"], r["action"]) for r in rows] == [
        (str(PERIOD), "schedule", "hedge"), (str(PERIOD.plus(1)), "ladder", "hedge"),
        (str(PERIOD.plus(2)), "ladder", "hedge")]
    assert [r["target"] for r in rows] == [str(target(r, p)) for r, p in (
        ("0.5", PERIOD), ("0.3", PERIOD.plus(1)), ("0.1", PERIOD.plus(2)))]
    assert store_files(tmp_path) == []
