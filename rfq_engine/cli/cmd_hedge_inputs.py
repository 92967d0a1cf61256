"""``rfq hedge collateral post`` and ``rfq hedge production record``: operator inputs, audited.

    rfq hedge collateral post (--config FILE --by NAME [--store URL] | --api URL) --dealer D
                              --amount 5 --currency BTC [--amount 63000 --currency USD ...] [--note TEXT]
    rfq hedge production record (--config FILE --by NAME [--store URL] | --api URL) --program P
                                --period 2026-11 --quantity 31.2 [--note TEXT]

Each appends one typed event (``collateral.posted``, ``production.realized``) to the audit
log and prints it with its sequence number (``--json`` as JSON). Nothing is edited: a
correction is a later event, and the latest counts (``rfq_engine.hedging.inputs``). The
amounts are the collateral now posted *in total*, by currency.

- ``--config FILE --by NAME``: the command opens the store and appends (actor ``--by``); the
  store's single-writer lock refuses this while ``rfq serve`` runs on it.
- ``--api URL`` (the token in ``RFQ_API_TOKEN``): the running ``rfq serve`` appends it
  (``POST /api/v1/hedge/collateral`` or ``/production``; actor: the token's user).

Only argparse is imported here.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(actions: Any) -> None:
    collateral = actions.add_parser("collateral",
                                    help="collateral posted with a desk or at a venue (audited)")
    what = collateral.add_subparsers(dest="collateral_action", required=True)
    post = what.add_parser("post", help="record the collateral now posted in total with a dealer")
    post.add_argument("--dealer", required=True, help="a [collateral.<dealer>] or [risk.venues.<dealer>]")
    post.add_argument("--amount", action="append", required=True, help="an amount (repeatable, one per "
                      "--currency, in the same order)")
    post.add_argument("--currency", action="append", required=True, help="its currency: USD, BTC...")
    production = actions.add_parser("production", help="production realized in a program's period (audited)")
    what = production.add_subparsers(dest="production_action", required=True)
    record = what.add_parser("record", help="record a program's realized production in a month")
    record.add_argument("--program", required=True)
    record.add_argument("--period", required=True, help="the month, YYYY-MM")
    record.add_argument("--quantity", required=True, help="in the forecast's unit (BTC; PH/s for an NDF)")
    for p in (post, record):
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--config", help="TOML config: append to its store")
        where.add_argument("--api", help="base URL of a running `rfq serve` (token: RFQ_API_TOKEN)")
        p.add_argument("--store", help="store URL (overrides the config; with --config)")
        p.add_argument("--by", help="who posts or records it, the event's actor (with --config)")
        p.add_argument("--note", default="", help="a note kept with the event (a wire reference...)")
        p.add_argument("--json", action="store_true")
    post.set_defaults(handler=run_post)
    record.set_defaults(handler=run_record)


def _by(value: str | None) -> str:
    from rfq_engine.domain.errors import ValidationError

    if value is None or not value.strip() or len(value) > 64:
        raise ValidationError("--by", "a name of 1..64 characters")
    return value.strip()


def run_post(args: argparse.Namespace) -> int:
    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.inputs import collateral_event

        if len(args.amount) != len(args.currency):
            raise ValidationError("--currency", "give one --currency per --amount")
        amounts: dict[str, str] = {}
        for amount, currency in zip(args.amount, args.currency, strict=True):
            if currency.strip().upper() in amounts:
                raise ValidationError("--currency", f"{currency} named twice")
            amounts[currency.strip().upper()] = amount
        if args.api:
            body = {"dealer": args.dealer, "amounts": amounts, "note": args.note}
            return _via_api(args, "collateral", body)
        config = _load(args.config)
        event = collateral_event(args.dealer, amounts, agreements=config.collateral,
                                 venues=config.risk.venues, by=_by(args.by), note=args.note)
        return _append(config, args, event)

    return _guard(go)


def run_record(args: argparse.Namespace) -> int:
    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        from rfq_engine.hedging.inputs import production_event

        if args.api:
            return _via_api(args, "production", {"program": args.program, "period": args.period,
                                                 "quantity": args.quantity, "note": args.note})
        config = _load(args.config)
        event = production_event(args.program, args.period, args.quantity, programs=config.programs,
                                 by=_by(args.by), note=args.note)
        return _append(config, args, event)

    return _guard(go)


def _append(config: Any, args: argparse.Namespace, event: Any) -> int:
    import asyncio

    stored = asyncio.run(_write(config, args.store, event))
    return _show(args, stored.to_dict())


def _show(args: argparse.Namespace, event: dict[str, Any]) -> int:
    from rfq_engine.cli.cmd_hedge import EXIT_OK, _print_json

    if args.json:
        _print_json(event)
        return EXIT_OK
    print(f"recorded {event['type']} (event {event['seq']}, by {event['actor']}):")
    for key, value in event["payload"].items():
        print(f"  {key}: {value}")
    return EXIT_OK


def _via_api(args: argparse.Namespace, what: str, body: dict[str, Any]) -> int:
    """POST the input to a running ``rfq serve``; its error (a 422 naming the field) is said."""
    import asyncio
    import json
    import os
    import sys

    import aiohttp

    from rfq_engine.cli.cmd_hedge import _fail

    token = os.environ.get("RFQ_API_TOKEN", "")
    if not token:
        return _fail("set RFQ_API_TOKEN to an API token allowed to write hedge inputs (hedge:write)")

    async def post() -> tuple[int, str]:
        url = f"{args.api.rstrip('/')}/api/v1/hedge/{what}"
        async with aiohttp.ClientSession() as session, session.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status, await response.text()

    try:
        status, text = asyncio.run(post())
    except (aiohttp.ClientError, OSError) as exc:
        return _fail(f"{args.api}: {type(exc).__name__}: {exc}")
    if status not in (200, 201):
        print(f"rfq: {status}: {text}", file=sys.stderr)
        return 1
    return _show(args, json.loads(text))


async def _write(config: Any, url: str | None, event: Any) -> Any:
    from rfq_engine.domain.events import encode
    from rfq_engine.wiring import open_configured_store

    store = open_configured_store(config, url=url)
    await store.open()
    try:
        actor = event.posted_by if event.TYPE == "collateral.posted" else event.recorded_by
        stored = await store.append(None, event.TYPE, actor, encode(event))
        await store.flush()
        return stored
    finally:
        await store.close()
