"""The ``rfq`` commands. Each validates its inputs completely before it opens the store,
so a malformed config or RFQ file exits 1 with the field named and writes nothing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rfq_engine.config import AppConfig, ConfigError, config_warnings, load_config
from rfq_engine.domain import RfqError, RfqSpec, RfqState, ValidationError, parse_ts
from rfq_engine.error_table import EXIT_ERROR, outcome_of
from rfq_engine.logging import configure_logging

__all__ = ["check_rfq_against_config", "dispatch", "exit_code", "load_rfq_file", "report"]

DEMO_STORE = "sqlite+aiosqlite:///rfq-demo.db"
EXIT_OK, EXIT_NOT_FILLED, EXIT_PARTIAL, EXIT_TAMPERED = 0, 2, 3, 4
"""Results (README "Exit codes"); an error's code is its row in ``rfq_engine.error_table``."""
EXIT_UNRESOLVED = 5
"""An award's outcome is unknown and could not be reconciled: do NOT re-send the size; a
person resolves it (``rfq resolve``, runbooks/unresolved-execution.md)."""
EXIT_OUTCOME_UNKNOWN = 6
"""The audit store failed while an award was out: the dealer may have executed, and the
store does not say. Do NOT re-send the size; once the store is back, ``rfq recover`` asks
the dealer and records the outcome (runbooks/store-down.md)."""
OUTCOME_UNKNOWN_HINT = (
    "rfq: the audit store failed while an award was out ({error}): the outcome is UNKNOWN, "
    "the dealer may have executed. Do not re-send it. Once the store is back, run `rfq "
    "recover` with the same config: it asks the dealer and records the fill or the reject; "
    "see runbooks/store-down.md.")
UNRESOLVED_HINT = ("rfq: an award's outcome could not be reconciled with the dealer: the RFQ "
                   "is left `unresolved` with its exposure reserved. Do not re-send it. Find "
                   "out from the dealer and record it with `rfq resolve` (or run `rfq serve`, "
                   "which keeps asking); see runbooks/unresolved-execution.md.")


def _fail(message: str) -> int:
    print(f"rfq: {message}", file=sys.stderr)
    return EXIT_ERROR


def report(exc: RfqError, *, refused: bool = False) -> int:
    """Print ``rfq: <message>`` for an error the error table lists and return its exit code
    (``refused``: say "refused" unless it is a fault); re-raise any other (a bug keeps its
    traceback)."""
    outcome = outcome_of(exc)
    if outcome is None:
        raise exc
    return _fail(f"refused: {exc}" if refused and not outcome.fault else str(exc))


def exit_code(state: RfqState) -> int:
    if state is RfqState.FILLED:
        return EXIT_OK
    if state is RfqState.PARTIALLY_FILLED:
        return EXIT_PARTIAL
    if state is RfqState.UNRESOLVED:
        return EXIT_UNRESOLVED
    return EXIT_NOT_FILLED


def load_rfq_file(path: str, default_window_ms: int) -> RfqSpec:
    """Parse and validate an RFQ JSON file; errors name the file and the field."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(path, f"cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(path, f"not valid JSON: {exc}") from None
    try:
        return RfqSpec.from_dict(data, default_window_ms=default_window_ms, strict=True)
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.field}", exc.reason) from None


def check_rfq_against_config(spec: RfqSpec, config: AppConfig, path: str) -> None:
    """What the engine would refuse at submit (unknown mandate or dealer), checked before
    the store is opened, so such a request file writes nothing either."""
    if spec.mandate not in config.mandates:
        known = ", ".join(sorted(config.mandates)) or "none"
        raise ValidationError(f"{path}: mandate",
                              f"unknown mandate {spec.mandate!r}; configured: {known}")
    configured = [d.id for d in config.dealers]
    unknown = [d for d in spec.dealers if d not in configured]
    if unknown:
        raise ValidationError(f"{path}: dealers", f"unknown dealer(s) {', '.join(unknown)}; "
                              f"configured: {', '.join(configured)}")


def dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo":
            from rfq_engine.cli.demo import run_demo

            configure_logging("WARNING")
            if getattr(args, "mqtt", False):
                from rfq_engine.cli.mqtt_demo import run_mqtt_demo

                return asyncio.run(run_mqtt_demo(args.store, fast=args.fast))
            return asyncio.run(run_demo(args.store, fast=args.fast))
        if args.command == "config":
            config = load_config(args.file)
            print(f"{args.file}: ok ({len(config.dealers)} dealers, mandates: "
                  f"{', '.join(config.mandates)})", flush=True)
            for warning in config_warnings(config):  # valid, but will not work as meant
                print(f"{args.file}: warning: {warning}", file=sys.stderr)
            return EXIT_OK
        if args.command == "request":
            config = load_config(args.config)
            spec = load_rfq_file(args.rfq, config.engine.default_window_ms)
            check_rfq_against_config(spec, config, args.rfq)
            configure_logging(config.logging.level, config.logging.json_lines)
            return asyncio.run(_request(config, spec, args.store, as_json=args.json))
        if args.command == "recover":
            config = load_config(args.config)
            configure_logging(config.logging.level, config.logging.json_lines)
            return asyncio.run(_recover(config, args.store))
        if args.command == "audit":
            configure_logging("WARNING")
            return asyncio.run(_audit(args))
    except RfqError as exc:
        return report(exc)
    except BrokenPipeError:
        # The reader went away (`rfq audit export | head`): stop quietly, no traceback, and
        # point stdout at /dev/null so the flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    return _fail(f"unknown command {args.command}")


async def _request(config: AppConfig, spec: RfqSpec, store_url: str | None, *,
                   as_json: bool) -> int:
    from rfq_engine.cli.live import LiveView
    from rfq_engine.engine.oneshot import run_to_end
    from rfq_engine.readmodels.decision import build_decision_record, render_decision_record
    from rfq_engine.store import EventFilter
    from rfq_engine.wiring import open_app

    app = await open_app(config, store_url=store_url)
    view = LiveView(sys.stderr)
    app.engine.add_listener(view)
    try:
        rfq_id = await app.engine.submit(spec)
        run = app.engine.live(rfq_id)
        view.watch(rfq_id)
        end = await run_to_end(app.engine, rfq_id, actor=spec.requester,
                               reason="needs approval; one-shot request cannot wait")
        if end.cancelled_for_approval:
            print("rfq: this RFQ needs a second person's approval, which a one-shot "
                  "`rfq request` cannot wait for; it is cancelled. Run it through "
                  "`rfq serve` where an approver can act.", file=sys.stderr)
        state = end.state
        failed = await _store_failure(app)
        if failed is not None:  # what the store holds of this RFQ is not its outcome
            await view.close()
            return _store_failed(failed, run is not None and bool(
                set(run.book.awards) - run.book.rejected))
        if state is RfqState.UNRESOLVED:
            print(UNRESOLVED_HINT, file=sys.stderr)
        await view.close()
        record = build_decision_record(await app.store.events(EventFilter(rfq_id=rfq_id)))
    finally:
        await view.close()
        await app.close()
    print(json.dumps(record, indent=2) if as_json else render_decision_record(record))
    return exit_code(state)


async def _recover(config: AppConfig, store_url: str | None) -> int:
    from rfq_engine.wiring import open_app

    app = await open_app(config, store_url=store_url, recover=False)
    try:
        from rfq_engine.engine.recovery import recover_open_rfqs

        recovered = await recover_open_rfqs(app.engine, resume_pending_approval=False)
        states = [await app.engine.wait(r, until_unresolved=True) for r in recovered]
        failed = await _store_failure(app)
        if failed is not None:
            return _store_failed(failed, bool(recovered))
        waiting = await app.store.rfqs(states=[RfqState.PENDING_APPROVAL.value])
    finally:
        await app.close()
    for rfq_id, state in zip(recovered, states, strict=True):
        print(f"{rfq_id}  {state.value}")
    print(f"recovered {len(recovered)} RFQ(s); "
          + ("none left open" if not waiting else f"{len(waiting)} left pending approval"))
    for row in waiting:
        print(f"{row.rfq_id}  pending_approval (left for an engine where an approver can act)")
    if RfqState.UNRESOLVED in states:
        print(UNRESOLVED_HINT, file=sys.stderr)
        return EXIT_UNRESOLVED
    return EXIT_OK


async def _store_failure(app: Any) -> str | None:
    """Why the store does not hold everything the engine did (its writer stopped, or an
    event failed), or None."""
    from rfq_engine.store import StoreError

    try:
        await app.store.flush()
    except StoreError as exc:
        return str(exc)
    health = app.store.health
    return None if health.up else f"{health.state.value}: {health.error}"


def _store_failed(error: str, awarded: bool) -> int:
    """An award may have executed: outcome unknown (6). None went out: an error (1)."""
    if awarded:
        print(OUTCOME_UNKNOWN_HINT.format(error=error), file=sys.stderr)
        return EXIT_OUTCOME_UNKNOWN
    return _fail(f"the audit store failed before any award went out ({error}); nothing "
                 "traded; see runbooks/store-down.md")


def _store_for(args: argparse.Namespace, *, readonly: bool) -> Any:
    from rfq_engine.store import open_store

    checkpoint = args.checkpoint
    witness = getattr(args, "witness", None)
    if args.config:
        config = load_config(args.config)
        url = config.store.resolved_url()
        checkpoint = checkpoint or config.store.checkpoint_path
        witness = witness or config.store.witness_path
    else:
        url = args.store or DEMO_STORE
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        raise ConfigError(f"no audit store at {url}")
    kwargs: dict[str, Any] = {"readonly": readonly, "witness": witness}
    if checkpoint:
        kwargs["checkpoint_path"] = checkpoint
    return open_store(url, **kwargs)


async def _audit(args: argparse.Namespace) -> int:
    from rfq_engine.store import EventFilter

    if args.audit_command == "adopt-tail":
        first, last = await _store_for(args, readonly=False).adopt_tail(args.through, args.by)
        print(f"adopted events {first}..{last}: the checkpoint log records that {args.by} "
              "vouched for them; `rfq audit verify` now covers them")
        return EXIT_OK
    store = _store_for(args, readonly=True)
    await store.open()
    try:
        if args.audit_command == "verify":
            report = await store.verify()
            rate = report.events / report.seconds if report.seconds else 0
            if report.ok:
                print(f"audit chain intact: {report.events} events, head seq {report.head_seq} "
                      f"hash {report.head_hash[:16]}…  ({rate:,.0f} events/s)")
                for note in report.notes:
                    print(f"note: {note}")
                return EXIT_OK
            where = "" if report.first_bad_seq is None else f" at seq {report.first_bad_seq}"
            print(f"AUDIT CHAIN BROKEN{where}: {report.problem}", file=sys.stderr)
            return EXIT_TAMPERED
        if args.audit_command == "show":
            from rfq_engine.readmodels.decision import build_decision_record, render_decision_record

            events = await store.events(EventFilter(rfq_id=args.rfq_id))
            if not events:
                return _fail(f"no events for rfq {args.rfq_id}")
            record = build_decision_record(events)
            print(json.dumps(record, indent=2) if args.json else render_decision_record(record))
            return EXIT_OK
        flt = EventFilter(
            rfq_id=args.rfq_id, types=args.types, actor=args.actor,
            since=None if args.since is None else parse_ts(args.since, "--since"),
            until=None if args.until is None else parse_ts(args.until, "--until"))
        with contextlib.ExitStack() as stack:
            out: TextIO = sys.stdout
            if args.out:  # a local file: a blocking open is fine in a one-shot command
                out = stack.enter_context(open(args.out, "w", newline="", encoding="utf-8"))  # noqa: ASYNC230
            count = await _export(store, flt, args.format, out)
        print(f"exported {count} events", file=sys.stderr)
        return EXIT_OK
    finally:
        await store.close()


async def _export(store: Any, flt: Any, fmt: str, out: TextIO) -> int:
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["seq", "ts", "rfq_id", "type", "actor", "payload", "prev_hash", "hash"])
    async for event in store.stream(flt):
        if writer is not None:
            row = event.to_dict()
            writer.writerow([row["seq"], row["ts"], row["rfq_id"] or "", row["type"], row["actor"],
                             event.payload_json, row["prev_hash"], row["hash"]])
        else:
            out.write(json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count
