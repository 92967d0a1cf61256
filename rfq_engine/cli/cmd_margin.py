"""``rfq hedge margin``: collateral and margin per OTC desk, and the margin-call forecast.

    rfq hedge margin --config FILE [--shock -0.2 ...] [--days N] [--posted DEALER:ASSET=AMOUNT ...]
                     [--settle KEY=PRICE ...] [--store URL] [--json]

Reads the fills from the store (read-only; a missing database is an empty book), builds each
desk's positions, and applies its ``[collateral.<dealer>]`` agreement, with the collateral
posted from the latest ``collateral.posted`` event of the desk (else the config's ``posted``;
``--posted`` overrides either; ``collateral_sources`` says which: posted, config or flag)
(``rfq_engine.hedging.margin``, ``docs/hedging.md`` "Collateral and margin"). Only argparse
is imported here.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run_margin"]


def add_parser(actions: Any) -> None:
    margin = actions.add_parser("margin", help="collateral per OTC desk: initial margin, mark to market, "
                                "variation margin, required vs posted, and the margin calls under shocks")
    margin.add_argument("--config", required=True, help="TOML config with [collateral.<dealer>] agreements")
    margin.add_argument("--store", help="store URL (overrides the config)")
    margin.add_argument("--shock", action="append", default=[], metavar="MOVE",
                        help="a price move of BTC and hashprice, -0.2 = -20%% (repeatable; default "
                        "-0.3 -0.2 -0.1 0.1 0.2 0.3)")
    margin.add_argument("--days", type=int, default=5,
                        help="days over which each shock unfolds, marked daily (default 5)")
    margin.add_argument("--posted", action="append", default=[], metavar="DEALER:ASSET=AMOUNT",
                        help="collateral posted now, e.g. luxor:USD=63000 (overrides the recorded "
                        "collateral.posted and the config's)")
    margin.add_argument("--settle", action="append", default=[], metavar="KEY=PRICE",
                        help="settlement price or index of an instrument")
    margin.add_argument("--json", action="store_true")
    margin.set_defaults(handler=run_margin)


def _posted(items: list[str], agreements: dict[str, Any], recorded: dict[str, dict[str, Any]] | None = None
            ) -> dict[str, dict[str, Any]]:
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.domain.values import parse_decimal
    from rfq_engine.hedging.margin import ASSETS

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        who, _, rest = item.partition(":")
        asset, sep, amount = rest.partition("=")
        asset = asset.strip().upper()
        if not sep or not who or asset not in ASSETS:
            raise ValidationError("--posted", f"must be DEALER:ASSET=AMOUNT, ASSET USD or BTC: {item!r}")
        if who not in agreements:
            known = ", ".join(sorted(agreements)) or "none"
            raise ValidationError("--posted", f"no [collateral.{who}] agreement (configured: {known})")
        value = parse_decimal(amount, f"--posted {item}")
        if value < 0:
            raise ValidationError("--posted", f"an amount posted is >= 0, got {item!r}")
        if asset not in agreements[who].eligible:
            raise ValidationError("--posted", f"{asset} is not eligible collateral with {who}")
        base = (recorded or {}).get(who, agreements[who].posted)
        out.setdefault(who, dict(base))[asset] = value
    return out


def run_margin(args: argparse.Namespace) -> int:
    import asyncio

    from rfq_engine.cli.cmd_hedge import _dec, _guard, _load

    def go() -> int:
        from rfq_engine.cli.cmd_report import settlements_of
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.margin import DEFAULT_SHOCKS

        config = _load(args.config)
        if not config.collateral:
            raise ValidationError("collateral", "the config has no [collateral.<dealer>] agreement")
        settlements = settlements_of(args.settle)
        shocks = [_dec(s, f"--shock {s}") for s in args.shock] or list(DEFAULT_SHOCKS)
        _posted(args.posted, dict(config.collateral))  # bad flags refused before the store opens
        return asyncio.run(_margin(config, args, shocks, settlements))

    return _guard(go)


async def _margin(config: Any, args: argparse.Namespace, shocks: list[Any], settlements: dict[str, Any]
                  ) -> int:
    from rfq_engine.cli.cmd_hedge import EXIT_OK, _print_json, _read_store, _short, _table
    from rfq_engine.domain.values import utc_now
    from rfq_engine.hedging.margin import margin_report
    from rfq_engine.hedging.records import load_inputs, load_trades

    now = utc_now()
    store = await _read_store(config, args.store)
    try:
        trades = [] if store is None else await load_trades(store)
        inputs = await load_inputs(store)
    finally:
        if store is not None:
            await store.close()
    recorded = {d: dict(p.amounts) for d, p in inputs.collateral.items()
                if p.account == "desk" and d in config.collateral}
    flagged = _posted(args.posted, dict(config.collateral), recorded)
    posted = {**recorded, **flagged}
    report = margin_report(config.collateral, trades, config.market.to_snapshot(now), now.date(), shocks,
                           days=args.days, posted=posted, settlements=settlements)
    report["collateral_sources"] = {d: "flag" if d in flagged else "posted" if d in recorded else "config"
                                    for d in sorted(config.collateral)}
    if args.json:
        _print_json(report)
        return EXIT_OK
    print(f"as of {report['as_of']}, BTC {report['btc_price']}")
    for desk in report["desks"]:
        call = desk["call"]
        print(f"\n{desk['dealer']}:")
        if desk["positions"]:
            print(_table(desk["positions"], [
                ("instrument", "instrument"), ("quantity", "quantity"), ("notional", "notional"),
                ("currency", "ccy"), ("initial_margin", "initial margin"), ("mtm_usd", "MTM USD")]))
        else:
            print("no open positions")
        print(f"initial margin {desk['initial_margin_usd']} USD, MTM {desk['mtm_usd']} USD, variation "
              f"margin {desk['variation_margin_usd']} USD; required {desk['required_usd']} USD, posted "
              f"{desk['posted_value_usd']} USD after haircuts "
              f"({report['collateral_sources'].get(desk['dealer'], 'config')})")
        btc = f" ({_short(call['btc'])} BTC)" if call["btc"] is not None else ""
        print(f"call: {call['kind']} {call['usd']} USD{btc}")
    if report["without_agreement"]:
        print(f"\ntraded without a collateral agreement: {', '.join(report['without_agreement'])}")
    print(f"\nmargin-call forecast (each shock over {args.days} days):")
    rows = []
    for scenario in report["forecast"]:
        for desk in scenario["desks"]:
            rows.append({"shock": scenario["shock"], "dealer": desk["dealer"],
                         "first": desk["first_call_day"], "usd": desk["total_called_usd"],
                         "btc": _short(desk["total_called_btc"]) if desk["total_called_btc"] else ""})
    print(_table(rows, [("shock", "shock"), ("dealer", "desk"), ("first", "first call (day)"),
                        ("usd", "called USD"), ("btc", "called BTC")]))
    return EXIT_OK
