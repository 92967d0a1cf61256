"""The dealer kinds under the contract suite (``test_dealer_contract.py``), one fixture each.

Every kit builds, for its kind, two dealers on the far side of the real transport and a
real ``RfqEngine`` in front of them:

| kind | the dealers | counts its executions |
| --- | --- | --- |
| ``simulated`` | ``SimulatedDealers`` desks (in process, JSONL ledgers) | ``executed_count()`` |
| ``rest`` | two ``FakeDesk`` HTTP servers behind ``RestDealers`` | ``FakeDesk.executed_count`` |
| ``mqtt`` | two reference bots (``dealer_tools.bot``) on a private Mosquitto | ``executed_count()`` |
| ``ccxt`` | two ``FakeDeribit`` venues behind ``CcxtDealers`` (a real ccxt) | ``FakeDeribit.executed`` |
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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import pytest

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
        # by value: this module is imported twice (as pytest's conftest and by the tests)
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


# --- simulated ---------------------------------------------------------------------------------


class SimulatedKit(Kit):
    """In-process desks: the acts are ``SimulatedDealerConfig`` knobs; each desk keeps a
    ledger, so the desks rebuilt after a restart know what was booked before it."""

    kind = "simulated"
    slow_send = True
    outage_from_open = False  # an offline desk is not sent the RFQ: it goes off line at its award

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.adapter: Any = None

    def _desk(self, dealer: DealerId) -> Any:
        from dealer_adapters.simulated import SimulatedDealerConfig

        fields: dict[str, Any] = {
            "latency_ms": 10.0, "latency_jitter_ms": 0.0, "confirm_latency_ms": 5.0,
            "spread_bps": "10" if dealer == PRIMARY else "30", "quote_validity_ms": 5000,
            "seed": 1 if dealer == PRIMARY else 2, "ledger_path": str(self.tmp / f"{dealer}.ledger.jsonl"),
        }
        act = self.act(dealer)
        if act is Act.DECLINE:
            fields["decline_rate"] = 1.0
        elif act is Act.REJECT:
            fields["last_look_reject_rate"] = 1.0
        elif act in (Act.LOSE_FILL, Act.HOLD):
            fields["lose_confirm_rate"] = 1.0
        elif act is Act.LOSE_UNFILLED:  # rejected, and the reject comes a minute late
            fields.update(last_look_reject_rate=1.0, confirm_latency_ms=60_000.0)
        elif act is Act.SLOW:
            fields["book_latency_ms"] = float(self.config.confirm_timeout_ms + 300)
        return SimulatedDealerConfig.model_validate(fields)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.simulated import SimulatedDealers

        market = snapshot()
        self.adapter = SimulatedDealers({d: self._desk(d) for d in DEALERS}, lambda: market)
        adapter: DealerAdapter = self.adapter
        return adapter

    def executed(self, dealer: DealerId) -> int:
        count: int = self.adapter.executed_count(dealer)
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.adapter.set_online(dealer, not active)


# --- rest --------------------------------------------------------------------------------------


class RestKit(Kit):
    """Two fake OTC desks over HTTP (``tests/rest/fake_desk.py``). The desk shares our clock,
    so ``clock_skew_ms = 0``: a 404 past the order's ``expires_at`` proves it absent."""

    kind = "rest"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.desks: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.rest.fake_desk import FakeDesk

        for dealer, bid in ((PRIMARY, "39999"), (BACKUP, "39990")):
            desk = FakeDesk(bid=bid)
            await desk.start()
            self.desks[dealer] = desk
            act = self.act(dealer)
            if act is Act.DECLINE:
                desk.decline_reason = "no appetite for this size"
            elif act is Act.REJECT:
                desk.order_reject_reason = "last look: price moved"
            elif act in (Act.LOSE_FILL, Act.HOLD):
                desk.lose_order_reply = True
            elif act is Act.LOSE_UNFILLED:
                desk.lose_order_request = True
            elif act is Act.SLOW:  # past the client's read timeout, decided before expires_at
                desk.order_hang_s = self.config.confirm_timeout_ms / 2000

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.rest import RestDealers
        from tests.rest.conftest import ENV, desk_config

        configs = {d: desk_config(desk, self.tmp, read_timeout_ms=150, clock_skew_ms=0,
                                  reconcile_interval_ms=50, reconcile_grace_ms=1000)
                   for d, desk in self.desks.items()}
        adapter: DealerAdapter = RestDealers(configs, environ=ENV)
        return adapter

    def executed(self, dealer: DealerId) -> int:
        count: int = self.desks[dealer].executed_count
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.desks[dealer].fail_gets_for(3600 if active else 0)

    async def _teardown(self) -> None:
        for desk in self.desks.values():
            await desk.stop()


# --- mqtt --------------------------------------------------------------------------------------


class MqttKit(Kit):
    """Two reference bots on a private Mosquitto, each with a ledger (restarts keep it)."""

    kind = "mqtt"
    QUERY_TIMEOUT_MS = 150

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.world: Any = None
        self.bots: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.mqtt.kit import World

        self.world = World(self.tmp / "world", DEALERS)
        await self.world.broker.start()
        for dealer in DEALERS:
            quoting: dict[str, Any] = {
                "spread_bps": "10" if dealer == PRIMARY else "30", "quote_validity_ms": 5000,
                "ledger_path": str(self.tmp / f"{dealer}.ledger.jsonl"),
            }
            act = self.act(dealer)
            if act is Act.DECLINE:
                quoting["decline_rate"] = 1.0
            elif act is Act.REJECT:
                quoting["last_look_reject_rate"] = 1.0
            elif act in (Act.LOSE_FILL, Act.HOLD):
                quoting["lose_confirm_rate"] = 1.0
            elif act is Act.LOSE_UNFILLED:  # rejected, and the reject comes a minute late
                quoting.update(last_look_reject_rate=1.0, confirm_latency_ms=60_000.0)
            elif act is Act.SLOW:  # still booking when the engine's first query times out
                slow_ms = self.config.confirm_timeout_ms + self.QUERY_TIMEOUT_MS + 200
                quoting["book_latency_ms"] = float(slow_ms)
            self.bots[dealer] = await self.world.bot(dealer, **quoting)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.mqtt.adapter import MqttDealers
        from dealer_adapters.mqtt.config import MqttDealerConfig

        world = self.world
        adapter: DealerAdapter = MqttDealers(
            world.broker_config(query_timeout_ms=self.QUERY_TIMEOUT_MS),
            {d: MqttDealerConfig(secret_env=world.desks[d].secret_env) for d in DEALERS},
            environ=world.environ())
        return adapter

    async def _started(self, session: Session) -> None:
        await session.adapter.wait_online(DEALERS, timeout=WAIT_S)  # type: ignore[attr-defined]
        assert all(session.adapter.lookup_policy(d).can_query for d in DEALERS)  # execution.query

    def executed(self, dealer: DealerId) -> int:
        count: int = self.bots[dealer].executed_count()
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.bots[dealer].queries_unanswered = active

    async def _teardown(self) -> None:
        if self.world is not None:
            await self.world.close()


# --- ccxt --------------------------------------------------------------------------------------


class CcxtKit(Kit):
    """Two Deribit book dealers (``kind = "ccxt"``) against two fake Deribits, each with its
    own journal: BTC_USDC spot, sold into the bids (desk-a's bid 40000, desk-b's 39990)."""

    kind = "ccxt"
    lost_unfilled_is_provable = False
    """The order request left (its intent is journaled) and the venue shows no such label:
    that proves nothing (a lost reply, a look-up lag), so the adapter answers UNKNOWN."""
    SIZE = "0.1"
    SLOW_S = 0.6
    """The venue's late reply in ``slow``/``lost`` mode: past the client's 300 ms timeout."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.venues: dict[DealerId, Any] = {}

    def spec(self, dealers: tuple[DealerId, ...] = DEALERS, **overrides: Any) -> RfqSpec:
        data: dict[str, Any] = {
            "legs": [{"instrument": {"kind": "spot", "underlying": "BTC", "quote_ccy": "USDC"},
                      "side": "sell", "ratio": "1"}],
            "direction": "sell", "quantity": self.SIZE, "quantity_unit": "BTC", "dealers": list(dealers),
            "requester": "alice", "mandate": "treasury", "window_ms": 2000,
        }
        data.update(overrides)
        return RfqSpec.from_dict(data)

    async def _setup(self) -> None:
        from tests.ccxt_dealers.fake_deribit import FakeDeribit

        for dealer, bid, ask in ((PRIMARY, "40000", "40010"), (BACKUP, "39990", "40020")):
            venue = FakeDeribit(slow_s=self.SLOW_S)
            venue.set_book("BTC_USDC", bids=[(bid, "0.2")], asks=[(ask, "0.2")])
            await venue.start()
            self.venues[dealer] = venue
            act = self.act(dealer)
            if act is Act.DECLINE:  # too thin for the size: the dealer declines
                venue.set_book("BTC_USDC", bids=[(bid, "0.01")], asks=[(ask, "0.01")])
            elif act is Act.REJECT:
                venue.order_mode = "insufficient"
            elif act in (Act.LOSE_FILL, Act.HOLD, Act.SLOW):  # filled at once, answered too late
                venue.order_mode = "slow"
            elif act is Act.LOSE_UNFILLED:  # received, never booked, answered too late
                venue.order_mode = "lost"

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.ccxt import CcxtDealers
        from tests.ccxt_dealers.conftest import deribit_config

        configs = {d: deribit_config(venue, self.tmp, journal_path=str(self.tmp / f"{d}.journal"),
                                     timeout_ms=300, confirm_margin_ms=20, quote_validity_ms=5000)
                   for d, venue in self.venues.items()}
        adapter: DealerAdapter = CcxtDealers(configs)
        return adapter

    async def _started(self, session: Session) -> None:
        for dealer in DEALERS:
            session.adapter.exchange(dealer).timeout_on_exit = 0  # type: ignore[attr-defined]
        assert all(session.adapter.is_online(d) for d in DEALERS)

    def executed(self, dealer: DealerId) -> int:
        count: int = self.venues[dealer].executed
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.venues[dealer].fail_lookups_for(3600 if active else 0)

    async def _teardown(self) -> None:
        for venue in self.venues.values():
            await venue.stop()


# --- fix ---------------------------------------------------------------------------------------


class FixKit(Kit):
    """Two QuickFIX desks (``tests/fix/quickfix_desk.py``: QuickFIX's acceptor, its own
    session layer and message store) behind ``FixDealers``; restarts keep both sides' state."""

    kind = "fix"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.desks: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.fix.quickfix_desk import QuickFixDesk, build_desk

        for dealer, bid in ((PRIMARY, "39999"), (BACKUP, "39990")):
            desk = QuickFixDesk(build_desk(), self.tmp / f"qf-{dealer}", sender=dealer.upper(), bid=bid)
            await desk.start()
            self.desks[dealer] = desk
            act = self.act(dealer)
            if act is not Act.NORMAL:
                mode = {Act.DECLINE: "decline", Act.REJECT: "reject", Act.LOSE_FILL: "lose_fill",
                        Act.HOLD: "hold", Act.LOSE_UNFILLED: "lose_unfilled", Act.SLOW: "slow"}[act]
                await desk.mode(mode, self.config.confirm_timeout_ms + 300)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.fix import FixDealers
        from tests.fix.conftest import fix_config

        configs = {d: fix_config(desk, self.tmp / "fix-state") for d, desk in self.desks.items()}
        adapter: DealerAdapter = FixDealers(configs)
        return adapter

    async def _started(self, session: Session) -> None:
        await session.adapter.wait_online(DEALERS, timeout=WAIT_S)  # type: ignore[attr-defined]

    def executed(self, dealer: DealerId) -> int:
        count: int = self.desks[dealer].executed_count
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.desks[dealer].command_nowait(f"outage {int(active)}")

    async def release(self) -> None:
        for dealer, act in self.acts.items():
            if act is Act.HOLD:
                await self.desks[dealer].command("release")
        await super().release()

    async def _teardown(self) -> None:
        for desk in self.desks.values():
            await desk.stop()


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def simulated_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    kit = SimulatedKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def rest_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    kit = RestKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def mqtt_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    from tests.mqtt.conftest import require_mosquitto

    require_mosquitto()
    kit = MqttKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def ccxt_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kit]:
    from tests.ccxt_dealers.conftest import DERIBIT_ENV

    for key, value in DERIBIT_ENV.items():
        monkeypatch.setenv(key, value)
    kit = CcxtKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def fix_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    from tests.fix.quickfix_desk import require_quickfix

    require_quickfix()
    kit = FixKit(tmp_path)
    yield kit
    await kit.close()


KINDS = ("simulated", "rest", "mqtt", "ccxt", "fix")


@pytest.fixture(params=KINDS)
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    """Every dealer kind in turn (the contract suite runs each case on each)."""
    made: Kit = request.getfixturevalue(f"{request.param}_kit")
    yield made
