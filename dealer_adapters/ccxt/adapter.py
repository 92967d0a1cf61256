"""``CcxtDealers``: exchange accounts as dealers, behind the ``DealerAdapter`` protocol.

One adapter serves every ``kind = "ccxt"`` dealer; each dealer has its own ccxt exchange
instance (created on ``start``, closed by ``close``) and one route:

| ``mode`` | quotes | execution |
| --- | --- | --- |
| ``book`` (``execution.py``) | walked from the order book, fee-inclusive | one limit IOC order |
| ``book``, a package on Deribit (``combos.py``) | walked from the combo's book | one IOC order on the combo |
| ``convert`` (``convert.py``) | the venue's firm conversion quote | accept the quote by id |
| ``okx_rfq`` (``okx_rfq.py``) | the best OKX block-RFQ maker quote | execute that quote |
| ``deribit_block_rfq`` (``deribit_block.py``) | the best Deribit Block RFQ price | accept, fill-or-kill |

The adapter carries messages and never decides what to trade: the engine awards, and the
adapter's checks on an award (quote still valid, our own last look at the venue) can only
refuse. Every message is built as a protocol body and parsed by the shared
``parse_body``, exactly as a remote desk's would be.

Timing: nothing the engine awaits blocks on the venue. ``send_rfq`` starts a quoting task
(first quote at once, refreshed until the RFQ's deadline); ``send_award`` starts the
execution task and returns; answers reach the engine through the sink.

Exactly once: the client order id is derived from the execution id and sent in the
venue's own field (``dialects.py``); the intent is journaled (fsynced) before the order
call; a call whose fate is unknown is looked up by that field, never sent again; a
duplicate award, a restart and ``query_execution`` answer from the journal. Past the
confirm window it is reconciled in the background for ``reconcile_timeout_ms``. An order
the venue never shows stays unresolved ("not found at the venue" proves nothing), never a
reject: logged for a person, looked up again on restart.

``query_execution`` answers (``dealer_adapters.protocol.ExecutionState``):
- CONFIRMED / REJECTED: the journal's outcome, or what one look-up at the venue found;
- NOT_FOUND: only when the journal proves the order was never placed: no intent was ever
  journaled for the id and no award for it is in flight. The answer fences the id (a fence
  line is journaled first), so a later award with it is refused and never placed;
- UNKNOWN: everything else: an award in flight, an intent whose order the venue does not
  show, a venue that cannot be reached, a journaled fill whose confirm does not validate, a
  dealer this adapter does not serve.

Failures: a venue unreachable at start leaves its dealer offline, retried every
``reconnect_interval_ms``. An ``AuthenticationError`` marks the dealer offline until a
restart (``ccxt_dealer_auth_failed``); after the order call left, it also leaves the
award unknown, never rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.dialects import derive_key, dialect_for
from dealer_adapters.ccxt.exchange import ExchangeSetupError, create_exchange
from dealer_adapters.ccxt.journal import Journal, JournalEntry
from dealer_adapters.ccxt.markets import venue_markets
from dealer_adapters.ccxt.route import (
    AuthLostAfterSend,
    DeclinePlan,
    ErrorKind,
    Outcome,
    QuotePlan,
    Route,
    SentQuote,
    classify,
    client_id,
    describe_error,
)
from dealer_adapters.ccxt.routes import ROUTES
from dealer_adapters.ccxt.wire import (
    INSTRUMENTS,
    award_ref,
    intent_record,
    lookup_policy_for,
    outcome_message,
    outcome_record,
    plan_quote_body,
)
from dealer_adapters.common import (
    NOT_SERVED,
    cancel_all,
    check_startable,
    not_served,
    parse_inbound,
    reachable,
    status_body,
    track,
)
from dealer_adapters.protocol import ExecutionLookup, ExecutionState, InboundSink, LookupPolicy
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionConfirm,
    ExecutionId,
    InboundRejected,
    QuoteId,
    RfqClosed,
    RfqId,
    RfqNew,
    decimal_str,
    new_id,
    utc_now,
)

__all__ = ["CcxtDealers", "lookup_policy_for"]

_log = structlog.get_logger(__name__)

_ROUTES: dict[str, Callable[..., Route]] = ROUTES
_CLOSE_GRACE_S = 10.0
"""On close, executions in flight get this long to finish their order call before being cancelled."""


@dataclass(slots=True)
class _Dealer:
    dealer_id: DealerId
    config: CcxtDealerConfig
    journal: Journal
    """Its executions (shared with the dealers of the same journal file)."""
    policy: LookupPolicy
    exchange: Any = None
    route: Route | None = None
    online: bool = False
    down_reason: str = "not started"
    auth_failed: bool = False
    rfqs: dict[RfqId, RfqNew] = field(default_factory=dict)
    loops: dict[RfqId, asyncio.Task[None]] = field(default_factory=dict)
    quotes: dict[QuoteId, SentQuote] = field(default_factory=dict)
    executions: dict[ExecutionId, asyncio.Task[None]] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def entry(self, execution_id: ExecutionId) -> JournalEntry | None:
        return self.journal.get(self.dealer_id, execution_id)


class CcxtDealers:
    """Exchange-backed dealers. ``exchange_factory`` builds each dealer's ccxt exchange
    (default: ``create_exchange``, credentials from the environment)."""

    def __init__(
        self,
        dealers: Mapping[DealerId, CcxtDealerConfig],
        *,
        exchange_factory: Callable[[CcxtDealerConfig], Any] | None = None,
    ) -> None:
        if not dealers:
            raise ValueError("CcxtDealers needs at least one dealer")
        self._factory = exchange_factory or create_exchange
        self._sink: InboundSink | None = None
        self._closed = False
        journals: dict[Path, Journal] = {}
        self._dealers: dict[DealerId, _Dealer] = {}
        for dealer_id, config in dealers.items():
            path = config.journal_path.resolve()
            if path not in journals:
                journals[path] = Journal(path)
                journals[path].restore()
            self._dealers[DealerId(dealer_id)] = _Dealer(DealerId(dealer_id), config, journals[path],
                                                         lookup_policy_for(config))

    # --- DealerAdapter -----------------------------------------------------------------------

    @property
    def dealer_ids(self) -> tuple[DealerId, ...]:
        return tuple(self._dealers)

    async def start(self, sink: InboundSink) -> None:
        """Create each dealer's exchange and load its markets; a venue that fails stays offline."""
        check_startable("CcxtDealers", self._closed)
        self._sink = sink
        await asyncio.gather(*(self._connect(d) for d in self._dealers.values()))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for dealer in self._dealers.values():
            for task in [*dealer.loops.values(), *dealer.background]:
                task.cancel()
        running = [t for d in self._dealers.values() for t in d.executions.values() if not t.done()]
        if running:  # an order call in flight must finish and be journaled, not be cut off
            _done, pending = await asyncio.wait(running, timeout=_CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
        await cancel_all(t for d in self._dealers.values() for t in (*d.loops.values(), *d.background,
                                                                     *d.executions.values()))
        await asyncio.gather(*(self._close_exchange(d) for d in self._dealers.values()))

    def is_online(self, dealer_id: DealerId) -> bool:
        dealer = self._dealers.get(dealer_id)
        return dealer is not None and dealer.online and not self._closed and self._sink is not None

    async def send_rfq(self, dealer_id: DealerId, message: RfqNew) -> None:
        dealer = self._reachable(dealer_id)
        dealer.rfqs[message.rfq_id] = message
        previous = dealer.loops.pop(message.rfq_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._quote_loop(dealer, message), name=f"ccxt-quote-{dealer_id}")
        dealer.loops[message.rfq_id] = task

        def forget(done: asyncio.Task[None], rfq_id: RfqId = message.rfq_id) -> None:
            if dealer.loops.get(rfq_id) is done:
                del dealer.loops[rfq_id]

        task.add_done_callback(forget)

    async def send_award(self, dealer_id: DealerId, award: Award) -> None:
        dealer = self._reachable(dealer_id)
        running = dealer.executions.get(award.execution_id)
        if running is not None and not running.done():
            _log.info("ccxt_duplicate_award_in_flight", dealer_id=dealer_id, execution_id=award.execution_id)
            return
        task = asyncio.create_task(self._execute(dealer, award), name=f"ccxt-exec-{dealer_id}")
        dealer.executions[award.execution_id] = task

    async def send_closed(self, dealer_id: DealerId, message: RfqClosed) -> None:
        dealer = self._reachable(dealer_id)
        loop = dealer.loops.pop(message.rfq_id, None)
        if loop is not None:
            loop.cancel()
        dealer.rfqs.pop(message.rfq_id, None)
        for quote_id in [q.quote_id for q in dealer.quotes.values() if q.rfq_id == message.rfq_id]:
            del dealer.quotes[quote_id]
        if dealer.route is not None:  # e.g. cancel the venue's block RFQ; never blocks the engine
            self._spawn(dealer, self._route_closed(dealer, dealer.route, message.rfq_id))

    def lookup_policy(self, dealer_id: DealerId) -> LookupPolicy:
        dealer = self._dealers.get(dealer_id)
        return NOT_SERVED if dealer is None else dealer.policy

    async def query_execution(self, dealer_id: DealerId, execution_id: ExecutionId) -> ExecutionLookup:
        """What became of ``execution_id`` (the states are in the module docstring)."""
        dealer = self._dealers.get(dealer_id)
        if dealer is None:
            return not_served()
        running = dealer.executions.get(execution_id)
        if running is not None and not running.done():
            return ExecutionLookup(ExecutionState.UNKNOWN, reason="the award is being executed now")
        entry = dealer.entry(execution_id)
        if entry is None or (entry.intent is None and entry.outcome is None):
            return await self._not_found(dealer, execution_id)
        if entry.outcome is None and entry.intent is not None:
            if dealer.route is None or not dealer.online:
                return ExecutionLookup(ExecutionState.UNKNOWN, reason=(
                    "an order was placed (intent journaled) and the venue cannot be asked now: "
                    f"dealer offline ({dealer.down_reason or 'not connected'})"))
            try:
                found = await dealer.route.lookup(entry.intent)
            except Exception as exc:
                self._on_error(dealer, exc)
                found = None
            if found is not None:
                await self._finish(dealer, entry.intent["award"], found, deliver=False)
        if entry.outcome is None:
            assert entry.intent is not None
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=(
                f"an order was placed (intent journaled, client order id "
                f"{entry.intent.get('client_order_id')}) and the venue does not show it (yet): "
                "not proof that it never traded"))
        outcome = Outcome.from_record(entry.outcome)
        if outcome.confirmed:
            confirm = parse_inbound(dealer.dealer_id, *outcome_message(entry.outcome["award"], outcome))
            if isinstance(confirm, ExecutionConfirm):
                return ExecutionLookup(ExecutionState.CONFIRMED, confirm=confirm)
            # a fill is journaled but its confirm does not validate: never answer "rejected"
            detail = confirm.reason if isinstance(confirm, InboundRejected) else "unreadable"
            return ExecutionLookup(ExecutionState.UNKNOWN, reason=(
                f"the journal records a fill ({outcome.dealer_trade_id}) whose confirm does not "
                f"validate: {detail}"))
        return ExecutionLookup(ExecutionState.REJECTED, reason=outcome.reason)

    async def _not_found(self, dealer: _Dealer, execution_id: ExecutionId) -> ExecutionLookup:
        """NOT_FOUND, once the id is fenced durably: no award with it will ever be placed."""
        entry = dealer.entry(execution_id)
        if entry is None or not entry.fenced:
            # fenced at once (an award arriving during the write is refused), then journaled
            if not await dealer.journal.fence(dealer.dealer_id, execution_id,
                                              "answered not found to query_execution"):
                return ExecutionLookup(ExecutionState.UNKNOWN, reason=(
                    "no order was placed, but the fence could not be journaled: not answering not found"))
            _log.info("ccxt_execution_fenced", dealer_id=dealer.dealer_id, execution_id=execution_id)
        return ExecutionLookup(ExecutionState.NOT_FOUND, reason=(
            "no order intent in the journal: no order was ever placed for this execution id, "
            "and the id is now fenced (an award with it is refused)"))

    # --- testing and operations hooks ---------------------------------------------------------

    def exchange(self, dealer_id: DealerId) -> Any:
        """The dealer's ccxt exchange instance (None before ``start``)."""
        return self._dealers[dealer_id].exchange

    def journal_entry(self, dealer_id: DealerId, execution_id: ExecutionId) -> JournalEntry | None:
        return self._dealers[dealer_id].entry(execution_id)

    async def idle(self) -> None:
        """Wait until no quoting, execution or background task is running (tests, shutdown)."""
        while True:
            tasks = [t for d in self._dealers.values()
                     for t in (*d.loops.values(), *d.executions.values(), *d.background) if not t.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- connection ------------------------------------------------------------------------------

    async def _connect(self, dealer: _Dealer) -> None:
        config = dealer.config
        try:
            if dealer.exchange is None:
                dealer.exchange = self._factory(config)
            await dealer.exchange.load_markets(True)
            markets = venue_markets(dealer.exchange.markets, int(dealer.exchange.precisionMode))
            dealer.route = _ROUTES[config.mode](dealer.exchange, config, markets)
        except ExchangeSetupError as exc:
            self._set_online(dealer, False, f"setup: {exc}")
            _log.error("ccxt_dealer_setup_failed", dealer_id=dealer.dealer_id, error=str(exc))
            return
        except Exception as exc:
            if classify(exc) is ErrorKind.AUTH:
                self._mark_down(dealer, exc)
                return
            self._set_online(dealer, False, f"markets not loaded: {describe_error(exc, 200)}")
            _log.warning("ccxt_dealer_connect_failed", dealer_id=dealer.dealer_id, error=describe_error(exc))
            self._spawn(dealer, self._reconnect_later(dealer))
            return
        _log.info("ccxt_dealer_online", dealer_id=dealer.dealer_id, exchange=config.exchange,
                  mode=config.mode, markets=len(markets))
        self._set_online(dealer, True, "")
        for entry in dealer.journal.executions(dealer.dealer_id):
            if entry.unresolved and entry.intent is not None:
                _log.warning("ccxt_unresolved_execution_on_start", dealer_id=dealer.dealer_id,
                             execution_id=entry.execution_id,
                             client_order_id=entry.intent.get("client_order_id"))
                self._spawn(dealer, self._reconcile_later(dealer, entry.intent))

    async def _reconnect_later(self, dealer: _Dealer) -> None:
        await asyncio.sleep(dealer.config.reconnect_interval_ms / 1000)
        if not self._closed and not dealer.online and not dealer.auth_failed:
            await self._connect(dealer)

    async def _close_exchange(self, dealer: _Dealer) -> None:
        exchange, dealer.exchange = dealer.exchange, None
        dealer.online = False
        if exchange is not None:
            try:
                await exchange.close()
            except Exception:  # closing must not fail the engine's shutdown
                _log.warning("ccxt_exchange_close_failed", dealer_id=dealer.dealer_id, exc_info=True)

    def _set_online(self, dealer: _Dealer, online: bool, reason: str) -> None:
        changed = dealer.online != online
        dealer.online, dealer.down_reason = online, reason
        if changed or not online:
            self._announce(dealer)

    def _mark_down(self, dealer: _Dealer, exc: BaseException) -> None:
        dealer.auth_failed = True
        _log.error("ccxt_dealer_auth_failed", dealer_id=dealer.dealer_id, exchange=dealer.config.exchange,
                   error=describe_error(exc), alert=True)
        self._set_online(dealer, False, f"authentication failed: {describe_error(exc, 200)}")

    def _on_error(self, dealer: _Dealer, exc: BaseException) -> None:
        if classify(exc) is ErrorKind.AUTH or isinstance(exc, AuthLostAfterSend):
            self._mark_down(dealer, exc)
        else:
            _log.warning("ccxt_venue_error", dealer_id=dealer.dealer_id, error=describe_error(exc))

    # --- quoting ---------------------------------------------------------------------------------

    async def _quote_loop(self, dealer: _Dealer, rfq: RfqNew) -> None:
        """Quote at once, then refresh every poll interval until the RFQ's deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (rfq.deadline - utc_now()).total_seconds()
        sent_key: str | None = None
        first = True
        route = dealer.route
        if route is None:
            return
        while not self._closed and dealer.online:
            try:
                plan = await route.price(rfq)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_error(dealer, exc)
                if first:
                    reason = f"{dealer.config.exchange} unreachable: {describe_error(exc, 200)}"
                    self._decline(dealer, rfq, reason)
                    return
                plan = None
            first = False
            if isinstance(plan, DeclinePlan):
                self._decline(dealer, rfq, plan.reason)
                return
            if isinstance(plan, QuotePlan) and (not plan.key or plan.key != sent_key):
                self._send_quote(dealer, rfq, plan)
                sent_key = plan.key or None
            left = deadline - loop.time()
            if left <= route.poll_interval_s:
                if sent_key is None and not any(q.rfq_id == rfq.rfq_id for q in dealer.quotes.values()):
                    self._decline(dealer, rfq, f"{dealer.config.exchange}: no quote before the deadline")
                return
            await asyncio.sleep(route.poll_interval_s)

    def _send_quote(self, dealer: _Dealer, rfq: RfqNew, plan: QuotePlan) -> None:
        quote_id = QuoteId(new_id())
        dealer.quotes[quote_id] = SentQuote(rfq.rfq_id, quote_id, plan)
        self._deliver(dealer, "quote", plan_quote_body(rfq.rfq_id, quote_id, plan))

    def _decline(self, dealer: _Dealer, rfq: RfqNew, reason: str) -> None:
        self._deliver(dealer, "quote.decline", {"rfq_id": rfq.rfq_id, "reason": reason[:500]})

    # --- execution -------------------------------------------------------------------------------

    async def _execute(self, dealer: _Dealer, award: Award) -> None:
        ref, eid = award_ref(award), award.execution_id
        entry = dealer.entry(eid)
        if entry is not None and entry.outcome is not None:
            _log.info("ccxt_duplicate_award", dealer_id=dealer.dealer_id, execution_id=eid)
            self._deliver_outcome(dealer, entry.outcome["award"], Outcome.from_record(entry.outcome))
            return
        if entry is not None and entry.intent is None and entry.fenced:
            _log.warning("ccxt_fenced_award_refused", dealer_id=dealer.dealer_id, execution_id=eid)
            self._deliver_outcome(dealer, ref, Outcome.reject(
                award.price, "this execution id was answered 'not found' (fenced): never placed"))
            return
        loop = asyncio.get_running_loop()
        window_end = loop.time() + (award.confirm_by - utc_now()).total_seconds()
        route = dealer.route
        phase = "prepare"  # prepare -> place -> reconcile: how far the order got
        try:
            if entry is not None and entry.intent is not None:  # an earlier attempt's intent: reconcile only
                intent = entry.intent
                phase = "reconcile"
            else:
                dealer.journal.begin(dealer.dealer_id, eid)
                try:
                    prepared = await self._prepare(dealer, route, award, ref)
                finally:
                    dealer.journal.abandon(dealer.dealer_id, eid)  # refused, or the checks failed
                if isinstance(prepared, Outcome):
                    await self._finish(dealer, ref, prepared)
                    return
                intent = prepared
                assert route is not None
                dealer.journal.mark_sent(dealer.dealer_id, eid)
                phase = "place"
                outcome = await route.place(intent)
                if outcome is not None:
                    await self._finish(dealer, ref, outcome)
                    return
                dealer.journal.mark_unknown(dealer.dealer_id, eid, "the order call's fate is unknown")
            phase = "reconcile"
            outcome = await self._reconcile(dealer, intent, until=window_end)
        except Exception as exc:
            after_send = isinstance(exc, AuthLostAfterSend) or phase == "reconcile"
            if classify(exc) is ErrorKind.AUTH and not after_send:  # refused: nothing placed
                self._mark_down(dealer, exc)
                await self._finish(dealer, ref, Outcome.reject(
                    award.price, f"authentication failed: {describe_error(exc, 200)}"))
                return
            if isinstance(exc, AuthLostAfterSend) or classify(exc) is ErrorKind.AUTH:
                self._mark_down(dealer, exc)  # the order may be at the venue: unknown, never a no
                dealer.journal.mark_unknown(dealer.dealer_id, eid, f"credentials lost after send: {exc}")
                _log.error("ccxt_execution_needs_manual_reconciliation", dealer_id=dealer.dealer_id,
                           execution_id=eid, detail="credentials refused after the order was sent")
                return
            raise
        if outcome is not None:
            await self._finish(dealer, ref, outcome)
            return
        _log.error("ccxt_execution_unresolved", dealer_id=dealer.dealer_id, execution_id=award.execution_id,
                   client_order_id=intent.get("client_order_id"),
                   detail="no answer from the venue within the confirm window; still reconciling")
        self._spawn(dealer, self._reconcile_later(dealer, intent))

    async def _prepare(self, dealer: _Dealer, route: Route | None, award: Award,
                       ref: dict[str, Any]) -> dict[str, Any] | Outcome:
        """The venue-side checks, then the intent, durable: an ``Outcome`` when refused."""
        if route is None or not dealer.online:
            return Outcome.reject(award.price, f"dealer offline: {dealer.down_reason or 'not connected'}")
        sent = dealer.quotes.get(award.quote_id)
        rfq = dealer.rfqs.get(award.rfq_id)
        if sent is None or rfq is None or sent.rfq_id != award.rfq_id:
            return Outcome.reject(award.price, f"no live quote {award.quote_id} for rfq {award.rfq_id}")
        left = award.confirm_by - utc_now()
        if left < timedelta(milliseconds=dealer.config.confirm_margin_ms):
            return Outcome.reject(award.price, "too little time left before confirm_by to execute safely")
        dialect = dialect_for(dealer.config.exchange)
        if dialect is not None:
            cid = derive_key(dialect, award.execution_id, dealer.config.client_order_prefix,
                             dealer.config.client_order_id_max_len)
        else:  # a convert dealer on a venue with no dialect: the id never travels in an order field
            cid = client_id(award.execution_id, dealer.config.client_order_prefix,
                            dealer.config.order_id_max_len)
        prepared = await route.prepare(award, sent, rfq, cid)
        if isinstance(prepared, str):
            return Outcome.reject(award.price, prepared)
        intent = intent_record(dealer.dealer_id, ref, prepared)
        try:
            await dealer.journal.record_intent(dealer.dealer_id, award.execution_id, intent)
        except (OSError, ValueError) as exc:
            return Outcome.reject(award.price, f"could not journal the order intent, nothing sent: {exc}")
        _log.info("ccxt_order_intent", dealer_id=dealer.dealer_id, execution_id=award.execution_id,
                  client_order_id=cid, route=intent.get("route"))
        return intent

    async def _reconcile(self, dealer: _Dealer, intent: dict[str, Any], *, until: float) -> Outcome | None:
        """Look the order up until found or until the loop clock passes ``until``."""
        route = dealer.route
        if route is None or not route.can_lookup:
            return None
        loop = asyncio.get_running_loop()
        while not self._closed:
            found = await route.lookup(intent)
            if found is not None:
                return found
            if loop.time() + dealer.config.reconcile_interval_ms / 1000 >= until:
                return None
            await asyncio.sleep(dealer.config.reconcile_interval_ms / 1000)
        return None

    async def _reconcile_later(self, dealer: _Dealer, intent: dict[str, Any]) -> None:
        """After the confirm window: keep looking, then record what was found (or that nothing was)."""
        loop = asyncio.get_running_loop()
        route = dealer.route
        try:
            outcome = await self._reconcile(dealer, intent, until=loop.time()
                                            + dealer.config.reconcile_timeout_ms / 1000)
        except Exception as exc:
            self._on_error(dealer, exc)
            return
        if outcome is None:  # not found proves nothing: UNKNOWN, looked up on every restart
            why = ("adapter closed" if self._closed else "no look-up at this venue"
                   if route is None or not route.can_lookup else "not found at the venue within "
                   f"reconcile_timeout_ms={dealer.config.reconcile_timeout_ms}; never a reject")
            _log.error("ccxt_execution_needs_manual_reconciliation", dealer_id=dealer.dealer_id,
                       execution_id=intent["execution_id"], client_order_id=intent.get("client_order_id"),
                       field=intent.get("client_order_field"), detail=why, alert=True)
            return
        if outcome.confirmed:
            _log.error("ccxt_execution_resolved_late", dealer_id=dealer.dealer_id,
                       execution_id=intent["execution_id"], dealer_trade_id=outcome.dealer_trade_id,
                       alert=True)
        await self._finish(dealer, intent["award"], outcome)

    async def _finish(self, dealer: _Dealer, ref: Mapping[str, Any], outcome: Outcome,
                      *, deliver: bool = True) -> None:
        """Journal the outcome (fsynced, deduplicated), then tell the engine the answer that stands."""
        execution_id = ExecutionId(ref["execution_id"])
        record = await dealer.journal.record_outcome(dealer.dealer_id, execution_id,
                                                     outcome_record(dealer.dealer_id, ref, outcome))
        ref, outcome = record["award"], Outcome.from_record(record)
        _log.info("ccxt_execution_outcome", dealer_id=dealer.dealer_id, execution_id=execution_id,
                  confirmed=outcome.confirmed, quantity=decimal_str(outcome.quantity),
                  reason=outcome.reason, dealer_trade_id=outcome.dealer_trade_id)
        if deliver:
            self._deliver_outcome(dealer, ref, outcome)

    def _deliver_outcome(self, dealer: _Dealer, ref: Mapping[str, Any], outcome: Outcome) -> None:
        self._deliver(dealer, *outcome_message(ref, outcome))

    async def _route_closed(self, dealer: _Dealer, route: Route, rfq_id: RfqId) -> None:
        try:
            await route.closed(rfq_id)
        except Exception as exc:
            self._on_error(dealer, exc)

    # --- plumbing --------------------------------------------------------------------------------

    def _spawn(self, dealer: _Dealer, coro: Any) -> None:
        track(asyncio.create_task(coro), dealer.background, dealer_id=dealer.dealer_id)

    def _reachable(self, dealer_id: DealerId) -> _Dealer:
        return reachable(self._dealers, dealer_id, closed=self._closed, started=self._sink is not None,
                         offline=lambda d: "" if d.online else f"dealer offline: {d.down_reason}")

    def _announce(self, dealer: _Dealer) -> None:
        self._deliver(dealer, "status", status_body(dealer.online, INSTRUMENTS[dealer.config.mode]))

    def _deliver(self, dealer: _Dealer, msg_type: str, body: dict[str, Any]) -> None:
        """``body`` to the engine, parsed as the wire would (off-protocol: ``InboundRejected``)."""
        if self._sink is not None and not self._closed:
            self._sink(parse_inbound(dealer.dealer_id, msg_type, body))

    async def __aenter__(self) -> CcxtDealers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.close()
