"""``rfq hedge run``: the scheduler once, on a clock the operator chooses.

    rfq hedge run --config FILE [--at 2026-12-25T14:00:00Z] [--program NAME ...] [--dry-run]
                  [--store URL] [--json]

What ``rfq serve``'s scheduler would do at ``--at`` (default: now): every program whose
latest scheduled time at or before it has no decision yet runs once, with the trigger
``schedule`` (less than five minutes late) or ``catch_up``, and plans the period
``rfq_engine.hedging.scheduler.due`` names. Not dry, it starts the engine (recovery first),
records the decisions and waits for the RFQs to end, like ``rfq hedge plan``; a program with
``approval = true`` only proposes. ``--dry-run`` writes nothing at all (the store is read
read-only, a missing database is an empty book). Only argparse is imported here.

Both make the collateral check ``rfq serve`` makes before a program's RFQs (docs/risk.md):
a desk short of collateral makes the program ask a person (a one-shot run cannot wait for
one: its RFQs are cancelled, saying so) or, with ``[risk] on_collateral_short = "halt"``,
wait with the reason; the run raises the ``collateral_short`` alert, the dry run only says it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "collateral_checked", "exit_code", "run_scheduler", "settle_decision"]

EXIT_OK, EXIT_ERROR, EXIT_NOT_FILLED, EXIT_PARTIAL = 0, 1, 2, 3


def add_parser(actions: Any) -> None:
    run = actions.add_parser("run", help="run the hedge scheduler once as at a chosen time (--at): "
                             "each program whose latest scheduled time has no decision yet")
    run.add_argument("--config", required=True)
    run.add_argument("--store", help="store URL (overrides the config)")
    run.add_argument("--at", help="the scheduler's clock: an ISO 8601 time with its zone, e.g. "
                     "2026-12-25T14:00:00Z (default: now)")
    run.add_argument("--program", action="append", default=[], metavar="NAME",
                     help="only this program (repeatable; default: every enabled program)")
    run.add_argument("--dry-run", action="store_true", help="print what would run; write nothing")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=run_scheduler)


async def settle_decision(app: Any, decision: Any) -> list[dict[str, Any]]:
    """Wait for each RFQ of ``decision`` to end (one-shot: an RFQ waiting for a second person
    is cancelled with a message) and return its outcome with its fills."""
    from rfq_engine.engine.oneshot import run_to_end

    outcomes = []
    for rfq_id in decision.rfq_ids:
        end = await run_to_end(app.engine, rfq_id, actor=f"program:{decision.program}",
                               reason="needs approval; one-shot command cannot wait")
        if end.cancelled_for_approval:
            print(f"rfq: RFQ {rfq_id} needs a second person's approval under the mandate, which "
                  "a one-shot command cannot wait for; it is cancelled. Let `rfq serve` run the "
                  "program instead.", file=sys.stderr)
        fills = await app.store.fills(rfq_id)
        outcomes.append({"rfq_id": rfq_id, "state": end.state.value,
                         "fills": [{"dealer_id": f.dealer_id, "price": str(f.price),
                                    "quantity": str(f.quantity)} for f in fills]})
    return outcomes


def exit_code(actions: list[str], states: list[str | None]) -> int:
    """1 on an error decision, 5 unresolved, 3 partial, 2 not filled, else 0."""
    from rfq_engine.cli.commands import EXIT_UNRESOLVED, UNRESOLVED_HINT
    from rfq_engine.domain.states import RfqState

    if "error" in actions:
        return EXIT_ERROR
    if RfqState.UNRESOLVED.value in states:
        print(UNRESOLVED_HINT, file=sys.stderr)
        return EXIT_UNRESOLVED
    if RfqState.PARTIALLY_FILLED.value in states:
        return EXIT_PARTIAL
    if any(s != RfqState.FILLED.value for s in states):
        return EXIT_NOT_FILLED
    return EXIT_OK


def run_scheduler(args: argparse.Namespace) -> int:
    import asyncio

    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.domain.values import parse_ts, utc_now

        config = _load(args.config)
        unknown = sorted(set(args.program) - set(config.programs))
        if unknown:
            known = ", ".join(sorted(config.programs)) or "none"
            raise ValidationError("--program", f"unknown program {unknown[0]!r}; configured: {known}")
        at = utc_now() if args.at is None else parse_ts(args.at, "--at")
        programs = {name: p for name, p in config.programs.items()
                    if p.enabled and (not args.program or name in args.program)}
        if args.dry_run:
            return asyncio.run(_dry(config, args, programs, at))
        from rfq_engine.logging import configure_logging

        configure_logging("WARNING", config.logging.json_lines)
        return asyncio.run(_run(config, args, programs, at))

    return _guard(go)


async def collateral_checked(config: Any, store: Any, program: Any, plan: Any, snapshot: Any, at: Any) -> Any:
    """A dry run's plan after the collateral check a run makes (``riskwatch.apply_shortfalls``);
    ``store`` may be None (an empty book)."""
    from rfq_engine.hedging.records import load_inputs, load_trades
    from rfq_engine.hedging.risk import collateral_shortfalls
    from rfq_engine.hedging.riskwatch import apply_shortfalls

    if not plan.rfqs:
        return plan
    trades = [] if store is None else await load_trades(store)
    posted = (await load_inputs(store)).collateral
    short = collateral_shortfalls(config.collateral, trades, [r.spec for r in plan.rfqs], snapshot, at.date(),
                                  posted)
    return apply_shortfalls(program, plan, short, config.risk.on_collateral_short)[1]


async def _dry(config: Any, args: argparse.Namespace, programs: dict[str, Any], at: Any) -> int:
    from rfq_engine.cli.cmd_hedge import _read_store
    from rfq_engine.domain.values import format_ts
    from rfq_engine.hedging.scheduler import decided_period, due, prepare_plan, rung_done

    store = await _read_store(config, args.store)
    rows: list[dict[str, Any]] = []
    try:
        for name, program in programs.items():
            slot_due = due(program, at)
            if slot_due is None:
                continue
            head = {"program": name, "scheduled_for": format_ts(slot_due.slot),
                    "trigger": slot_due.trigger, "dry_run": True}
            decided = None if store is None else await decided_period(store, name, program, slot_due)
            if decided is not None:
                rows.append({**head, "period": str(decided), "action": "done", "rfqs": [],
                             "reasons": [f"a scheduled decision for {decided} is recorded already"]})
                continue
            mandate = config.mandates.get(program.mandate)
            for rung in range(1, len(program.rungs) + 1):
                period = slot_due.period.plus(rung - 1)
                if rung > 1 and store is not None and await rung_done(store, name, period, slot_due.slot):
                    continue
                snapshot = config.market.to_snapshot(at)
                plan = await prepare_plan(
                    name=name, program=program, store=store, snapshot=snapshot,
                    forecast_defaults=config.forecast,
                    mandate_max_ratio=None if mandate is None else mandate.max_hedge_ratio,
                    period=period, today=at.date(), rung=rung)
                plan = await collateral_checked(config, store, program, plan, snapshot, at)
                data = plan.to_dict()
                lead = [] if slot_due.note is None or rung > 1 else [slot_due.note]
                rows.append({**head, "trigger": slot_due.trigger if rung == 1 else "ladder",
                             "period": data["period"], "action": data["action"], "rfqs": data["rfqs"],
                             "reasons": [*lead, *data["reasons"]], "target": data["target"],
                             "held": data["held"]})
    finally:
        if store is not None:
            await store.close()
    return _show(args, format_ts(at), rows, EXIT_OK)


async def _run(config: Any, args: argparse.Namespace, programs: dict[str, Any], at: Any) -> int:
    from rfq_engine.domain.values import format_ts
    from rfq_engine.hedging.riskwatch import RiskWatch
    from rfq_engine.hedging.scheduler import HedgeScheduler
    from rfq_engine.wiring import open_app

    app = await open_app(config, store_url=args.store)
    RiskWatch(app.engine, app.store, config, app.reference, lambda: at).attach()  # the collateral gate
    scheduler = HedgeScheduler(app.engine, app.store, programs, app.reference, lambda: at,
                               forecast=config.forecast)
    rows: list[dict[str, Any]] = []
    try:
        for decision in await scheduler.run_due(at):
            rows.append({**decision.to_dict(), "outcomes": await settle_decision(app, decision)})
    finally:
        await app.close()
    states = [o["state"] for row in rows for o in row["outcomes"]]
    return _show(args, format_ts(at), rows, exit_code([r["action"] for r in rows], states))


def _show(args: argparse.Namespace, at: str, rows: list[dict[str, Any]], code: int) -> int:
    from rfq_engine.cli.cmd_hedge import _print_json

    if args.json:
        _print_json({"at": at, "dry_run": bool(args.dry_run), "decisions": rows})
        return code
    if not rows:
        print(f"at {at}: nothing due (every program's latest scheduled time is decided)")
    for row in rows:
        print(f"{row['program']}: {row['period']} {row['action']} ({row['trigger']}, scheduled for "
              f"{row['scheduled_for']})")
        for reason in row["reasons"]:
            print(f"  - {reason}")
        for rfq in row.get("rfqs") or []:
            print(f"  RFQ {rfq['client_rfq_id']}" + (f" {rfq['rfq_id']}" if rfq.get("rfq_id") else ""))
        for outcome in row.get("outcomes", []):
            print(f"  {outcome['rfq_id']}: {outcome['state']}")
    if args.dry_run:
        print("dry run: nothing was sent or written")
    return code
