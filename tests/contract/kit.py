"""The ``Kit`` interface of the dealer contract suite (``test_dealer_contract.py``) and what
every kind shares: the dealers, the acts, the engine session.

Every kit builds, for its kind, two dealers on the far side of the real transport and a
real ``RfqEngine`` in front of them; each kind's kit is ``kit_<kind>.py`` (both ``ccxt-block``
kinds' ``kit_deribit_block.py``), its fixture is in ``conftest.py``:

| kind | the dealers | counts its executions |
| --- | --- | --- |
| ``simulated`` | ``SimulatedDealers`` desks (in process, JSONL ledgers) | ``executed_count()`` |
| ``rest`` | two ``FakeDesk`` HTTP servers behind ``RestDealers`` | ``FakeDesk.executed_count`` |
| ``mqtt`` | two reference bots (``dealer_tools.bot``) on a private Mosquitto | ``executed_count()`` |
| ``ccxt`` | two ``FakeDeribit`` venues behind ``CcxtDealers`` (a real ccxt) | ``FakeDeribit.executed`` |
| ``ccxt-block`` | two ``FakeDeribitBlock``s behind Block RFQ ``CcxtDealers`` | ``.executed`` |
| ``ccxt-block-collar`` | the same, a USDC options collar as one Block RFQ | ``.executed`` |
| ``fix`` | two QuickFIX acceptors (``tests/fix``) behind ``FixDealers`` | ``executed_count`` |

``desk-a`` (``PRIMARY``) always quotes best, so it wins rank 1; ``desk-b`` (``BACKUP``)
quotes worse and is the fallback. A test tells a dealer what to do with an ``Act``; each
kit turns the act into its own fake's knobs, from the counterpart's documented behaviour.

Only public constructors and configs of ``dealer_adapters`` are used (the engine's one
``DealerAdapter`` protocol), and the fakes' own knobs. The MQTT kit runs a private
Mosquitto per test, from the same binary as the one on 127.0.0.1:1883 (``tests/mqtt``'s
``World``): its ACL and passwords are enforced, and the engine's fixed client id and the
desks' retained statuses cannot leak between tests or collide with another run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import Award, DealerId, RfqId, RfqSpec
from rfq_engine.domain.events import EventType
from rfq_engine.engine import EngineConfig, EngineEvent, RfqEngine
from rfq_engine.engine.recovery import replay
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import AuditStore, EventFilter, open_store
from tests.engine.conftest import future_rfq, mandate_config, snapshot

PRIMARY = DealerId("desk-a")
"""Quotes best: wins rank 1."""
BACKUP = DealerId("desk-b")
"""Quotes worse: the next best, awarded only after the primary's award is settled as not done."""
DEALERS = (PRIMARY, BACKUP)
WAIT_S = 20.0
"""Upper bound of any wait (other suites share this 2-core machine); a passing case is far faster."""
OUTAGE_AFTER_UNKNOWN_S = 0.3
"""``Act.LOSE_FILL``: how long the dealer still cannot be asked once the engine has declared
the outcome unknown (the engine's first look-ups must get no answer)."""


class Act(StrEnum):
    """What a dealer is told to do in a case."""

    NORMAL = "normal"
    DECLINE = "decline"
    """Declines every RFQ."""
    REJECT = "reject"
    """Explicitly rejects every award (its last look), in time."""
    LOSE_FILL = "lose_fill"
    """Executes the award; its reply is lost, and the dealer cannot be asked until
    ``OUTAGE_AFTER_UNKNOWN_S`` after the engine declared the outcome unknown."""
    LOSE_UNFILLED = "lose_unfilled"
    """Does not execute the award, and the engine never hears so by ``confirm_by``."""
    SLOW = "slow"
    """Takes longer than the engine's ``send_timeout_ms`` (and, where the kind lets it, than
    ``confirm_by``) to book the award, then executes it."""
    HOLD = "hold"
    """Executes the award; its reply is lost and the dealer cannot be asked until
    ``Kit.release()`` (the engine restarts meanwhile)."""


def simulated_knobs(act: Act, slow_book_ms: float) -> dict[str, Any]:
    """A simulated desk's knobs for ``act`` (``SimulatedDealerConfig``'s, which the reference
    bots share); ``Act.SLOW`` books the award after ``slow_book_ms``."""
    if act is Act.DECLINE:
        return {"decline_rate": 1.0}
    if act is Act.REJECT:
        return {"last_look_reject_rate": 1.0}
    if act in (Act.LOSE_FILL, Act.HOLD):
        return {"lose_confirm_rate": 1.0}
    if act is Act.LOSE_UNFILLED:  # rejected, and the reject comes a minute late
        return {"last_look_reject_rate": 1.0, "confirm_latency_ms": 60_000.0}
    if act is Act.SLOW:
        return {"book_latency_ms": slow_book_ms}
    return {}


def engine_config(**overrides: Any) -> EngineConfig:
    """Small timings: a case settles in well under a second."""
    base: dict[str, Any] = {
        "confirm_timeout_ms": 400, "send_timeout_ms": 200, "lookup_timeout_ms": 1000,
        "reconcile_timeout_ms": 3000, "reconcile_backoff_ms": 20, "reconcile_backoff_max_ms": 100,
        "reconcile_slow_interval_ms": 200,
    }
    base.update(overrides)
    return EngineConfig.model_validate(base)


@dataclass
class Session:
    """One engine over the kit's dealers: the engine, its store and its adapter."""

    kit: Kit
    engine: RfqEngine
    store: AuditStore
    adapter: DealerAdapter
    recovered: list[RfqId] = field(default_factory=list)
    events: list[EngineEvent] = field(default_factory=list)
    _waiters: list[tuple[Callable[[EngineEvent], bool], asyncio.Future[EngineEvent]]] = field(
        default_factory=list)

    def _on_event(self, event: EngineEvent) -> None:
        self.events.append(event)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(event):
                future.set_result(event)
                self._waiters.remove((predicate, future))

    def when(self, predicate: Callable[[EngineEvent], bool]) -> asyncio.Future[EngineEvent]:
        """A future resolved by the first engine event from now on matching ``predicate``."""
        future: asyncio.Future[EngineEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def submit(self, **overrides: Any) -> RfqId:
        return await self.engine.submit(self.kit.spec(**overrides))

    async def payloads(self, rfq_id: str, type_: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in await self.store.events(EventFilter(rfq_id=rfq_id, types=[type_]))]

    async def history(self, rfq_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every event of the RFQ, in order, as (type, payload)."""
        return [(e.type, dict(e.payload)) for e in await self.store.events(EventFilter(rfq_id=rfq_id))]

    async def awarded(self, rfq_id: str) -> list[str]:
        """The dealers awarded, in order."""
        return [p["dealer_id"] for p in await self.payloads(rfq_id, EventType.AWARD_DECIDED)]

    async def award_to(self, rfq_id: str, dealer: DealerId) -> Award:
        """The award the engine made to ``dealer``, rebuilt from the store as recovery does."""
        rebuilt = replay(list(await self.store.events(EventFilter(rfq_id=rfq_id))))
        [award] = [a for a, _ in rebuilt.awards.values() if a.dealer_id == dealer]
        return award


class Kit:
    """One dealer kind: ``open`` builds its two dealers (with their acts) and an engine."""

    kind: ClassVar[str]
    lost_unfilled_is_provable: ClassVar[bool] = True
    """Whether the kind can prove, by asking, that an award whose reply was lost was not
    executed. False where "not found" proves nothing (an exchange order whose request left):
    the award must go ``unresolved`` instead, with no fallback."""
    outage_from_open: ClassVar[bool] = True
    """``LOSE_FILL``/``HOLD``: the dealer cannot be asked from the start (else from its award)."""
    slow_send: ClassVar[bool] = False
    """``SLOW`` makes the award's send itself outlast ``send_timeout_ms`` (the send returns
    once the dealer has booked). Elsewhere the send returns when the transport took the
    award (MQTT: the broker's ack; REST: the order intent on disk; ccxt: a task) and only
    the dealer's side is slow."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.acts: dict[DealerId, Act] = {}
        self.config = engine_config()
        self.durable = False
        self.sessions: list[Session] = []
        self._closed_stores: set[int] = set()
        self._timers: list[asyncio.TimerHandle] = []

    # --- what a kind provides -------------------------------------------------------------

    def spec(self, dealers: tuple[DealerId, ...] = DEALERS, **overrides: Any) -> RfqSpec:
        return future_rfq(**{"dealers": list(dealers), "window_ms": 2000, **overrides})

    async def _setup(self) -> None:
        """Start the far side of the wire (servers, broker, bots) with ``self.acts``."""

    def _adapter(self) -> DealerAdapter:
        """A new adapter for both dealers, on their durable state (journals, ledgers)."""
        raise NotImplementedError

    async def _started(self, session: Session) -> None:
        """After the engine started (its adapter connected)."""

    def executed(self, dealer: DealerId) -> int:
        """How many executions the dealer's side performed (its own count)."""
        raise NotImplementedError

    def outage(self, dealer: DealerId, active: bool) -> None:
        """While active, the dealer cannot be asked what became of an award."""
        raise NotImplementedError

    def _on_award_sent(self, dealer: DealerId) -> None:
        if self.acts.get(dealer) in (Act.LOSE_FILL, Act.HOLD) and not self.outage_from_open:
            self.outage(dealer, True)

    async def _teardown(self) -> None:
        """Stop what ``_setup`` started."""

    # --- lifecycle --------------------------------------------------------------------------

    def act(self, dealer: DealerId) -> Act:
        return self.acts.get(dealer, Act.NORMAL)

    async def open(self, acts: Mapping[DealerId, Act] | None = None, *, config: EngineConfig | None = None,
                   durable: bool = False) -> Session:
        """The dealers, told ``acts``, and a started engine on a new store (SQLite when
        ``durable``, so a later engine can recover from it)."""
        assert not self.sessions, "open once per test; restart() for the next engine"
        # by value: an act from another import of this module (a conftest's) is still an act
        self.acts = {DealerId(d): Act(str(a)) for d, a in (acts or {}).items()}
        self.config = config or engine_config()
        self.durable = durable
        await self._setup()
        if self.outage_from_open:
            for dealer, act in self.acts.items():
                if act in (Act.LOSE_FILL, Act.HOLD):
                    self.outage(dealer, True)
        return await self._engine(await self._store())

    async def restart(self) -> Session:
        """After the last engine stopped: a new adapter on the dealers' durable state and a
        new engine on the same store (reopened), which recovers what was left open."""
        last = self.sessions[-1]
        await last.engine.stop()  # idempotent: the test stopped it already
        await self._close_store(last.store)
        return await self._engine(await self._store())

    async def release(self) -> None:
        """End ``HOLD``: the dealers can be asked again."""
        for dealer, act in self.acts.items():
            if act is Act.HOLD:
                self.outage(dealer, False)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        problems: list[str] = []
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.engine.stop(), 30)
            if id(session.store) not in self._closed_stores:
                report = await session.store.verify()
                if not report.ok:
                    problems.append(str(report.problem))
                await self._close_store(session.store)
        await self._teardown()
        assert not problems, problems

    # --- internals ----------------------------------------------------------------------------

    async def _store(self) -> AuditStore:
        url = f"sqlite+aiosqlite:///{self.tmp}/audit.db" if self.durable else "memory://"
        store = open_store(url)
        await store.open()
        return store

    async def _close_store(self, store: AuditStore) -> None:
        if id(store) not in self._closed_stores:
            self._closed_stores.add(id(store))
            await store.close()

    async def _engine(self, store: AuditStore) -> Session:
        adapter = self._adapter()
        limits = {d: {"credit_limit": "1000000000"} for d in DEALERS}
        engine = RfqEngine(store=store, adapters=[adapter],
                           mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits))},
                           reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
                           config=self.config)
        session = Session(self, engine, store, adapter)
        engine.add_listener(session._on_event)
        engine.add_listener(self._react)
        self.sessions.append(session)
        session.recovered = await engine.start()
        await self._started(session)
        return session

    def _react(self, event: EngineEvent) -> None:
        """The acts that follow the engine: called synchronously as each event is audited,
        so a dealer's state changes before the engine's next step (no race with it)."""
        dealer = event.payload.get("dealer_id")
        if not isinstance(dealer, str):
            return
        if event.type == EventType.AWARD_SENT:
            self._on_award_sent(DealerId(dealer))
        elif event.type == EventType.EXECUTION_UNKNOWN and self.act(DealerId(dealer)) is Act.LOSE_FILL:
            # the engine asks right after this event: that answer, and the next ones for a
            # while, find the dealer out of reach
            self.outage(DealerId(dealer), True)
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(OUTAGE_AFTER_UNKNOWN_S, self.outage, DealerId(dealer), False))
