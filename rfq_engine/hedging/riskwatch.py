"""The risk monitor at work: figures from the store, alerts delivered, the collateral gate.

``RiskWatch`` keeps the positions of every fill (``ledger.TradeLedger``: each pass reads and
nets only the fills recorded since the last), evaluates ``risk.risk_report`` on them and
delivers each change of an alert's state, raised or cleared:

- a durable ``risk.alerted`` audit event (actor ``risk``), which the engine's listeners see
  (``rfq_engine.api.metrics`` counts them);
- the web UI's banner, from ``active`` (the API's ``/api/v1/hedge/risk``);
- an optional webhook (``[risk] webhook_url``): a JSON POST in a task of its own with a
  bounded timeout; a failure is logged, never retried, and never waits the engine.

Alerts already raised are read back from the log on the first evaluation, so a restart does
not raise them again.

**Venue accounts.** With a ``venues`` reader (``rfq_engine.wiring.venue_margin_reader``: the
ccxt dealers of ``[risk.venues]``), each evaluation first reads the venues' margin accounts
(read-only, ``fetch_balance`` and ``fetch_positions``); the report uses their figures where the
venue states them and says so per figure (``risk.risk_report``'s ``venue_accounts``).

**The collateral gate.** Before a program sends its RFQs, the scheduler calls
``collateral_gate``: for each desk the RFQs ask that has a collateral agreement, the margin
it would require were they filled with it, against the collateral posted (the latest
``collateral.posted`` event of the desk, ``rfq_engine.hedging.inputs``; else the config's
``posted``; the evaluation's desk and venue rows use it too). When one is short
(a call of at least the minimum transfer), ``[risk] on_collateral_short`` decides: ``approval``
(the default) makes the program ask a person first, ``halt`` makes it wait (the scheduler
tries again later) with the reason. Either raises a ``collateral_short`` alert. A watch is
attached to an engine (``attach``); an engine with none passes every plan unchanged.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import structlog

from rfq_engine.domain.events import EventType, RiskAlerted
from rfq_engine.domain.margin import VenueAccountMargin
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str, utc_now
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.ledger import TradeLedger
from rfq_engine.hedging.planner import Plan
from rfq_engine.hedging.program import ProgramConfig
from rfq_engine.hedging.records import load_inputs
from rfq_engine.hedging.report import coverage
from rfq_engine.hedging.risk import Alert, RiskConfig, collateral_shortfalls, risk_report
from rfq_engine.pricing.reference import ReferencePriceProvider
from rfq_engine.readmodels.events import typed_events
from rfq_engine.store.base import AuditStore, EventFilter

if TYPE_CHECKING:
    from rfq_engine.engine import RfqEngine

__all__ = ["RiskWatch", "VenueReader", "apply_shortfalls", "collateral_gate", "credit_lines",
           "shortfall_reason"]

log = structlog.get_logger("rfq_engine.risk")
ACTOR = "risk"
CATCH_UP_S = 5.0
"""Between evaluations the kept book nets the new fills this often, so that no evaluation
nets more than a few seconds of them at once: the 10-minute soak's two evaluations, each
netting the 30,000 fills of five minutes, were its two minutes of POST p99 over 150 ms."""
_WATCHES: weakref.WeakKeyDictionary[Any, RiskWatch] = weakref.WeakKeyDictionary()


def credit_lines(mandates: Any) -> dict[str, tuple[Decimal, str]]:
    """Each dealer's smallest credit limit over the mandates (``MandateConfig``s), and whose."""
    out: dict[str, tuple[Decimal, str]] = {}
    for name, mandate in sorted((mandates or {}).items()):
        for dealer, terms in mandate.dealers.items():
            if dealer not in out or terms.credit_limit < out[dealer][0]:
                out[dealer] = (terms.credit_limit, name)
    return out


class VenueReader(Protocol):
    """Reads venues' margin accounts (``dealer_adapters.ccxt.margin.MarginReader``)."""

    async def read(self) -> Mapping[str, VenueAccountMargin]: ...

    async def close(self) -> None: ...


class RiskWatch:
    """``config`` is an ``AppConfig`` (its ``risk``, ``collateral``, ``mandates``, ``programs``
    and ``forecast``); ``venues`` reads the venues' margin accounts (closed by ``stop``)."""

    def __init__(self, engine: RfqEngine, store: AuditStore, config: Any,
                 reference: ReferencePriceProvider, clock: Callable[[], datetime] = utc_now,
                 venues: VenueReader | None = None) -> None:
        self._engine = engine
        self._venues = venues
        self._store = store
        self._config = config
        self._risk: RiskConfig = getattr(config, "risk", None) or RiskConfig()
        self._reference = reference
        self._clock = clock
        self._ledger = TradeLedger(store)
        self.active: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_report: dict[str, Any] | None = None
        self._loaded = False
        self._lock = asyncio.Lock()
        self._posts: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def risk(self) -> RiskConfig:
        return self._risk

    def attach(self) -> RiskWatch:
        """Make this the engine's watch: the scheduler's ``collateral_gate`` consults it."""
        _WATCHES[self._engine] = self
        return self

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Evaluate now, then every ``[risk] interval_s`` until ``stop``, the kept book netting
        new fills every ``CATCH_UP_S`` in between. A first evaluation that fails (the store not
        ready, a standby not leading yet) is logged; the next retries."""
        self._stopping.clear()
        try:
            await self.evaluate()
        except Exception:
            log.exception("risk.evaluate_failed")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="risk-watch")

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        if self._posts:
            await asyncio.gather(*self._posts, return_exceptions=True)
        if self._venues is not None:
            await self._venues.close()

    async def _loop(self) -> None:
        due = time.monotonic() + self._risk.interval_s
        while not self._stopping.is_set():
            try:
                wait = max(0.0, min(CATCH_UP_S, due - time.monotonic()))
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                return
            except TimeoutError:
                pass
            try:
                if time.monotonic() < due:
                    await self.catch_up()
                    continue
                await self.evaluate()
            except Exception:  # the watch must outlive one bad evaluation; the next one retries
                log.exception("risk.evaluate_failed")
            due = time.monotonic() + self._risk.interval_s

    async def catch_up(self) -> int:
        """Net the fills recorded since the last pass (``CATCH_UP_S``); the number netted."""
        async with self._lock:
            return await self._ledger.refresh()

    # ------------------------------------------------------------------ evaluation

    async def _load_active(self) -> None:
        if self._loaded:
            return
        flt = EventFilter(types=[EventType.RISK_ALERTED.value], actor=ACTOR)
        for _, event in typed_events(await self._store.events(flt)):
            if isinstance(event, RiskAlerted):
                key = (event.kind, event.subject)
                if event.state == "raised":
                    self.active[key] = _public(event)
                else:
                    self.active.pop(key, None)
        self._loaded = True

    async def evaluate(self) -> dict[str, Any]:
        """Every figure now; each alert raised or cleared since the last evaluation delivered.
        The venues are read first, outside the lock: the collateral gate never waits for them."""
        accounts = None if self._venues is None else await self._venues.read()
        async with self._lock:
            await self._load_active()
            now = self._clock()
            today = now.astimezone(UTC).date()
            snapshot = await self._reference.snapshot()
            started = time.monotonic()
            netted = await self._ledger.refresh()
            inputs = await load_inputs(self._store)
            config = self._config

            def figures() -> tuple[dict[str, Any], list[Alert]]:
                book = self._ledger.book_for(snapshot, today)
                rows: list[dict[str, Any]] = []
                for name, program in (getattr(config, "programs", None) or {}).items():
                    rows.extend(coverage(name, program, book.program_trades,
                                         getattr(config, "forecast", None), [Period.of(today)], today))
                return risk_report(
                    cfg=self._risk, book=book, snapshot=snapshot, today=today,
                    agreements=getattr(config, "collateral", None) or {},
                    credit_lines=credit_lines(getattr(config, "mandates", None)), coverage=rows,
                    venue_accounts=accounts, now=now, posted=inputs.collateral)

            # The positions are kept between passes (ledger.TradeLedger: the new fills read and
            # netted, in a thread); marking them and the figures run in a thread too. Netting
            # every trade again on the event loop held every RFQ for seconds once the book held
            # tens of thousands of fills (LoopWatch's stacks, the 10-minute soak's 10-58 s
            # stalls). to_thread copies the context, the decimal context with it.
            report, alerts = await asyncio.to_thread(figures)
            log.info("risk.evaluated", new_fills=netted, fills=self._ledger.fills, alerts=len(alerts),
                     seconds=round(time.monotonic() - started, 3))
            seen = {a.key: a for a in alerts}
            for key, alert in seen.items():
                if key not in self.active:
                    await self._deliver(alert, "raised")
            for key in [k for k in self.active if k not in seen and k[0] != "collateral_short"]:
                old = self.active[key]
                await self._deliver(Alert(key[0], key[1], None, None, f"cleared: {old['message']}"),
                                    "cleared")
            report["active"] = list(self.active.values())
            report["as_of_time"] = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
            self.last_report = report
            return report

    async def _deliver(self, alert: Alert, state: str, *, program: str | None = None,
                       period: str | None = None) -> None:
        event = RiskAlerted(kind=alert.kind, subject=alert.subject, state="raised" if state == "raised"
                            else "cleared", message=alert.message, value=alert.value,
                            threshold=alert.threshold, program=program, period=period)
        await self._engine.services.audit(None, event, actor=ACTOR)
        public = _public(event)
        if state == "raised":
            self.active[alert.key] = public
        else:
            self.active.pop(alert.key, None)
        log.warning("risk.alert", **{k: v for k, v in public.items() if v is not None})
        if self._risk.webhook_url:
            task = asyncio.get_running_loop().create_task(self._post(public), name="risk-webhook")
            self._posts.add(task)
            task.add_done_callback(self._posts.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        url = self._risk.webhook_url
        assert url is not None
        timeout = aiohttp.ClientTimeout(total=self._risk.webhook_timeout_ms / 1000)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(url, json={"event": "risk.alerted", **payload}) as response:
                if response.status >= 300:
                    log.error("risk.webhook_failed", url=url, status=response.status, kind=payload["kind"])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.error("risk.webhook_failed", url=url, error=f"{type(exc).__name__}: {exc}",
                      kind=payload["kind"])

    # ------------------------------------------------------------------ the collateral gate

    async def gate(self, name: str, program: ProgramConfig, plan: Plan, snapshot: MarketSnapshot,
                   now: datetime, dry_run: bool) -> tuple[ProgramConfig, Plan]:
        async with self._lock:
            await self._load_active()
            await self._ledger.refresh()
            posted = (await load_inputs(self._store)).collateral
            today = now.astimezone(UTC).date()
            agreements = getattr(self._config, "collateral", None) or {}
            short = await asyncio.to_thread(lambda: collateral_shortfalls(
                agreements, (), [r.spec for r in plan.rfqs], snapshot, today, posted,
                book=self._ledger.book_for(snapshot, today)))
            mine = [k for k in self.active if k[0] == "collateral_short" and k[1].startswith(f"{name}/")]
            if not short:
                if not dry_run:
                    for key in mine:
                        cleared = Alert(key[0], key[1], None, None, "cleared: collateral suffices")
                        await self._deliver(cleared, "cleared", program=name, period=str(plan.period))
                return program, plan
            if not dry_run:
                why = shortfall_reason(short)
                for s in short:
                    alert = Alert("collateral_short", f"{name}/{s['dealer']}", Decimal(s["short_usd"]),
                                  None, f"program {name}, {plan.period}: collateral short before its "
                                  f"RFQs: {why}")
                    await self._deliver(alert, "raised", program=name, period=str(plan.period))
            return apply_shortfalls(program, plan, short, self._risk.on_collateral_short)


def shortfall_reason(short: list[dict[str, Any]]) -> str:
    """The desks short of collateral (``risk.collateral_shortfalls``) in words."""
    return "; ".join(f"{s['dealer']} would require {s['required_usd']} USD against "
                     f"{s['posted_value_usd']} posted ({_source(s)}): {s['short_usd']} USD"
                     + (f" ({s['short_btc']} BTC)" if s["short_btc"] else "") + " short"
                     for s in short)


def _source(short: dict[str, Any]) -> str:
    if short.get("collateral_source") == "posted":
        return f"as posted by {short['posted_by']} at {short['posted_at']}"
    return "the config's figure"


def apply_shortfalls(program: ProgramConfig, plan: Plan, short: list[dict[str, Any]], mode: str
                     ) -> tuple[ProgramConfig, Plan]:
    """The plan once the collateral check found ``short`` desks (none: unchanged): ``halt`` sends
    nothing and waits with the reason; ``approval`` makes the program ask a person first."""
    if not short:
        return program, plan
    why = shortfall_reason(short)
    if mode == "halt":
        return program, replace(plan, rfqs=(), waiting_on=("collateral",), reasons=(
            *plan.reasons, f"halted: collateral short ({why}); post collateral, the program "
            "tries again"))
    return program.model_copy(update={"approval": True}), replace(plan, reasons=(
        *plan.reasons, f"collateral short ({why}): a person approves before anything is sent"))


def _public(event: RiskAlerted) -> dict[str, Any]:
    return {"kind": event.kind, "subject": event.subject, "state": event.state, "message": event.message,
            "value": None if event.value is None else decimal_str(event.value),
            "threshold": None if event.threshold is None else decimal_str(event.threshold),
            "program": event.program, "period": event.period}


async def collateral_gate(engine: Any, name: str, program: ProgramConfig, plan: Plan,
                          snapshot: MarketSnapshot, now: datetime, dry_run: bool
                          ) -> tuple[ProgramConfig, Plan]:
    """The scheduler's hook before it sends a plan's RFQs (see the module docstring)."""
    watch = _WATCHES.get(engine)
    if watch is None or not plan.rfqs:
        return program, plan
    return await watch.gate(name, program, plan, snapshot, now, dry_run)
