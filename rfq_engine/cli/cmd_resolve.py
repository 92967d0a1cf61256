"""``rfq resolve``: a person's decision on an award whose outcome is unknown.

Two ways to reach the engine that holds the award:

- ``--api URL`` (with the token in ``RFQ_API_TOKEN``): the running ``rfq serve`` decides;
  the token's user is the one who resolves.
- ``--config FILE --by NAME``: no engine is running; a one-shot engine opens the store,
  resumes the unresolved RFQ (it asks the dealer once more: if the dealer now answers,
  that answer wins and the resolution is refused), records the decision and ends the RFQ.

Exit codes: 0 recorded (the RFQ's decision record follows), 1 refused or bad input,
5 the RFQ is still unresolved afterwards (another award of it is still unknown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["add_parsers", "run_resolve"]

EXIT_OK, EXIT_ERROR, EXIT_UNRESOLVED = 0, 1, 5
"""As ``rfq_engine.cli.commands`` (imported only when the command runs: ``rfq --help`` stays
light); an error's code is its row in ``rfq_engine.error_table``."""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "resolve", help="record a person's decision on an award whose outcome is unresolved",
        description="After an award's outcome could not be reconciled with the dealer "
        "(runbooks/unresolved-execution.md), record what the evidence shows: --executed "
        "(with the dealer's trade id) or --not-executed. Durable before it returns; the "
        "first decision wins.")
    p.add_argument("rfq_id")
    p.add_argument("execution_id")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--executed", dest="executed", action="store_true",
                      help="the dealer executed it")
    what.add_argument("--not-executed", dest="executed", action="store_false",
                      help="the dealer did not execute it")
    p.add_argument("--evidence", required=True,
                   help="what shows it (dealer blotter reference, call log, venue order id)")
    p.add_argument("--dealer-trade-id", default="", help="the dealer's trade id (executed)")
    p.add_argument("--quantity", help="quantity executed (default: the whole award)")
    p.add_argument("--price", help="price executed (must be the awarded price)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--api", help="base URL of a running `rfq serve` (token: RFQ_API_TOKEN)")
    where.add_argument("--config", help="TOML config: run a one-shot engine on its store")
    p.add_argument("--store", help="store URL (overrides the config; one-shot only)")
    p.add_argument("--by", help="who resolves (one-shot only; not the RFQ's requester)")
    p.add_argument("--json", action="store_true", help="print the decision record as JSON")
    p.set_defaults(handler=run_resolve)


def _decimal(text: str | None, name: str) -> Decimal | None:
    from rfq_engine.domain import ValidationError

    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValidationError(f"--{name}", f"not a decimal: {text!r}") from None


def run_resolve(args: argparse.Namespace) -> int:
    from rfq_engine.cli.commands import report
    from rfq_engine.domain import ValidationError

    try:
        quantity = _decimal(args.quantity, "quantity")
        price = _decimal(args.price, "price")
    except ValidationError as exc:
        return report(exc)
    if args.api:
        return asyncio.run(_via_api(args))
    if not args.by:
        print("rfq: --by NAME is required with --config (who resolves it)", file=sys.stderr)
        return EXIT_ERROR
    from rfq_engine.config import ConfigError, load_config
    from rfq_engine.logging import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return report(exc)
    configure_logging(config.logging.level, config.logging.json_lines)
    return asyncio.run(_one_shot(args, config, quantity, price))


async def _via_api(args: argparse.Namespace) -> int:
    import aiohttp

    token = os.environ.get("RFQ_API_TOKEN", "")
    if not token:
        print("rfq: set RFQ_API_TOKEN to an API token allowed to resolve", file=sys.stderr)
        return EXIT_ERROR
    body: dict[str, Any] = {"executed": args.executed, "evidence": args.evidence}
    for key, value in (("dealer_trade_id", args.dealer_trade_id), ("quantity", args.quantity),
                       ("price", args.price)):
        if value:
            body[key] = value
    url = (f"{args.api.rstrip('/')}/api/v1/rfqs/{args.rfq_id}/executions/"
           f"{args.execution_id}/resolve")
    async with aiohttp.ClientSession() as session, session.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        text = await response.text()
    if response.status != 200:
        print(f"rfq: {response.status}: {text}", file=sys.stderr)
        return EXIT_ERROR
    print(text)
    return EXIT_OK


async def _one_shot(args: argparse.Namespace, config: Any, quantity: Decimal | None,
                    price: Decimal | None) -> int:
    from rfq_engine.cli.commands import report
    from rfq_engine.domain import ExecutionId, RfqError, RfqState
    from rfq_engine.engine.recovery import recover_open_rfqs
    from rfq_engine.engine.resolution import Resolution
    from rfq_engine.readmodels.decision import build_decision_record, render_decision_record
    from rfq_engine.store import EventFilter
    from rfq_engine.wiring import open_app

    app = await open_app(config, store_url=args.store, recover=False)
    try:
        await recover_open_rfqs(app.engine, resume_pending_approval=False)
        resolution = Resolution(ExecutionId(args.execution_id), args.executed, args.evidence,
                                args.by, quantity, price, args.dealer_trade_id)
        try:
            await app.engine.resolve_execution(args.rfq_id, resolution)
        except RfqError as exc:
            return report(exc, refused=True)
        live = app.engine.live(args.rfq_id)
        if live is not None and live.unsettled:  # another award of it is still unknown
            state = RfqState.UNRESOLVED
        else:
            state = await app.engine.wait(args.rfq_id)
        await app.store.flush()
        record = build_decision_record(await app.store.events(EventFilter(rfq_id=args.rfq_id)))
    finally:
        await app.close()
    print(json.dumps(record, indent=2) if args.json else render_decision_record(record))
    return EXIT_UNRESOLVED if state is RfqState.UNRESOLVED else EXIT_OK
