"""The RFQ engine: accepts RFQs, runs each as its own task, routes dealer messages to them.

Many RFQs run at once and independently: each is a task, every wait is bounded by its
own deadline, and the dispatcher never awaits, so a slow or dead dealer cannot delay
another RFQ. Inbound messages are deduplicated by ``(dealer_id, msg_id)`` (QoS 1
redelivers), and anything that cannot be acted on is audited as a rejection.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any

import structlog

from dealer_adapters.protocol import DealerAdapter
from rfq_engine import failpoints
from rfq_engine.domain import (
    DealerId,
    DealerStatus,
    Decline,
    ExecutionConfirm,
    ExecutionReject,
    Inbound,
    InboundRejected,
    Quote,
    RfqId,
    RfqSpec,
    RfqState,
    format_ts,
    new_id,
)
from rfq_engine.domain.events import (
    ApprovalGranted,
    ApprovalRefused,
    CancelRequested,
    KillSwitchSet,
    MessageRejected,
    RfqSubmitted,
)
from rfq_engine.domain.pricing import package_notional
from rfq_engine.engine.awards import AwardOutcome
from rfq_engine.engine.config import EngineConfig
from rfq_engine.engine.context import Listener, Services
from rfq_engine.engine.errors import (
    EngineBusy,
    EngineHalted,
    InvalidRequest,
    InvalidState,
    NotPermitted,
    UnknownRfq,
)
from rfq_engine.engine.resolution import Resolution
from rfq_engine.engine.risk import RiskBook
from rfq_engine.engine.run import RfqRun
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ReferencePriceProvider, ReferenceUnavailable
from rfq_engine.store.base import AuditStore, StoreError
from rfq_engine.store.outage import StoreHealth, StoreState

__all__ = ["RfqEngine"]

log = structlog.get_logger("rfq_engine.engine")
# Ended RFQs remembered so that a late message for one is rejected as "rfq is closed"
# (and audited under that RFQ) rather than "unknown rfq_id": at 100 RFQs/s, 100 s of them.
_CLOSED_MAX = 10_000
# Dealer status messages are not tied to an RFQ: their msg_ids are remembered per dealer.
_STATUS_SEEN_MAX = 1_000


class RfqEngine:
    def __init__(
        self,
        *,
        store: AuditStore,
        adapters: Sequence[DealerAdapter],
        mandates: Mapping[str, Mandate],
        reference: ReferencePriceProvider,
        config: EngineConfig | None = None,
    ) -> None:
        by_dealer: dict[DealerId, DealerAdapter] = {}
        for adapter in adapters:
            for dealer in adapter.dealer_ids:
                if dealer in by_dealer:
                    raise ValueError(f"dealer {dealer} is served by two adapters")
                by_dealer[dealer] = adapter
        self._adapters = list(adapters)
        self.services = Services(
            store=store,
            adapters=by_dealer,
            mandates=dict(mandates),
            reference=reference,
            config=config or EngineConfig(),
            risk=RiskBook(store),
        )
        self._runs: dict[RfqId, RfqRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_runs: dict[asyncio.Task[None], RfqRun] = {}
        self._closed: OrderedDict[str, RfqState] = OrderedDict()
        # Duplicate msg_ids are caught per live RFQ (the set goes with the run: memory is
        # bounded by what is in flight, not by how long the engine has run); a message for
        # an ended RFQ is rejected as closed whatever its msg_id.
        self._run_seen: dict[RfqId, set[tuple[str, str]]] = {}
        self._status_seen: dict[DealerId, OrderedDict[str, None]] = {}
        self._by_client: dict[tuple[str, str], asyncio.Future[RfqId]] = {}
        self._submitting = 0  # submissions between admission and their run's launch
        self._status: dict[DealerId, DealerStatus] = {}
        self._halted: str | None = None
        self._started = False
        store.watch_health(self._store_health)

    # ----------------------------------------------------------------- lifecycle

    @property
    def store(self) -> AuditStore:
        return self.services.store

    @property
    def dealers(self) -> tuple[DealerId, ...]:
        return tuple(self.services.adapters)

    async def start(self, *, recover: bool = True) -> list[RfqId]:
        """Connect every adapter, then resume or close what a previous run left open.

        Returns the ids of the RFQs recovery found in a non-terminal state.
        """
        for adapter in self._adapters:
            await adapter.start(self._deliver)
        self._started = True
        if not recover:
            return []
        from rfq_engine.engine.recovery import recover_open_rfqs

        return await recover_open_rfqs(self)

    async def stop(self, reason: str = "engine shutdown") -> None:
        """Refuse new RFQs, cancel the open ones (each ends with an audit event saying why),
        wait for them to end, then close the adapters."""
        self._halted = reason
        for run in list(self._runs.values()):
            if run.state is RfqState.PENDING_APPROVAL:
                # Waiting for a person, not a market: it stays pending in the store and
                # recovery resumes the wait (until its original deadline) on restart.
                await run.park(reason)
            else:
                run.request_cancel(reason)
        for task in [t for t in self._tasks if self._parked(t)]:
            task.cancel()
        grace = self.services.config.confirm_timeout_ms / 1000 + 2
        if self._tasks:
            _, still = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        for adapter in self._adapters:
            try:
                await adapter.close()
            except Exception:
                log.exception("adapter.close_failed")
        await self._flush_while_up()

    async def _flush_while_up(self) -> None:
        """Wait for the audit store to take every event, while it can: with the store down,
        its ``close`` retries for a bounded grace and then says what was not written."""
        store = self.services.store
        flushing = asyncio.ensure_future(store.flush())
        flushing.add_done_callback(lambda f: f.cancelled() or f.exception())
        while not flushing.done():
            await asyncio.wait({flushing}, timeout=0.25)
            if not flushing.done() and not store.health.up:
                log.error("engine.stopping_with_store_down", store=store.health.to_dict(),
                          queued=store.queue_depth)
                return
        if flushing.exception() is not None:
            log.error("engine.stop_flush_failed", error=str(flushing.exception()))

    def _store_health(self, health: StoreHealth) -> None:
        """The audit store went down, came back, or its writer stopped (``store.outage``).
        Down: the kill switch engages by itself. New RFQs are refused; every open RFQ is
        cancelled (awards in last look are honoured: they wait for the store, in memory, in
        order). The halt and the cancels are audited, durable once the store is back. It
        stays engaged until an admin resumes (runbooks/store-down.md)."""
        if health.state is StoreState.UP:
            log.warning("engine.store_back", halted=self._halted)
            return
        log.error("engine.store_unavailable", store=health.to_dict(), open_rfqs=len(self._runs))
        if self._halted is not None:
            return
        self._halted = (f"audit store unavailable: {health.error}" if health.state is
                        StoreState.DOWN else f"audit store stopped: {health.error}")
        try:
            self.services.audit(None, KillSwitchSet(True, self._halted))
        except StoreError:
            log.error("engine.kill_switch_not_audited", reason=self._halted)
        for run in list(self._runs.values()):
            text = f"kill switch: {self._halted}"
            try:
                run.record(CancelRequested(text))
            except StoreError:
                log.error("rfq.cancel_not_audited", rfq_id=run.rfq_id, reason=text)
            run.request_cancel(text)

    def _parked(self, task: asyncio.Task[None]) -> bool:
        """Left non-terminal on stop, for recovery: waiting for approval (a person) or in
        ``unresolved`` (a dealer or a person): stopping it at once parks it."""
        run = self._task_runs.get(task)
        return run is not None and (run.parked or run.waiting_unresolved.is_set())

    async def kill_switch(self, *, actor: str, reason: str) -> list[RfqId]:
        """Halt new RFQs and cancel every open one; returns the ids it cancelled.

        Cancelling honours awards already in last look (a dealer's confirm is a trade)."""
        self._halted = reason
        await self.services.audit(None, KillSwitchSet(True, reason), actor=actor)
        cancelled = list(self._runs)
        for rfq_id in cancelled:
            await self.cancel(rfq_id, actor=actor, reason=f"kill switch: {reason}")
        return cancelled

    async def resume(self, *, actor: str = "engine") -> None:
        """Lift the kill switch; refused (``EngineHalted``) while the audit store is down:
        nothing could be recorded."""
        health = self.services.store.health
        if not health.up:
            raise EngineHalted(f"the audit store is {health.state.value} ({health.error}): "
                               "resume once it is back (runbooks/store-down.md)")
        if self._halted is not None:
            self._halted = None
            await self.services.audit(None, KillSwitchSet(False, ""), actor=actor)

    @property
    def halted(self) -> str | None:
        """Why new RFQs are refused, or None."""
        return self._halted

    async def lookup_client_rfq(self, requester: str, client_rfq_id: str) -> RfqId | None:
        """The RFQ a requester already submitted under ``client_rfq_id``, if any."""
        pending = self._by_client.get((requester, client_rfq_id))
        if pending is not None and pending.done() and not pending.cancelled() \
                and pending.exception() is None:
            return pending.result()
        found = await self.services.store.find_rfq(requester, client_rfq_id)
        return None if found is None else RfqId(found)

    def add_listener(self, listener: Listener) -> None:
        self.services.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.services.listeners:
            self.services.listeners.remove(listener)

    def dealer_online(self, dealer: DealerId) -> bool:
        adapter = self.services.adapters.get(dealer)
        return adapter is not None and adapter.is_online(dealer)

    # ----------------------------------------------------------------- commands

    async def submit(self, spec: RfqSpec) -> RfqId:
        """Accept an RFQ: durable ``rfq.submitted`` first, then its lifecycle runs as a task.

        With ``client_rfq_id`` the call is idempotent per requester: a retry returns the
        same id and never starts a second RFQ, also across restarts (looked up in the store).
        """
        if self._halted is not None:
            raise EngineHalted(f"new RFQs are refused: {self._halted}")
        mandate = self.services.mandates.get(spec.mandate)
        if mandate is None:
            known = ", ".join(sorted(self.services.mandates)) or "none"
            raise InvalidRequest("mandate", f"unknown mandate {spec.mandate!r}; configured: {known}")
        unknown = [d for d in spec.dealers if d not in self.services.adapters]
        if unknown:
            raise InvalidRequest(
                "dealers",
                f"unknown dealer(s) {', '.join(unknown)}; configured: {', '.join(self.dealers)}",
            )
        if spec.client_rfq_id is None:
            return await self._create(spec, mandate)
        key = (spec.requester, spec.client_rfq_id)
        existing = self._by_client.get(key)
        if existing is not None:
            return await asyncio.shield(existing)
        future: asyncio.Future[RfqId] = asyncio.get_running_loop().create_future()
        self._by_client[key] = future
        try:
            found = await self.services.store.find_rfq(*key)
            rfq_id = RfqId(found) if found is not None else await self._create(spec, mandate)
        except BaseException as exc:
            del self._by_client[key]
            future.set_exception(exc)
            future.exception()  # retrieved: later waiters re-raise, no "never retrieved" warning
            raise
        future.set_result(rfq_id)
        # Durable now: the store answers later retries (find_rfq); the map stays bounded.
        self._by_client.pop(key, None)
        return rfq_id

    def _admit(self) -> None:
        """Refuse a new RFQ while ``max_live_rfqs`` are live or being submitted: when the
        store or the dealers fall behind, the backlog stays bounded instead of growing with
        every request accepted (the caller retries; ``client_rfq_id`` keeps that safe)."""
        live, limit = len(self._runs) + self._submitting, self.services.config.max_live_rfqs
        if live >= limit:
            raise EngineBusy(f"{live} RFQs are live, the most this engine takes at once "
                             f"([engine] max_live_rfqs = {limit}); retry when some have ended")

    async def _create(self, spec: RfqSpec, mandate: Mandate) -> RfqId:
        self._admit()
        self._submitting += 1
        try:
            return await self._submit_new(spec, mandate)
        finally:
            self._submitting -= 1

    async def _submit_new(self, spec: RfqSpec, mandate: Mandate) -> RfqId:
        rfq_id = RfqId(new_id())
        provider = self.services.reference
        reference = None
        notional: Decimal | None = None
        problem = None
        try:
            reference = await provider.package_reference(spec)
            notional = package_notional(spec.package, spec.quantity, await provider.snapshot())
        except ReferenceUnavailable as exc:
            problem = str(exc)
        submitted = await self.services.audit(rfq_id, RfqSubmitted(
            spec.to_dict(), notional, None if reference is None else reference.to_dict(), problem),
            actor=spec.requester)
        failpoints.hit("rfq.submitted")
        run = RfqRun(self.services, rfq_id, spec, mandate, notional=notional, reference=reference)
        run.submitted_at = submitted.ts
        self.launch(run)
        return rfq_id

    def launch(self, run: RfqRun, coro: Coroutine[Any, Any, None] | None = None) -> None:
        """Run ``run`` (or a recovery coroutine for it) as a task the engine tracks."""
        self._runs[run.rfq_id] = run
        self._run_seen.setdefault(run.rfq_id, set())
        task = asyncio.get_running_loop().create_task(coro if coro is not None else run.run())
        self._tasks.add(task)
        self._task_runs[task] = run

        def finished(t: asyncio.Task[None]) -> None:
            if not (run.state.is_terminal or run.parked or run.waiting_unresolved.is_set()):
                log.error("rfq.left_unfinished", rfq_id=run.rfq_id, state=run.state.value,
                          store=self.services.store.health.to_dict(),
                          hint="recovery takes it over on the next start")
            self._tasks.discard(t)
            self._task_runs.pop(t, None)
            self._runs.pop(run.rfq_id, None)
            self._run_seen.pop(run.rfq_id, None)
            self._closed[run.rfq_id] = run.state
            while len(self._closed) > _CLOSED_MAX:
                self._closed.popitem(last=False)

        task.add_done_callback(finished)

    def _run(self, rfq_id: str) -> RfqRun:
        run = self._runs.get(RfqId(rfq_id))
        if run is None:
            raise UnknownRfq(rfq_id)
        return run

    async def cancel(self, rfq_id: str, *, actor: str, reason: str = "") -> None:
        """Cancel in any non-terminal state. In ``confirming`` the outstanding last look is
        honoured (a confirm still fills); nothing new is awarded."""
        run = self._run(rfq_id)
        text = reason or f"cancelled by {actor}"
        await run.record(CancelRequested(text), actor=actor)
        run.request_cancel(text)

    async def approve(self, rfq_id: str, *, approver: str) -> None:
        """Four eyes: the first decision (approve or refuse) wins, synchronously; a second,
        concurrent one raises ``InvalidState``. Returns once the decision is durable."""
        run = self._approvable(rfq_id, approver, "approved")
        if not run.grant(approver):
            raise InvalidState(f"rfq {rfq_id}: the approval was already decided")
        await run.record(ApprovalGranted(approver), actor=approver)

    async def refuse(self, rfq_id: str, *, approver: str, reason: str) -> None:
        run = self._approvable(rfq_id, approver, "refused")
        if not run.refuse(approver, reason):
            raise InvalidState(f"rfq {rfq_id}: the approval was already decided")
        await run.record(ApprovalRefused(approver, reason), actor=approver)

    def _approvable(self, rfq_id: str, approver: str, verb: str) -> RfqRun:
        run = self._run(rfq_id)
        if run.state is not RfqState.PENDING_APPROVAL:
            raise InvalidState(f"rfq {rfq_id} is {run.state.value}, not pending approval")
        if approver == run.spec.requester:
            raise NotPermitted(f"an RFQ must be {verb} by someone other than its requester")
        return run

    async def resolve_execution(self, rfq_id: str, resolution: Resolution) -> AwardOutcome:
        """A person's decision on an award whose outcome is unknown or unresolved: durable
        (``execution.resolved``) before this returns; the first decision wins, a second
        or one for an award the dealer already settled raises ``InvalidState``."""
        run = self._runs.get(RfqId(rfq_id))
        if run is None:
            row = await self.services.store.get_rfq(rfq_id)
            if row is None:
                raise UnknownRfq(rfq_id)
            raise InvalidState(f"rfq {rfq_id} is {row.state}: no award of it is waiting for "
                               "a resolution")
        return await run.resolve_execution(resolution)

    async def wait(self, rfq_id: str, timeout: float | None = None, *,
                   until_unresolved: bool = False) -> RfqState:
        """Wait until the RFQ is terminal; returns its final state. With
        ``until_unresolved``, also return when it waits ``unresolved`` (an award whose
        outcome only the dealer or a person can settle: one-shot commands stop there)."""
        run = self._runs.get(RfqId(rfq_id))
        if run is not None:
            waits = [asyncio.ensure_future(run.done.wait())]
            if until_unresolved:
                waits.append(asyncio.ensure_future(run.waiting_unresolved.wait()))
            try:
                await asyncio.wait_for(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED),
                                       timeout)
            finally:
                for w in waits:
                    w.cancel()
            return run.state
        if rfq_id in self._closed:
            return self._closed[rfq_id]
        row = await self.services.store.get_rfq(rfq_id)
        if row is None:
            raise UnknownRfq(rfq_id)
        return RfqState(row.state)

    def live(self, rfq_id: str) -> RfqRun | None:
        return self._runs.get(RfqId(rfq_id))

    @property
    def open_rfqs(self) -> tuple[RfqId, ...]:
        return tuple(self._runs)

    # ----------------------------------------------------------------- inbound

    def _deliver(self, message: Inbound) -> None:
        """The adapters' sink. Never blocks, never raises: a bad message is audited."""
        try:
            self._dispatch(message)
        except Exception:
            log.exception("inbound.dispatch_failed", message_type=type(message).__name__)

    def _duplicate(self, rfq_id: RfqId | None, message: DealerStatus | Quote | Decline
                   | ExecutionConfirm | ExecutionReject) -> None:
        self.services.audit(rfq_id, MessageRejected(
            "duplicate msg_id: redelivery ignored", message.dealer_id, message.msg_id),
            actor=message.dealer_id)

    def _dispatch(self, message: Inbound) -> None:
        audit = self.services.audit
        if isinstance(message, InboundRejected):
            known = message.rfq_id if message.rfq_id in self._runs or message.rfq_id in self._closed else None
            audit(known, MessageRejected(message.reason, message.dealer_id, message.msg_id, {
                "claimed_rfq_id": message.rfq_id, "raw": message.raw,
                "received_at": format_ts(message.received_at)}),
                actor=message.dealer_id or "unknown")
            return
        if isinstance(message, DealerStatus):
            seen = self._status_seen.setdefault(message.dealer_id, OrderedDict())
            if message.msg_id in seen:
                self._duplicate(None, message)
                return
            seen[message.msg_id] = None
            if len(seen) > _STATUS_SEEN_MAX:
                seen.popitem(last=False)
            self._status[message.dealer_id] = message
            return
        run = self._runs.get(message.rfq_id)
        if run is None:
            closed = self._closed.get(message.rfq_id)
            why = (f"rfq is closed ({closed.value})" if closed is not None
                   else "unknown rfq_id")
            audit(message.rfq_id if closed is not None else None, MessageRejected(
                why, message.dealer_id, message.msg_id,
                {"claimed_rfq_id": message.rfq_id, "type": type(message).__name__}),
                actor=message.dealer_id)
            return
        key = (message.dealer_id, message.msg_id)
        seen_here = self._run_seen.setdefault(run.rfq_id, set())
        if key in seen_here:
            self._duplicate(run.rfq_id, message)
            return
        seen_here.add(key)
        if isinstance(message, Quote):
            run.on_quote(message)
        elif isinstance(message, Decline):
            run.on_decline(message)
        elif isinstance(message, ExecutionConfirm):
            run.on_confirm(message)
        elif isinstance(message, ExecutionReject):
            run.on_reject(message)
