"""``rfq serve``: engine, dealer adapters, API and web UI in one process (HTTPS with ``[api]
tls_cert``/``tls_key``; SIGHUP reloads ``[[api.users]]``; ``--ha``: active-passive on
PostgreSQL, docs/architecture.md "High availability"); ``rfq api new-token`` and ``rfq api
hash-token``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rfq_engine.store.leader import Candidate

GC_THRESHOLD: Final = (50_000, 20, 100)  # gen0, gen1, gen2 (CPython default 700, 10, 10)

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the engine, dealers, REST API and web UI")
    serve.add_argument("--config", required=True)
    serve.add_argument("--store", help="store URL (overrides the config)")
    serve.add_argument("--host", help="listen address (overrides [api].host)")
    serve.add_argument("--port", type=int, help="listen port (overrides [api].port)")
    serve.add_argument("--ha", action="store_true",
                       help="active-passive on PostgreSQL: wait as a standby (the API answers "
                       "503 not_leader) until this engine holds the writer's lock, then "
                       "recover and trade")
    serve.add_argument("--name", help="with --ha: this engine's name in leader_epochs "
                       "(default host:pid)")
    serve.add_argument("--advertise", metavar="URL", help="with --ha: the address clients "
                       "should use for this engine while it leads (told by the standby)")
    serve.set_defaults(handler=run_serve)
    api = sub.add_parser("api", help="API helpers")
    api_sub = api.add_subparsers(dest="api_command", required=True, metavar="ACTION")
    hashing = api_sub.add_parser("hash-token", help="print the SHA-256 to put in "
                                 "[[api.users]] token_sha256 (reads the token from stdin; "
                                 "refuses one that is easy to guess)")
    hashing.set_defaults(handler=run_hash_token)
    new = api_sub.add_parser("new-token", help="print a strong random token and the SHA-256 "
                             "to put in [[api.users]] token_sha256")
    new.set_defaults(handler=run_new_token)


def run_hash_token(args: argparse.Namespace) -> int:
    from rfq_engine.api.auth import hash_token
    from rfq_engine.api.tokens import token_problem

    token = sys.stdin.readline().strip()
    problem = token_problem(token)
    if problem is not None:
        print(f"rfq: {problem}", file=sys.stderr)
        return 1
    print(hash_token(token))
    return 0


def run_new_token(args: argparse.Namespace) -> int:
    from rfq_engine.api.auth import hash_token
    from rfq_engine.api.tokens import new_token

    token = new_token()
    print(f"token        {token}")
    print(f"token_sha256 {hash_token(token)}")
    print("rfq: give the token to its user (it is shown only now); put token_sha256 in their "
          "[[api.users]] entry", file=sys.stderr)
    return 0


def _warn_at_start(config: Any, log: Any) -> None:
    """Every ``config_warnings`` line in the log (JSON lines off a terminal); with no users,
    also a banner on a terminal."""
    from rfq_engine.config import NO_USERS, config_warnings

    for warning in config_warnings(config):
        log.warning("serve.config_warning", warning=warning)
        if warning == NO_USERS and sys.stderr.isatty():
            bar = "!" * 78
            print(f"{bar}\n  WARNING: no [[api.users]] in the config: nobody can sign in to "
                  "the API or\n  the web UI. `rfq api new-token` makes a token; add it as an "
                  f"[[api.users]] entry\n  (README, \"Making a token\").\n{bar}",
                  file=sys.stderr, flush=True)


def run_serve(args: argparse.Namespace) -> int:
    from rfq_engine.api.security import ssl_context
    from rfq_engine.cli.commands import report
    from rfq_engine.config import ConfigError, load_config
    from rfq_engine.domain import RfqError
    from rfq_engine.logging import configure_logging

    try:
        config = load_config(args.config)
        ssl_context(config.api)  # a certificate that does not load fails before anything opens
    except ConfigError as exc:
        return report(exc)
    candidate = None
    if args.ha:
        from rfq_engine.store.leader import Candidate

        if not (args.store or config.store.resolved_url()).startswith("postgresql"):
            print("rfq: --ha needs a PostgreSQL audit store ([store] url postgresql+asyncpg://"
                  "...)", file=sys.stderr)
            return 2
        if (config.store.checkpoint_path is None) != (config.store.witness_path is None):
            print("rfq: --ha needs both [store] checkpoint_path (this engine's own log, on its "
                  "own disk) and witness_path (one witness both engines append to), or "
                  "neither: the heads the other engine wrote are checked against the witness "
                  "(deploy/ha/README.md)", file=sys.stderr)
            return 2
        candidate = Candidate(args.name, args.advertise)
    elif args.name or args.advertise:
        print("rfq: --name and --advertise go with --ha", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.json_lines)
    try:
        return asyncio.run(serve(config, store_url=args.store, host=args.host, port=args.port,
                                 config_path=args.config, candidate=candidate))
    except RfqError as exc:  # the store cannot be opened (another writer holds it, ...)
        return report(exc)


def _reload_users(path: str, web_app: Any, log: Any) -> None:
    """SIGHUP: take ``[[api.users]]`` from the config file again (token rotation, expiry,
    a new user) without a restart; a file that no longer validates changes nothing."""
    from rfq_engine.api.security import TOKENS_KEY
    from rfq_engine.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("serve.users_not_reloaded", path=path, problem=str(exc))
        return
    web_app[TOKENS_KEY].reload(config.api)
    log.info("serve.users_reloaded", path=path, users=len(config.api.users))
    _warn_at_start(config, log)


async def serve(config: Any, *, store_url: str | None = None, host: str | None = None,
                port: int | None = None, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, config_path: str | None = None,
                candidate: Candidate | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); then stop taking requests, end every
    open RFQ with an audit event saying why, flush the store and exit 0 (1 if the audit
    writer stopped on an unavailable store: runbooks/store-down.md). With
    ``config_path``, SIGHUP reloads the users from it. With a waiting ``candidate``
    (``--ha``): a standby first (``standby_app`` on the same address) until the lead is
    taken, then recovery and trading; exit 1 when deposed (runbooks/failover.md)."""
    import structlog

    from rfq_engine.api.security import ssl_context

    log = structlog.get_logger("rfq_engine.serve")
    tls = ssl_context(config.api)
    _warn_at_start(config, log)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bind = (host or config.api.host, config.api.port if port is None else port)
    try:
        if candidate is None:
            from rfq_engine.wiring import open_app

            app = await open_app(config, store_url=store_url)
        else:
            app = await _wait_for_leadership(config, candidate, store_url, bind, tls, stop, log)
            if app is None:
                return 0
        return await _run(app, config, bind=bind, tls=tls, ready=ready, stop=stop,
                          config_path=config_path, candidate=candidate, log=log)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _wait_for_leadership(config: Any, candidate: Candidate, store_url: str | None,
                               bind: tuple[str, int], tls: Any, stop: asyncio.Event,
                               log: Any) -> Any:
    """Serve the standby's API on ``bind`` while opening the app waits for the lead (the
    store's lock and a new epoch), then recovers; returns the app, or None when ``stop``
    came first."""
    import time

    from aiohttp import web

    from rfq_engine.api.leader import standby_app
    from rfq_engine.store.leader import leading_as
    from rfq_engine.wiring import open_app

    runner = web.AppRunner(standby_app(candidate), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind[0], bind[1], ssl_context=tls).start()
        scheme = "https" if tls is not None else "http"
        addresses = [f"{scheme}://{a[0]}:{a[1]}" for a in runner.addresses]
        log.info("serve.standby", addresses=addresses, name=candidate.name)
        print(f"rfq serve standby on {', '.join(addresses)}", flush=True)
        elected: list[float] = []
        candidate.watch(lambda seen: elected.append(time.monotonic())
                        if seen.role.value == "leader" and not elected else None)
        with leading_as(candidate):  # the task's context: its checkpoint log starts a term
            opening = asyncio.ensure_future(open_app(config, store_url=store_url,
                                                     candidate=candidate))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await opening
            return None
        app = opening.result()
        record = candidate.leader
        log.warning("serve.leader", name=candidate.name, epoch=record.epoch if record else None,
                    recovery_s=round(time.monotonic() - elected[0], 3) if elected else None)
        return app
    finally:
        await runner.cleanup()


async def _run(app: Any, config: Any, *, bind: tuple[str, int], tls: Any,
               ready: asyncio.Event | None, stop: asyncio.Event, config_path: str | None,
               candidate: Candidate | None, log: Any) -> int:
    from aiohttp import web

    from rfq_engine.api.app import RedactingAccessLogger, create_web_app

    # Long-lived process: keep the start-up objects (modules, config, the app) out of every
    # later collection and collect the young generation less often. GC pauses were the
    # worst award latencies (docs/performance.md). Undone on return (tests call serve()).
    old_threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    from rfq_engine.gcwatch import GcWatch, LoopWatch

    gc_watch = GcWatch()  # a long collection is a stall of the whole server: logged
    loop_watch = LoopWatch()  # a loop blocked for 5 s: every thread's stack on stderr
    scheduler = None
    if getattr(config, "programs", None):
        from rfq_engine.hedging.scheduler import HedgeScheduler

        # Hedge programs: catch up once on a missed schedule, then run at each scheduled time.
        scheduler = HedgeScheduler.from_config(app.engine, app.store, config, app.reference,
                                               submit_for_approval=True)
    runner: web.AppRunner | None = None
    loop = asyncio.get_running_loop()
    # The audit writer gave up on an unavailable store: nothing more can be recorded, so
    # stop (exit 1) and let the supervisor restart; recovery resumes (runbooks/store-down.md).
    store_stopped: list[Any] = []
    deposed: list[str] = []

    def on_store_health(health: Any) -> None:
        if health.state.value == "stopped":
            store_stopped.append(health)
            stop.set()

    app.store.watch_health(on_store_health)
    if candidate is not None:
        def on_role(seen: Candidate) -> None:
            if seen.role.value == "deposed":
                log.error("serve.deposed", reason=seen.problem)
                deposed.append(str(seen.problem))
                stop.set()

        candidate.watch(on_role)
    try:
        web_app = create_web_app(app, config.api)  # first: it attaches the risk watch's collateral gate
        if scheduler is not None:
            await scheduler.start()
        if candidate is not None:
            from rfq_engine.api.leader import leader_middleware

            web_app.middlewares.insert(0, leader_middleware(candidate))
        if config_path is not None:
            loop.add_signal_handler(signal.SIGHUP, _reload_users, config_path, web_app, log)
        runner = web.AppRunner(web_app, handle_signals=False,
                               access_log_class=RedactingAccessLogger)
        await runner.setup()
        site = web.TCPSite(runner, bind[0], bind[1], ssl_context=tls)
        await site.start()
        scheme = "https" if tls is not None else "http"
        addresses = [f"{scheme}://{a[0]}:{a[1]}" for a in runner.addresses]
        log.info("serve.listening", addresses=addresses, dealers=len(app.engine.dealers))
        print(f"rfq serve listening on {', '.join(addresses)}", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("serve.stopping")
    finally:
        if scheduler is not None:
            await scheduler.stop()
        if runner is not None:
            await runner.cleanup()
        await app.close()
        gc.set_threshold(*old_threshold)
        gc.unfreeze()
        gc_watch.close()
        loop_watch.close()
    if deposed:
        log.error("serve.exit_deposed", reason=deposed[-1])
        return 1
    if store_stopped:
        log.error("serve.exit_store_stopped", store=store_stopped[-1].to_dict())
        return 1
    return 0
