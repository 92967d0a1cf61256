"""``rfq hedge collateral post`` and ``rfq hedge production record``: operator inputs, audited.

    rfq hedge collateral post --config FILE --dealer D --amount 5 --currency BTC
                              [--amount 63000 --currency USD ...] --by NAME [--note TEXT] [--store URL]
    rfq hedge production record --config FILE --program P --period 2026-11 --quantity 31.2
                                --by NAME [--note TEXT] [--store URL]

Each appends one typed event (``collateral.posted``, ``production.realized``) to the audit
log, actor ``--by``, and prints it with its sequence number (``--json`` as JSON). Nothing is
edited: a correction is a later event, and the latest counts (``rfq_engine.hedging.inputs``).
The amounts are the collateral now posted *in total*, by currency. With ``rfq serve``
running, post through its API instead (``POST /api/v1/hedge/collateral``, docs/api.md): the
server is the store's one writer. Only argparse is imported here.
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
        p.add_argument("--config", required=True)
        p.add_argument("--store", help="store URL (overrides the config)")
        p.add_argument("--by", required=True, help="who posts or records it (the event's actor)")
        p.add_argument("--note", default="", help="a note kept with the event (a wire reference...)")
        p.add_argument("--json", action="store_true")
    post.set_defaults(handler=run_post)
    record.set_defaults(handler=run_record)


def _by(value: str) -> str:
    from rfq_engine.domain.errors import ValidationError

    if not value.strip() or len(value) > 64:
        raise ValidationError("--by", "a name of 1..64 characters")
    return value.strip()


def run_post(args: argparse.Namespace) -> int:
    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        from rfq_engine.domain.errors import ValidationError
        from rfq_engine.hedging.inputs import collateral_event

        config = _load(args.config)
        if len(args.amount) != len(args.currency):
            raise ValidationError("--currency", "give one --currency per --amount")
        amounts: dict[str, str] = {}
        for amount, currency in zip(args.amount, args.currency, strict=True):
            if currency.strip().upper() in amounts:
                raise ValidationError("--currency", f"{currency} named twice")
            amounts[currency.strip().upper()] = amount
        event = collateral_event(args.dealer, amounts, agreements=config.collateral,
                                 venues=config.risk.venues, by=_by(args.by), note=args.note)
        return _append(config, args, event)

    return _guard(go)


def run_record(args: argparse.Namespace) -> int:
    from rfq_engine.cli.cmd_hedge import _guard, _load

    def go() -> int:
        from rfq_engine.hedging.inputs import production_event

        config = _load(args.config)
        event = production_event(args.program, args.period, args.quantity, programs=config.programs,
                                 by=_by(args.by), note=args.note)
        return _append(config, args, event)

    return _guard(go)


def _append(config: Any, args: argparse.Namespace, event: Any) -> int:
    import asyncio

    from rfq_engine.cli.cmd_hedge import EXIT_OK, _print_json
    from rfq_engine.domain.events import encode
    from rfq_engine.domain.values import format_ts

    stored = asyncio.run(_write(config, args.store, event))
    payload = encode(event)
    if args.json:
        _print_json({"seq": stored.seq, "ts": format_ts(stored.ts), "type": event.TYPE, "actor": stored.actor,
                     "payload": payload, "hash": stored.hash})
        return EXIT_OK
    print(f"recorded {event.TYPE} (event {stored.seq}, by {stored.actor}):")
    for key, value in payload.items():
        print(f"  {key}: {value}")
    return EXIT_OK


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
