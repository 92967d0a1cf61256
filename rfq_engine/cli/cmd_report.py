"""``rfq hedge report``: the hedge file of a program and period, as PDF, CSV or JSONL;
``rfq hedge risk``: the risk monitor's figures and alerts, and each program against the market.

    rfq hedge report --config FILE --program P --period YYYY-MM --format pdf|csv|jsonl
                     [--output FILE] [--realized QTY] [--settle KEY=PRICE ...] [--store URL]
    rfq hedge risk --config FILE [--realized PROGRAM:YYYY-MM=QTY ...] [--settle KEY=PRICE ...]
                   [--store URL] [--json]

Both read the store read-only (``rfq hedge risk`` shows the alerts; ``rfq serve`` records
them); the hedge file names the verified audit chain's head it was built from
(``rfq_engine.hedging.hedgefile``, ``docs/risk.md``). Only argparse is imported here.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run_report", "run_risk", "settlements_of"]


def add_parser(actions: Any) -> None:
    report = actions.add_parser("report", help="the hedge file of a program and period (designation, "
                                "trades with decision records, effectiveness, production, chain head)")
    report.add_argument("--config", required=True)
    report.add_argument("--program", required=True)
    report.add_argument("--period", required=True, help="YYYY-MM")
    report.add_argument("--format", required=True, choices=("pdf", "csv", "jsonl"))
    report.add_argument("--output", help="file to write (default: stdout; a PDF needs --output)")
    report.add_argument("--realized", help="production realized in the period (BTC; PH/s for an NDF "
                        "program), from the pool's statement")
    report.add_argument("--settle", action="append", default=[], metavar="KEY=PRICE",
                        help="settlement price or index of an instrument")
    report.add_argument("--store", help="store URL (overrides the config)")
    report.set_defaults(handler=run_report)

    risk = actions.add_parser("risk", help="counterparty exposure, margin, funding, coverage, liquidity, "
                              "their alerts, and each program's hedge P&L beside its production's value")
    risk.add_argument("--config", required=True)
    risk.add_argument("--realized", action="append", default=[], metavar="PROGRAM:YYYY-MM=QTY",
                      help="production realized in a program's period (repeatable)")
    risk.add_argument("--settle", action="append", default=[], metavar="KEY=PRICE",
                      help="settlement price or index of an instrument")
    risk.add_argument("--store", help="store URL (overrides the config)")
    risk.add_argument("--json", action="store_true")
    risk.set_defaults(handler=run_risk)


def settlements_of(items: list[str]) -> dict[str, Any]:
    """``--settle KEY=PRICE`` items by instrument key (``rfq hedge report``, ``risk``, ``margin``)."""
    from rfq_engine.cli.cmd_hedge import _dec
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.hedging.positions import instrument_key, parse_instrument_key

    out = {}
    for item in items:
        key, sep, price = item.partition("=")
        if not sep:
            raise ValidationError("--settle", f"must be KEY=PRICE, got {item!r}")
        out[instrument_key(parse_instrument_key(key))] = _dec(price, f"--settle {key}")
    return out


def run_report(args: argparse.Namespace) -> int:
    import asyncio

    from rfq_engine.cli.cmd_hedge import _dec, _guard, _load

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.forecast import Period

        config = _load(args.config)
        if args.program not in config.programs:
            known = ", ".join(sorted(config.programs)) or "none"
            raise ValidationError("--program", f"unknown program {args.program!r} (configured: {known})")
        if args.format == "pdf" and not args.output:
            raise ValidationError("--output", "a PDF is written to a file: name it with --output")
        period = Period.parse(args.period, "--period")
        realized = _dec(args.realized, "--realized")
        if realized is not None and realized < 0:
            raise ValidationError("--realized", "production is >= 0")
        hedge_file = asyncio.run(_load_file(config, args, period, realized, settlements_of(args.settle)))
        return _write(hedge_file, args, period)

    return _guard(go)


async def _load_file(config: Any, args: argparse.Namespace, period: Any, realized: Any,
                     settlements: dict[str, Any]) -> dict[str, Any]:
    from rfq_engine.cli.cmd_hedge import _read_store
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.domain.values import utc_now
    from rfq_engine.hedging.evidence import load_hedge_file

    now = utc_now()
    store = await _read_store(config, args.store)
    if store is None:
        raise ValidationError("store", "no audit database: nothing to report")
    try:
        return await load_hedge_file(
            store, name=args.program, program=config.programs[args.program], period=period,
            snapshot=config.market.to_snapshot(now), today=now.date(), realized=realized,
            settlements=settlements)
    finally:
        await store.close()


def _write(hedge_file: dict[str, Any], args: argparse.Namespace, period: Any) -> int:
    import sys
    from pathlib import Path

    from rfq_engine.cli.cmd_hedge import EXIT_OK
    from rfq_engine.hedging.hedgefile import to_csv, to_jsonl

    if args.format == "pdf":
        from rfq_engine.hedging.hedgepdf import hedge_file_pdf

        Path(args.output).write_bytes(hedge_file_pdf(hedge_file))
        chain = hedge_file["chain"]
        print(f"wrote {args.output}: hedge file {args.program} {period}, audit chain head "
              f"{chain['head_seq']} {chain['head_hash']}")
        return EXIT_OK
    text = to_csv(hedge_file) if args.format == "csv" else to_jsonl(hedge_file)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _realized(items: list[str], programs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from rfq_engine.cli.cmd_hedge import _dec
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.hedging.forecast import Period

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, rest = item.partition(":")
        period, sep, qty = rest.partition("=")
        if not sep or name not in programs:
            raise ValidationError("--realized", f"must be PROGRAM:YYYY-MM=QTY with a configured program, "
                                  f"got {item!r}")
        value = _dec(qty, f"--realized {item}")
        if value < 0:
            raise ValidationError("--realized", f"production is >= 0, got {item!r}")
        out.setdefault(name, {})[str(Period.parse(period, "--realized"))] = value
    return out


def run_risk(args: argparse.Namespace) -> int:
    import asyncio

    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        config = _load(args.config)
        realized = _realized(args.realized, dict(config.programs))
        data = asyncio.run(_risk(config, args, realized, settlements_of(args.settle)))
        return _print_risk(data, args)

    return _guard(go)


async def _risk(config: Any, args: argparse.Namespace, realized: dict[str, Any],
                settlements: dict[str, Any]) -> dict[str, Any]:
    from rfq_engine.cli.cmd_hedge import _read_store
    from rfq_engine.domain.values import utc_now
    from rfq_engine.hedging.evidence import load_performance
    from rfq_engine.hedging.forecast import Period
    from rfq_engine.hedging.records import load_inputs, load_trades
    from rfq_engine.hedging.report import coverage
    from rfq_engine.hedging.risk import risk_report
    from rfq_engine.hedging.riskwatch import credit_lines
    from rfq_engine.wiring import venue_margin_reader

    now = utc_now()
    today = now.date()
    snapshot = config.market.to_snapshot(now)
    store = await _read_store(config, args.store)
    try:
        trades = [] if store is None else await load_trades(store)
        posted = (await load_inputs(store)).collateral  # the operator's collateral.posted events
        reader = venue_margin_reader(config)
        try:
            accounts = None if reader is None else await reader.read()
        finally:
            if reader is not None:
                await reader.close()
        rows = [row for name, program in config.programs.items()
                for row in coverage(name, program, trades, config.forecast, [Period.of(today)], today)]
        report, _ = risk_report(cfg=config.risk, trades=trades, snapshot=snapshot, today=today,
                                agreements=config.collateral, credit_lines=credit_lines(config.mandates),
                                coverage=rows, settlements=settlements, venue_accounts=accounts,
                                posted=posted, now=now)
        performance = [] if store is None else await load_performance(
            store, config.programs, snapshot, today, realized=realized, settlements=settlements)
    finally:
        if store is not None:
            await store.close()
    return {**report, "performance": performance}


def _source(sources: dict[str, str] | None) -> str:
    """``venue``, ``config`` (the estimate) or, when mixed, the figures the venue gave."""
    kinds = set((sources or {}).values()) or {"config"}
    if len(kinds) == 1:
        return kinds.pop()
    return "venue: " + ", ".join(k for k, v in (sources or {}).items() if v == "venue")


def _print_risk(data: dict[str, Any], args: argparse.Namespace) -> int:
    from rfq_engine.cli.cmd_hedge import EXIT_OK, _print_json, _table

    if args.json:
        _print_json(data)
        return EXIT_OK
    print(f"as of {data['as_of']}, BTC {data['btc_price']}")
    print(f"\nalerts: {len(data['alerts'])}")
    for alert in data["alerts"]:
        print(f"  {alert['kind']} {alert['subject']}: {alert['message']}")
    sections = [
        ("counterparties: exposure against credit lines", data["counterparties"], [
            ("dealer", "dealer"), ("mtm_usd", "MTM USD"), ("initial_margin_usd", "IM USD"),
            ("exposure_usd", "exposure USD"), ("credit_line", "credit line"), ("usage", "usage")]),
        ("OTC desks: margin", [{**d, "call_kind": d["call"]["kind"], "call_usd": d["call"]["usd"]}
                               for d in data["desks"]], [
            ("dealer", "desk"), ("required_usd", "required USD"), ("posted_value_usd", "posted USD"),
            ("usage", "usage"), ("call_kind", "call"), ("call_usd", "call USD")]),
        ("venues: margin and liquidation",
         [{**v, "source": _source(v.get("sources"))} for v in data["venues"]], [
            ("venue", "venue"), ("instrument", "instrument"), ("equity", "equity"), ("currency", "ccy"),
            ("maintenance_margin", "maintenance"), ("usage", "usage"), ("call", "call"),
            ("liquidation_price", "liquidation"), ("distance", "distance"), ("source", "source")]),
        ("funding (estimate)", data["funding"], [
            ("venue", "venue"), ("instrument", "instrument"), ("quantity", "quantity"), ("rate", "rate"),
            ("paid_usd_per_day", "paid USD/day")]),
        ("funding paid so far (estimate: the configured rate at today's mark)", data["funding_accrued"], [
            ("dealer", "venue"), ("instrument", "instrument"), ("since", "since"), ("intervals", "intervals"),
            ("rate", "rate"), ("paid", "paid"), ("currency", "ccy"), ("paid_usd", "paid USD")]),
        ("coverage of this month", data["coverage"], [
            ("program", "program"), ("forecast", "forecast"), ("hedged", "hedged"), ("coverage", "coverage"),
            ("target_ratio", "target")]),
        ("liquidity", data["liquidity"], [
            ("instrument", "instrument"), ("quantity", "quantity"), ("depth", "depth"), ("ratio", "ratio")]),
    ]
    for title, rows, columns in sections:
        if rows:
            print(f"\n{title}:")
            print(_table(rows, columns))
    for program in data["performance"]:
        print(f"\nprogram {program['program']} against the market (price now {program['price']}):")
        print(_table(program["periods"], [
            ("period", "period"), ("forecast", "forecast"), ("realized", "realized"),
            ("unhedged_value", "unhedged value"), ("hedge_pnl", "hedge P&L"),
            ("hedged_value", "hedged value"), ("realized_value", "realized value"), ("fills", "fills")]))
        totals = program["totals"]
        print(f"total: unhedged {totals['unhedged_value']}, hedge P&L {totals['hedge_pnl']}, "
              f"hedged {totals['hedged_value']} USD")
        if program["timeline"]:
            print(_table(program["timeline"], [("at", "fill at"), ("fill_id", "fill"),
                                               ("pnl", "P&L so far")]))
    return EXIT_OK
