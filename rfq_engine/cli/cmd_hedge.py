"""``rfq hedge``: forecast, plan, roll, positions and scenario (``docs/hedging.md``).

    rfq hedge forecast [--config FILE [--program NAME]] [--hashrate "50 PH/s"] [--difficulty D] ...
    rfq hedge plan PROGRAM --config FILE [--dry-run] [--period YYYY-MM] [--approver NAME]
    rfq hedge roll PROGRAM --config FILE [--dry-run] [--period YYYY-MM]
    rfq hedge run --config FILE [--at TIME] [--program NAME ...] [--dry-run]  (cmd_hedge_run)
    rfq hedge positions --config FILE [--program NAME] [--settle KEY=PRICE ...]
    rfq hedge scenario --strategy collar --spot 40000 --cost 30000 --put 35000 --call 50000 ...
    rfq hedge scenario --strategy ndf --unit 60 --hashrate-ph 50 --days 30 --settle 45,75 ...
    rfq hedge margin --config FILE [--shock -0.2 ...] [--posted DEALER:ASSET=AMOUNT ...]  (cmd_margin)
    rfq hedge collateral post --config FILE --dealer D --amount 5 --currency BTC --by NAME  (cmd_hedge_inputs)
    rfq hedge production record --config FILE --program P --period YYYY-MM --quantity Q --by NAME

Every command takes ``--json`` (decimals as strings). ``--dry-run`` writes nothing at all:
the store is opened read-only (a missing database is an empty book) and no engine starts.
Only argparse is imported here; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parsers"]

EXIT_OK, EXIT_ERROR, EXIT_NOT_FILLED, EXIT_PARTIAL = 0, 1, 2, 3


def add_parsers(sub: Any) -> None:
    hedge = sub.add_parser("hedge", help="hedge programs: forecast, plan, roll, positions, scenarios, margin")
    actions = hedge.add_subparsers(dest="hedge_command", required=True, metavar="ACTION")

    forecast = actions.add_parser("forecast", help="BTC per day and per month, and hashprice, from "
                                  "hashrate, difficulty, subsidy, fees and uptime")
    forecast.add_argument("--config", help="TOML config: its [forecast] (and --program's) inputs")
    forecast.add_argument("--program", help="use this program's forecast inputs")
    forecast.add_argument("--hashrate", help='hashrate with its unit: "800 TH/s", "50 PH/s", "1.2 EH/s"')
    for unit in ("th", "ph", "eh"):
        forecast.add_argument(f"--hashrate-{unit}", help=f"hashrate in {unit.upper()[0]}H/s")
    forecast.add_argument("--difficulty", help="network difficulty, e.g. 110000000000000")
    forecast.add_argument("--difficulty-change", help="expected change per adjustment: 0.02 = +2%%")
    forecast.add_argument("--next-adjustment", help="date of the next adjustment (YYYY-MM-DD)")
    forecast.add_argument("--subsidy", help="block subsidy, BTC per block (default 3.125)")
    forecast.add_argument("--fees", help="average fees, BTC per block (default 0)")
    forecast.add_argument("--uptime", help="fraction of time hashing, (0, 1] (default 1)")
    forecast.add_argument("--btc-price", help="USD per BTC (default: the config's market spot)")
    forecast.add_argument("--period", help="first month YYYY-MM (default: next month)")
    forecast.add_argument("--months", type=int, default=1, help="how many months (default 1)")
    forecast.add_argument("--json", action="store_true")
    forecast.set_defaults(handler=run_forecast)

    for name, text in (("plan", "size the coming period's hedge and send the RFQs that close the gap"),
                       ("roll", "send only the roll: buy back the expiring future, sell the next")):
        p = actions.add_parser(name, help=text)
        p.add_argument("program")
        p.add_argument("--config", required=True)
        p.add_argument("--store", help="store URL (overrides the config)")
        p.add_argument("--period", help="the period YYYY-MM (default: the coming one)")
        p.add_argument("--dry-run", action="store_true",
                       help="print the RFQs it would send; write nothing")
        p.add_argument("--approver", help="the person approving (required by approval = true)")
        p.add_argument("--retry", type=int, default=0,
                       help="a deliberate retry number after an RFQ of the period did not fill")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=run_plan, only_rolls=name == "roll")

    positions = actions.add_parser("positions", help="positions from fills, marks, P&L, coverage, rolls")
    positions.add_argument("--config", required=True)
    positions.add_argument("--store", help="store URL (overrides the config)")
    positions.add_argument("--program", help="only this program's fills")
    positions.add_argument("--settle", action="append", default=[], metavar="KEY=PRICE",
                           help="settlement price or index, e.g. HASHPRICE-USD-NDF-2026-12-01-31D=48")
    positions.add_argument("--json", action="store_true")
    positions.set_defaults(handler=run_positions)

    scenario = actions.add_parser("scenario", help="hedged vs unhedged outcomes across prices at "
                                  "expiry, or an NDF at settlement rates")
    scenario.add_argument("--strategy", required=True,
                          choices=["unhedged", "future", "put", "collar", "future_call", "ndf"])
    scenario.add_argument("--spot", help="spot price (strikes may be a %% of it)")
    scenario.add_argument("--cost", default="0", help="all-in cost per unit")
    scenario.add_argument("--quantity", default="1", help="production, e.g. 100 (BTC)")
    scenario.add_argument("--prices", help="prices at expiry, comma-separated")
    scenario.add_argument("--future-price", help="the price the future was sold at (default spot)")
    scenario.add_argument("--put", help='put strike, "35000" or "87.5%%"')
    scenario.add_argument("--call", help='call strike, "50000" or "125%%"')
    scenario.add_argument("--premium", default="0", help="premium paid per unit (negative: received)")
    scenario.add_argument("--ratio", help="hedge ratio, 0..1 (default 1)")
    scenario.add_argument("--call-ratio", help="future_call: calls bought per future sold, 0..1 (default 1)")
    scenario.add_argument("--unit", help="NDF unit hashprice U, USD per PH/s per day")
    scenario.add_argument("--hashrate-ph", help="NDF hashrate H, PH/s")
    scenario.add_argument("--days", type=int, help="NDF duration N, days")
    scenario.add_argument("--power-mw", help="power load, MW")
    scenario.add_argument("--power-price", help="power price, USD per MWh")
    scenario.add_argument("--settle", help="NDF settlement rates R, comma-separated")
    scenario.add_argument("--side", choices=["short", "long"], default="short",
                          help="NDF side: short (a miner sells) or long (a hosting provider buys)")
    scenario.add_argument("--opex-only", action="store_true",
                          help="NDF: hedge only the operating cost (ratio = power cost / revenue)")
    scenario.add_argument("--json", action="store_true")
    scenario.set_defaults(handler=run_scenario)

    from rfq_engine.cli.cmd_hedge_inputs import add_parsers as add_inputs
    from rfq_engine.cli.cmd_hedge_run import add_parser as add_run
    from rfq_engine.cli.cmd_margin import add_parser as add_margin

    add_run(actions)
    add_margin(actions)
    add_inputs(actions)

    from rfq_engine.cli.cmd_report import add_parser as add_report

    add_report(actions)


# ------------------------------------------------------------------------------ helpers


def _fail(message: str) -> int:
    print(f"rfq: {message}", file=sys.stderr)
    return EXIT_ERROR


def _print_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=False))


def _dec(value: str | None, field: str) -> Any:
    from rfq_engine.domain.values import parse_decimal

    return None if value is None else parse_decimal(value, field)


def _decimals(value: str | None, field: str) -> list[Any]:
    from rfq_engine.domain.errors import ValidationError

    if not value:
        raise ValidationError(field, "needs a comma-separated list like 25000,40000,60000")
    return [_dec(part.strip(), f"{field}[{i}]") for i, part in enumerate(value.split(","))]


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    header = [title for _, title in columns]
    body = [["" if row.get(key) is None else str(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _short(text: str | None, places: int = 8) -> str:
    """A decimal string rounded for reading (the JSON output keeps every digit)."""
    from decimal import Decimal

    if text is None:
        return ""
    value = Decimal(text)
    rounded = value.quantize(Decimal(1).scaleb(-places)) if value.adjusted() < 20 else value
    return format(rounded.normalize(), "f") if rounded != 0 else "0"


def _load(path: str) -> Any:
    from rfq_engine.config import load_config

    return load_config(path)


def _guard(run: Any) -> int:
    from rfq_engine.config import ConfigError
    from rfq_engine.domain.errors import RfqError
    from rfq_engine.store.base import StoreError

    try:
        result: int = run()
        return result
    except (ConfigError, RfqError, StoreError, KeyError) as exc:
        return _fail(str(exc).strip("'\""))


# ------------------------------------------------------------------------------ forecast


def run_forecast(args: argparse.Namespace) -> int:
    return _guard(lambda: _forecast(args))


def _forecast(args: argparse.Namespace) -> int:
    from datetime import date

    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.domain.values import parse_date, utc_now
    from rfq_engine.hedging.forecast import Period, parse_hashrate
    from rfq_engine.hedging.program import ForecastConfig, resolve_forecast
    from rfq_engine.hedging.report import forecast_report

    defaults: ForecastConfig | None = None
    override: ForecastConfig | None = None
    btc_price = _dec(args.btc_price, "--btc-price")
    if args.config:
        config = _load(args.config)
        defaults = config.forecast
        if args.program:
            program = config.programs.get(args.program)
            if program is None:
                known = ", ".join(sorted(config.programs)) or "none"
                raise ValidationError("--program", f"unknown program {args.program!r}; configured: {known}")
            override = program.forecast
        if btc_price is None:
            btc_price = config.market.spot.get("BTC")
    elif args.program:
        raise ValidationError("--program", "needs --config")
    flags: dict[str, Any] = {}
    given = [(flag, getattr(args, attr)) for flag, attr in (
        ("--hashrate", "hashrate"), ("--hashrate-th", "hashrate_th"), ("--hashrate-ph", "hashrate_ph"),
        ("--hashrate-eh", "hashrate_eh")) if getattr(args, attr) is not None]
    if len(given) > 1:
        raise ValidationError(given[1][0], f"give the hashrate once (also given as {given[0][0]})")
    if given:
        flag, value = given[0]
        text = value if flag == "--hashrate" else f"{value} {flag[-2:].upper()}/s"
        flags["hashrate"] = parse_hashrate(text, flag)
    for attr, key, flag in (("difficulty", "difficulty", "--difficulty"),
                            ("difficulty_change", "difficulty_change", "--difficulty-change"),
                            ("subsidy", "block_subsidy", "--subsidy"), ("fees", "fees_per_block", "--fees"),
                            ("uptime", "uptime", "--uptime")):
        if getattr(args, attr) is not None:
            flags[key] = _dec(getattr(args, attr), flag)
    if args.next_adjustment is not None:
        flags["next_adjustment"] = parse_date(args.next_adjustment, "--next-adjustment")
    cli = _forecast_flags(flags)
    base = (defaults or ForecastConfig()).merged(override)
    try:
        inputs = resolve_forecast(base, cli, "forecast")
    except ValidationError as exc:
        flag = "--" + exc.field.rsplit(".", 1)[-1].replace("_", "-")
        raise ValidationError(flag, exc.reason) from None
    today: date = utc_now().date()
    first = Period.parse(args.period, "--period") if args.period else Period.of(today).plus(1)
    if not 1 <= args.months <= 120:
        raise ValidationError("--months", f"must be 1..120 months, got {args.months}")
    periods = [first.plus(i) for i in range(args.months)]
    report = forecast_report(inputs, periods, as_of=today, btc_price=btc_price)
    fleet = (defaults or ForecastConfig()).merged(override).fleet
    if fleet is not None:
        report["fleet"] = _fleet_rows(inputs, fleet, periods, report.get("hashprice_usd_per_ph_day"))
    if args.json:
        _print_json(report)
        return EXIT_OK
    i = report["inputs"]
    print(f"hashrate {i['hashrate']} x uptime {i['uptime']}, difficulty {i['difficulty']} "
          f"(change per adjustment {i['difficulty_change_per_adjustment']}), reward "
          f"{i['block_subsidy_btc']} + {i['fees_per_block_btc']} fees BTC/block")
    print(f"BTC per day (today's difficulty): {_short(report['btc_per_day'])}")
    usd = report["hashprice_usd_per_ph_day"]
    print(f"hashprice: {_short(report['hashprice_btc_per_ph_day'], 10)} BTC per PH/s per day"
          + (f" = {_short(usd, 2)} USD at {report['btc_price']} USD/BTC" if usd else ""))
    if fleet is not None:
        print(f"fleet at {fleet.efficiency} J/TH, power {fleet.power_price} USD/MWh (uptime band):")
        print(_table(report["fleet"], [("period", "period"), ("uptime", "uptime"), ("average_ph", "PH/s"),
                                       ("average_mw", "MW"), ("mwh", "MWh"), ("energy_cost", "energy USD"),
                                       ("revenue", "revenue USD"), ("oer", "OER"),
                                       ("opex_contracts", "opex NDF contracts")]))
    rows = [{**row, "btc": _short(row["btc"]), "btc_per_day_last": _short(row["btc_per_day_last"]),
             "difficulty_last": _short(row["difficulty_last"], 0)} for row in report["periods"]]
    print(_table(rows, [("period", "period"), ("days", "days"), ("btc", "BTC"),
                                     ("btc_per_day_last", "BTC/day (end)"),
                                     ("difficulty_last", "difficulty (end)")]))
    return EXIT_OK


def _fleet_rows(inputs: Any, fleet: Any, periods: list[Any], hashprice: str | None) -> list[dict[str, Any]]:
    """Each period at the band's low uptime, the forecast's and the band's high."""
    from decimal import Decimal

    from rfq_engine.hedging.fleet import uptime_band

    price = None if hashprice is None else Decimal(hashprice)
    return [{"period": str(period), **row.to_dict()} for period in periods
            for row in uptime_band(inputs, fleet, period.start, period.end, hashprice_usd=price)]


def _forecast_flags(flags: dict[str, Any]) -> Any:
    """The command-line inputs as a ``ForecastConfig``; an error names the flag and its unit."""
    import pydantic

    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.hedging.program import ForecastConfig

    if not flags:
        return None
    try:
        return ForecastConfig.model_validate(flags)
    except pydantic.ValidationError as exc:
        item = exc.errors()[0]
        flag = "--" + str(item["loc"][0]).replace("_", "-").replace("block-subsidy", "subsidy") \
            .replace("fees-per-block", "fees")
        raise ValidationError(flag, str(item["msg"]).removeprefix("Value error, ")) from None


# ------------------------------------------------------------------------------ plan / roll


def run_plan(args: argparse.Namespace) -> int:
    import asyncio

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.forecast import Period

        config = _load(args.config)
        if args.program not in config.programs:
            known = ", ".join(sorted(config.programs)) or "none"
            raise ValidationError("program", f"unknown program {args.program!r}; configured: {known}")
        period = Period.parse(args.period, "--period") if args.period else None
        if args.retry < 0:
            raise ValidationError("--retry", "must not be negative")
        if args.dry_run:
            return asyncio.run(_dry_run(config, args, period))
        program = config.programs[args.program]
        if program.approval and not args.approver:
            raise ValidationError("--approver", f"program {args.program} requires a person's approval: "
                                  "name yourself with --approver NAME (or use --dry-run)")
        from rfq_engine.logging import configure_logging

        configure_logging("WARNING", config.logging.json_lines)
        return asyncio.run(_submit(config, args, period))

    return _guard(go)


async def _read_store(config: Any, url: str | None) -> Any:
    """The store opened read-only, or None when there is no database yet (an empty book)."""
    from rfq_engine.store.base import StoreError
    from rfq_engine.wiring import open_configured_store

    try:
        store = open_configured_store(config, url=url, readonly=True)
        await store.open()
    except StoreError as exc:
        text = str(exc)
        if "no audit database" in text or "read-only memory store" in text:
            return None
        raise
    return store


async def _dry_run(config: Any, args: argparse.Namespace, period: Any) -> int:
    from rfq_engine.cli.cmd_hedge_run import collateral_checked
    from rfq_engine.domain.values import utc_now
    from rfq_engine.hedging.scheduler import coming_period, prepare_plan

    now = utc_now()
    program = config.programs[args.program]
    store = await _read_store(config, args.store)
    try:
        mandate = config.mandates.get(program.mandate)
        snapshot = config.market.to_snapshot(now)
        plan = await prepare_plan(
            name=args.program, program=program, store=store, snapshot=snapshot,
            forecast_defaults=config.forecast,
            mandate_max_ratio=None if mandate is None else mandate.max_hedge_ratio,
            period=period or coming_period(program, now), today=now.date(), retry=args.retry,
            only_rolls=args.only_rolls)
        plan = await collateral_checked(config, store, program, plan, snapshot, now)
    finally:
        if store is not None:
            await store.close()
    data = {**plan.to_dict(), "dry_run": True, "sent": False}
    if args.json:
        _print_json(data)
    else:
        _print_plan(data)
        print("dry run: nothing was sent or written")
    return EXIT_OK


def _print_plan(data: dict[str, Any]) -> None:
    f = data["forecast"]
    print(f"program {data['program']} ({data['strategy']}), period {data['period']}: {data['action']}")
    print(f"  forecast {_short(f['quantity'])} {f['unit']}, hedge ratio {data['hedge_ratio']}, target "
          f"{data['target']}, held {data['held']}, spot {data['spot']}")
    for reason in data["reasons"]:
        print(f"  - {reason}")
    for rfq in data["rfqs"]:
        spec = rfq["spec"]
        legs = ", ".join(f"{leg['side']} {_leg_text(leg['instrument'])}" for leg in spec["legs"])
        print(f"  RFQ {rfq['client_rfq_id']}: {spec['direction']} {spec['quantity']} {spec['quantity_unit']}"
              f" [{legs}] to {', '.join(spec['dealers'])}")


def _leg_text(instrument: dict[str, Any]) -> str:
    from rfq_engine.domain.instruments import instrument_from_dict
    from rfq_engine.hedging.positions import instrument_key

    return instrument_key(instrument_from_dict(instrument))


async def _submit(config: Any, args: argparse.Namespace, period: Any) -> int:
    from rfq_engine.cli.cmd_hedge_run import exit_code, settle_decision
    from rfq_engine.hedging.riskwatch import RiskWatch
    from rfq_engine.hedging.scheduler import HedgeScheduler
    from rfq_engine.wiring import open_app

    app = await open_app(config, store_url=args.store)
    RiskWatch(app.engine, app.store, config, app.reference).attach()  # the collateral gate
    scheduler = HedgeScheduler.from_config(app.engine, app.store, config, app.reference)
    try:
        decision = await scheduler.run_program(args.program, period=period, only_rolls=args.only_rolls,
                                               retry=args.retry, approved_by=args.approver)
        outcomes = await settle_decision(app, decision)
    finally:
        await app.close()
    data = {**decision.to_dict(), "outcomes": outcomes}
    if args.json:
        _print_json(data)
    else:
        plan = decision.plan
        if plan is not None:
            _print_plan({**plan.to_dict(), "reasons": data["reasons"]})
        else:
            for reason in data["reasons"]:
                print(f"  - {reason}")
        for outcome in data["outcomes"]:
            fills_text = ", ".join(f"{f['quantity']} @ {f['price']} ({f['dealer_id']})"
                                   for f in outcome["fills"])
            print(f"  {outcome['rfq_id']}: {outcome['state']}" + (f": {fills_text}" if fills_text else ""))
        print(f"decision recorded: {data['action']}")
    return exit_code([decision.action], [o["state"] for o in outcomes])


# ------------------------------------------------------------------------------ positions


def run_positions(args: argparse.Namespace) -> int:
    import asyncio

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.positions import instrument_key, parse_instrument_key

        config = _load(args.config)
        settlements = {}
        for item in args.settle:
            key, sep, price = item.partition("=")
            if not sep:
                raise ValidationError("--settle", f"must be KEY=PRICE, got {item!r}")
            settlements[instrument_key(parse_instrument_key(key))] = _dec(price, f"--settle {key}")
        if args.program and args.program not in config.programs:
            known = ", ".join(sorted(config.programs)) or "none"
            raise ValidationError("--program", f"unknown program {args.program!r}; configured: {known}")
        return asyncio.run(_positions(config, args, settlements))

    return _guard(go)


async def _positions(config: Any, args: argparse.Namespace, settlements: dict[str, Any]) -> int:
    from rfq_engine.domain.values import utc_now
    from rfq_engine.hedging.funding import perpetual_funding
    from rfq_engine.hedging.records import load_trades
    from rfq_engine.hedging.report import positions_report
    from rfq_engine.hedging.risk import funding_rates

    now = utc_now()
    store = await _read_store(config, args.store)
    try:
        trades = [] if store is None else await load_trades(
            store, None if args.program is None else f"program:{args.program}")
    finally:
        if store is not None:
            await store.close()
    programs = config.programs if args.program is None else {args.program: config.programs[args.program]}
    snapshot = config.market.to_snapshot(now)
    report = positions_report(trades, snapshot, now.date(), settlements=settlements,
                              programs=programs, forecast_defaults=config.forecast)
    report["funding"] = perpetual_funding(trades, funding_rates(config.risk), snapshot, now)
    if args.json:
        _print_json(report)
        return EXIT_OK
    print(_table(report["positions"], [
        ("instrument", "instrument"), ("quantity", "quantity"), ("average_price", "avg price"),
        ("mark", "mark"), ("realized_pnl", "realized"), ("unrealized_pnl", "unrealized"),
        ("status", "status")]) if report["positions"] else "no positions")
    t = report["totals"]
    print(f"P&L: realized {t['realized_pnl']}, unrealized {t['unrealized_pnl']}, total {t['total_pnl']}")
    if report["rolls"]:
        print("rolls:")
        print(_table(report["rolls"], [("bought", "bought back"), ("sold", "sold"), ("quantity", "quantity"),
                                       ("result_per_unit", "result/unit"), ("result_total", "result")]))
    if report["coverage"]:
        print("coverage:")
        print(_table(report["coverage"], [("program", "program"), ("period", "period"),
                                          ("forecast", "forecast"), ("hedged", "hedged"),
                                          ("coverage", "coverage"), ("unit", "unit")]))
    if report["funding"]:
        print("funding paid so far (estimate: the configured rate at today's mark; negative: received):")
        print(_table(report["funding"], [
            ("dealer", "dealer"), ("instrument", "perpetual"), ("since", "since"), ("intervals", "intervals"),
            ("rate", "rate"), ("paid", "paid"), ("currency", "ccy"), ("paid_usd", "paid USD")]))
    return EXIT_OK


# ------------------------------------------------------------------------------ scenario


def _future_call(args: argparse.Namespace) -> int:
    """Futures with a call overlay (``hedging.strategies``): absolute prices only."""
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.hedging.strategies import future_call_table

    for flag, value in (("--future-price", args.future_price), ("--call", args.call),
                        ("--prices", args.prices)):
        if value is None:
            raise ValidationError(flag, "is required for --strategy future_call")
    one = _dec("1", "--ratio")
    table = future_call_table(
        prices=_decimals(args.prices, "--prices"), future_price=_dec(args.future_price, "--future-price"),
        call_strike=_dec(args.call, "--call"), premium=_dec(args.premium, "--premium"),
        quantity=_dec(args.quantity, "--quantity"), cost=_dec(args.cost, "--cost"),
        hedge_ratio=_dec(args.ratio, "--ratio") if args.ratio is not None else one,
        call_ratio=_dec(args.call_ratio, "--call-ratio") if args.call_ratio is not None else one)
    if args.json:
        _print_json(table)
        return EXIT_OK
    print(f"future_call: futures sold at {table['future_price']} on {table['hedge_ratio']} of production, "
          f"{table['call_ratio']} calls of strike {table['call_strike']} per future at {table['premium']}; "
          f"floor of the hedged share {table['hedged_share_floor']}")
    print(_table(table["rows"], [("price", "price at expiry"), ("unhedged_revenue", "unhedged revenue"),
                                 ("hedged_revenue", "hedged revenue"), ("hedged_pnl", "hedged P&L"),
                                 ("hedged_revenue_total", "hedged revenue (total)")]))
    return EXIT_OK


def run_scenario(args: argparse.Namespace) -> int:
    return _guard(lambda: _scenario(args))


def _scenario(args: argparse.Namespace) -> int:
    from rfq_engine.domain.errors import ValidationError
    from rfq_engine.hedging.scenario import ndf_table, scenario_table

    if args.strategy == "ndf":
        for flag, value in (("--unit", args.unit), ("--hashrate-ph", args.hashrate_ph),
                            ("--days", args.days), ("--settle", args.settle)):
            if value is None:
                raise ValidationError(flag, "is required for --strategy ndf")
        table = ndf_table(
            unit_price=_dec(args.unit, "--unit"), hashrate_ph=_dec(args.hashrate_ph, "--hashrate-ph"),
            days=args.days, settle_rates=_decimals(args.settle, "--settle"), side=args.side,
            hedge_ratio=_dec(args.ratio, "--ratio"), power_mw=_dec(args.power_mw, "--power-mw"),
            power_price=_dec(args.power_price, "--power-price"), opex_only=args.opex_only)
        if args.json:
            _print_json(table)
            return EXIT_OK
        print(f"NDF {table['side']}: {table['contracts']} contracts (ratio {table['hedge_ratio']} x "
              f"{table['hashrate_ph']} PH/s x {table['days']} days) at {table['unit_price']} USD/PH/s/day: "
              f"locked {table['locked_value']} USD")
        power = table.get("power")
        if power:
            print(f"power {power['mw']} MW x {power['price_per_mwh']} USD/MWh: {power['mwh']} MWh, cost "
                  f"{power['cost']} USD (operating expense ratio {power['opex_ratio_pct']}%)")
        if "profit_floor" in table:
            print(f"revenue floor {table['revenue_floor']} USD; profit floor {table['profit_floor']} USD = "
                  f"{table['profit_floor_per_mwh']} USD/MWh")
        columns = [("settlement_rate", "R"), ("exposure", "mining" if table["side"] == "short" else "owed"),
                   ("ndf_settlement", "NDF"), ("total", "total")]
        if power:
            columns.append(("profit", "profit"))
        print(_table(table["rows"], columns))
        return EXIT_OK
    if args.strategy == "future_call":
        return _future_call(args)
    if args.spot is None:
        raise ValidationError("--spot", f"is required for --strategy {args.strategy}")
    table = scenario_table(
        strategy=args.strategy, spot=_dec(args.spot, "--spot"), cost=_dec(args.cost, "--cost"),
        quantity=_dec(args.quantity, "--quantity"), prices=_decimals(args.prices, "--prices"),
        future_price=_dec(args.future_price, "--future-price"), put_strike=args.put, call_strike=args.call,
        premium=_dec(args.premium, "--premium"),
        hedge_ratio=_dec(args.ratio, "--ratio") if args.ratio is not None else _dec("1", "--ratio"))
    if args.json:
        _print_json(table)
        return EXIT_OK
    terms = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in table["terms"].items())
    print(f"{table['strategy']}{' (' + terms + ')' if terms else ''}; spot {table['spot']}, cost "
          f"{table['cost']}, quantity {table['quantity']}, hedge ratio {table['hedge_ratio']}")
    print("per unit:")
    print(_table(table["rows"], [("price", "price at expiry"), ("unhedged_revenue", "unhedged revenue"),
                                 ("unhedged_pnl", "unhedged P&L"), ("hedged_revenue", "hedged revenue"),
                                 ("hedged_pnl", "hedged P&L")]))
    print(f"total ({table['quantity']} units):")
    print(_table(table["rows"], [("price", "price at expiry"), ("unhedged_revenue_total", "unhedged revenue"),
                                 ("unhedged_pnl_total", "unhedged P&L"),
                                 ("hedged_revenue_total", "hedged revenue"),
                                 ("hedged_pnl_total", "hedged P&L")]))
    return EXIT_OK
