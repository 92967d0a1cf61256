"""``rfq``: the command line.

Only argparse is imported at start: every command imports what it needs when it runs,
so ``rfq --help`` costs milliseconds and never imports ccxt or the MQTT stack.

Exit codes: 0 success (an RFQ filled), 1 error (every error: ``rfq_engine.error_table``),
2 an RFQ did not trade at all (not filled, rejected, cancelled, expired), 3 an RFQ partially
filled, 4 the audit chain failed verification, 5 an award's outcome is unresolved, 6 the
audit store failed while an award was out (outcome unknown: do not re-send; ``rfq recover``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMAND_MODULES", "main"]

DEMO_STORE = "sqlite+aiosqlite:///rfq-demo.db"

COMMAND_MODULES: tuple[str, ...] = (
    "rfq_engine.cli.cmd_serve",
    "rfq_engine.cli.cmd_hedge",
    "rfq_engine.cli.cmd_mqtt",
    "rfq_engine.cli.cmd_resolve",
)
"""Feature command modules. Each defines ``add_parsers(subparsers)``, which imports only
argparse-level things and registers its parsers with ``set_defaults(handler=fn)``; ``fn(args)
-> int`` imports what it needs when it runs, so ``rfq --help`` stays light."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfq", description="RFQ block-trade execution: multi-dealer RFQs under a mandate, "
        "with a hash-chained audit log.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a sell-future and a collar RFQ against five "
                          "simulated dealers, then verify the audit chain")
    demo.add_argument("--store", default=DEMO_STORE, help=f"store URL (default {DEMO_STORE})")
    demo.add_argument("--fast", action="store_true", help="short windows (for tests)")
    demo.add_argument("--mqtt", action="store_true", help="run the same RFQs over MQTT: a private "
                      "Mosquitto broker and three reference dealer bots as separate processes")

    request = sub.add_parser("request", help="run one RFQ through the configured dealers")
    request.add_argument("--config", required=True, help="TOML config file")
    request.add_argument("--rfq", required=True, help="RFQ JSON file ('-' for stdin)")
    request.add_argument("--json", action="store_true", help="print the decision record as JSON")
    request.add_argument("--store", help="store URL (overrides the config)")

    recover = sub.add_parser("recover", help="resume or close the RFQs a crash left open, "
                             "reconcile unconfirmed awards, then exit")
    recover.add_argument("--config", required=True)
    recover.add_argument("--store", help="store URL (overrides the config)")

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a config file and exit")
    check.add_argument("file")

    audit = sub.add_parser("audit", help="verify, show and export the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    for name, text in (("verify", "recompute the hash chain; exit 4 naming the first bad seq"),
                       ("show", "print the decision record of one RFQ"),
                       ("export", "stream events as CSV or JSON lines"),
                       ("adopt-tail", "vouch for events past the checkpoint log (entries "
                        "lost to a power cut), after checking them; no engine may run")):
        p = audit_sub.add_parser(name, help=text)
        src = p.add_mutually_exclusive_group()
        src.add_argument("--config", help="TOML config file (its [store])")
        src.add_argument("--store", help=f"store URL (default {DEMO_STORE})")
        p.add_argument("--checkpoint", help="chain-head checkpoint file (default: beside a "
                       "SQLite file)")
        if name == "verify":
            p.add_argument("--witness", help="a witness file of published heads (default: "
                           "[store] witness_path of --config)")
        if name == "adopt-tail":
            p.add_argument("--through", type=int, required=True,
                           help="the last seq to adopt (the database's newest)")
            p.add_argument("--by", required=True, help="who vouches (recorded in the log)")
        if name == "show":
            p.add_argument("rfq_id")
            p.add_argument("--json", action="store_true")
        if name == "export":
            p.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
            p.add_argument("--rfq", dest="rfq_id", help="only this RFQ's events")
            p.add_argument("--type", dest="types", action="append", help="event type (repeatable)")
            p.add_argument("--actor")
            p.add_argument("--since", help="UTC ISO time, inclusive")
            p.add_argument("--until", help="UTC ISO time, exclusive")
            p.add_argument("--out", help="file to write (default stdout)")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rfq_engine.cli.commands import dispatch

    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            result: int = handler(args)
            return result
        return dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
