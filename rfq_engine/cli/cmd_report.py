"""``rfq hedge report``: the hedge file of a program and period, as PDF, CSV or JSONL.

    rfq hedge report --config FILE --program P --period YYYY-MM --format pdf|csv|jsonl
                     [--output FILE] [--realized QTY] [--settle KEY=PRICE ...] [--store URL]

Reads the store read-only; the file names the verified audit chain's head it was built from
(``rfq_engine.hedging.hedgefile``, ``docs/risk.md``). Only argparse is imported here.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run_report"]


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


def _settlements(items: list[str]) -> dict[str, Any]:
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
        hedge_file = asyncio.run(_load_file(config, args, period, realized, _settlements(args.settle)))
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
